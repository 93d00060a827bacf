"""argparse options from a command's declared flags, for the adapters that parse with argparse
(the Nox sessions and the `invoke-pachyderm` command). Same names, help, types and checks as the
Invoke task's flags (flags.py): a switch is a real boolean, None when not given."""
from __future__ import annotations

import argparse
from typing import Any, Callable

from invoke_pachyderm.commands import Command
from invoke_pachyderm.core.flags import Flag, argparse_hint


class ParseStopped(Exception):
    """The command line was wrong (`message`) or --help was printed (no message)."""

    def __init__(self, message: str = ""):
        super().__init__(message)
        self.message = message


class RaisingParser(argparse.ArgumentParser):
    """Raises instead of exiting: a nox session must end through session.error."""

    def error(self, message):
        raise ParseStopped(f"{self.prog}: {message}{argparse_hint(self, message)}")

    def exit(self, status=0, message=None):
        raise ParseStopped(message or "")


def parser_for(command: Command, prog: str, parser_class: type[argparse.ArgumentParser] = RaisingParser):
    parser = parser_class(prog=prog, description=command.help, allow_abbrev=False)
    add_flags(parser, command, positional=False)
    return parser


def add_flags(parser: argparse.ArgumentParser, command: Command, positional: bool = True) -> None:
    """One option per declared flag; with `positional`, the command's positional flags as arguments."""
    for name, flag in command.flags.items():
        help = flag.help_line().replace("%", "%%")
        if positional and name in command.positional:
            parser.add_argument(name, nargs="?", default=None, type=_checked(flag), metavar=name.upper(), help=help)
            continue
        names = ["--" + name.replace("_", "-"), *(["-" + flag.short.lstrip("-")] if flag.short else [])]
        if not flag.is_switch:
            parser.add_argument(*names, dest=name, default=None, type=_checked(flag), metavar=name.upper(), help=help)
        elif flag.negatable:
            parser.add_argument(*names, dest=name, default=None, action=argparse.BooleanOptionalAction, help=help)
        else:
            parser.add_argument(*names, dest=name, default=None, action="store_true", help=help)


def _checked(flag: Flag) -> Callable[[str], Any]:
    def check(value: str) -> Any:
        try:
            return flag.parse(value)  # type: ignore[misc]
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return check
