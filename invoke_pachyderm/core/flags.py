"""Task flags that parse like a careful command line.

Each task declares its flags once (`Flag`) and `task` turns them into Invoke arguments:

- a switch is a real boolean, so the word after it is never taken as its value
  (`deploy --skip-tests --dryrun` is an unknown flag, not `skip_tests="--dryrun"`);
- `--NAME` / `--no-NAME` where a default can be on (Invoke's negation convention);
- a value is checked while the command line is read, so a bad one stops everything before the
  first task runs, with `UsageError`'s exit code;
- no automatic short flags (Invoke would make `-e` of `--rebuild`); only the declared ones;
- `--help` shows each flag's type and default.

A flag that is not given stays None, so the settings of pyproject.toml, invoke.yaml and the
environment apply (`config.load_settings` layers only the flags that were given).
"""
from __future__ import annotations

import argparse
import difflib
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import invoke
from invoke.exceptions import Exit
from invoke.parser import Argument
from invoke.parser.context import to_flag, translate_underscores

from invoke_pachyderm.core.errors import UsageError

TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")
ALIASES = {"on": True, "off": False}  # accepted (environment variables), not advertised


def usage_exit(message: str) -> Exit:
    """The exception that makes Invoke print one line and exit with the usage code."""
    prefix = "::error::" if os.environ.get("GITHUB_ACTIONS") == "true" else "error: "
    return Exit(prefix + message, code=UsageError.exit_code)


def did_you_mean(word: str, flags: Iterable[str]) -> str:
    close = difflib.get_close_matches(word.split("=")[0], sorted(set(flags)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def argparse_hint(parser: argparse.ArgumentParser, message: str) -> str:
    """For argparse's "unrecognized arguments: --chek": the closest option of the parser (or its
    subcommands), since Python before 3.14 suggests nothing."""
    prefix = "unrecognized arguments: "
    if not message.startswith(prefix):
        return ""
    return did_you_mean(message[len(prefix):].split()[0], _option_strings(parser))


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    found = list(parser._option_string_actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found += _option_strings(sub)
    return found


# -- value types: each takes the word given and returns the value, or raises ValueError ----------
def switch(value: Any) -> bool:
    """The one boolean parser: a switch given from Python (`deploy(c, force="no")`; the command line
    gives real booleans), a boolean setting from the environment, the action's dry-run input."""
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    if word in ALIASES:
        return ALIASES[word]
    raise ValueError(f"{value!r} is not a boolean; use one of {', '.join(TRUE_WORDS + FALSE_WORDS)}")


def positive_number(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not a number; give a number of seconds greater than 0") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"{value!r} must be a number of seconds greater than 0")
    return number


# pr-N stays a valid pachd project name with room to spare (config.PROJECT_NAME_LIMIT), and a
# number too large for any forge is refused before anything is built.
PULL_REQUEST_DIGITS = 9


def pull_request_number(value: Any) -> int:
    word = str(value).strip()
    if not re.fullmatch(r"[0-9]+", word):  # int() would also take "+7", "1_0" and other scripts' digits
        raise ValueError(f"{value!r} is not a pull request number; e.g. --preview 42")
    number = int(word)
    if number < 1:
        raise ValueError(f"{value!r} is not a pull request number (1 or more)")
    if number >= 10**PULL_REQUEST_DIGITS:
        raise ValueError(f"{value!r} is not a pull request number (at most {PULL_REQUEST_DIGITS} digits)")
    return number


def text(value: Any) -> str:
    value = str(value)
    if not value.strip():
        raise ValueError("needs a value, got an empty one")
    if value.startswith("-"):
        # Invoke hands a value-taking flag the next word even if it looks like a flag
        # (`--out-dir --chek`): refuse it rather than swallow a typo.
        raise ValueError(f"{value!r} looks like a flag, not a value (a value may not start with '-')")
    return value


@dataclass(frozen=True)
class Flag:
    help: str
    type: str = "switch"  # what --help says the value is
    default: str = "off"  # what --help says happens when the flag is not given
    parse: Callable[[Any], Any] | None = None  # None: a switch, which takes no value
    negatable: bool = False  # also --no-NAME, for a default that can be on
    short: str | None = None

    @property
    def is_switch(self) -> bool:
        return self.parse is None

    def help_line(self) -> str:
        return f"{self.help} [{self.type}; default: {self.default}]"

    def check(self, flag: str, value: Any) -> Any:
        try:
            return switch(value) if self.parse is None else self.parse(value)
        except ValueError as error:
            raise usage_exit(f"{flag}: {error}") from None


class _Value(Argument):
    """A value-taking argument checked as it is read (Invoke casts with `kind`; ours is `parse`).

    `kind` stays `str` so that Invoke's --help shows `--NAME=STRING`."""

    def __init__(self, flag: Flag, cli_name: str, **kwargs: Any):
        super().__init__(kind=str, **kwargs)
        self.flag = flag
        self.cli_name = cli_name

    def set_value(self, value: Any, cast: bool = True) -> None:
        if cast:
            value = self.flag.check(self.cli_name, value)
        super().set_value(value, cast=False)


class _NegatableSwitch(Argument):
    """`--NAME` / `--no-NAME`, None when neither is given.

    Invoke adds `--no-NAME` only for a bool argument whose default is True, and would then
    report True when the flag is not given; `value` reports what was given instead."""

    def __init__(self, **kwargs: Any):
        super().__init__(kind=bool, default=True, **kwargs)

    @property
    def value(self) -> bool | None:
        return self._value

    @value.setter
    def value(self, given: Any) -> None:
        self.set_value(given, cast=True)


class FlagTask(invoke.Task):
    """An Invoke task whose parameters are exactly its declared flags."""

    def __init__(self, body: Callable, flags: Mapping[str, Flag] | None = None, **kwargs: Any):
        kwargs.setdefault("auto_shortflags", False)
        kwargs.setdefault("positional", [])
        super().__init__(body, **kwargs)
        self.flags = dict(flags or {})
        parameters = list(self.argspec(body).parameters)
        undeclared = sorted(set(parameters) ^ set(self.flags))
        if undeclared:
            raise TypeError(f"task {self.name}: parameters and declared flags differ: {undeclared}")
        self.flags = {name: self.flags[name] for name in parameters}

    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        return [self._argument(name, flag) for name, flag in self.flags.items()]

    def _argument(self, name: str, flag: Flag) -> Argument:
        dashed = translate_underscores(name)
        options: dict[str, Any] = {
            "names": [dashed, *([flag.short] if flag.short else [])],
            "attr_name": name if "_" in name else None,
            "help": flag.help_line(),
        }
        if not flag.is_switch:
            return _Value(flag, f"{self.name} {to_flag(dashed)}", **options)
        if flag.negatable:
            return _NegatableSwitch(**options)
        return Argument(kind=bool, default=None, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # The command line has checked its values already; a call from Python has not.
        for name, value in kwargs.items():
            if name in self.flags and value is not None:
                flag = f"{self.name} {to_flag(translate_underscores(name))}"
                kwargs[name] = self.flags[name].check(flag, value)
        return super().__call__(*args, **kwargs)


def task(*, flags: Mapping[str, Flag], **kwargs: Any) -> Callable[[Callable], FlagTask]:
    """`@invoke.task`, with the flags declared: `@task(flags={"json": JSON})`."""
    return invoke.task(klass=FlagTask, flags=flags, **kwargs)
