"""The Invoke adapter: one `FlagTask` per command of `commands.COMMANDS`, built from its declaration.

A task reads Invoke's config (the `pachyderm` section) and the project directory, hands the flags
to `commands.execute` and turns its exit code into Invoke's `Exit`. Flags are declared once each
(`flags.Flag`): switches are real booleans, values are checked while the command line is read,
and a flag that is not given is None, so "not given" differs from "false".
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from invoke import Collection
from invoke.exceptions import Exit

from invoke_pachyderm.commands import COMMANDS, Command, Request, execute
from invoke_pachyderm.core.config import to_plain
from invoke_pachyderm.core.flags import FlagTask
from invoke_pachyderm.core.secrecy import install_log_filter

CONFIG_SECTION = "pachyderm"
install_log_filter()  # `invoke --debug` logs the configuration, secrets included, before any task runs


def project_dir(c) -> Path:
    prefix = getattr(c.config, "_project_prefix", None) or c.config.get("_project_prefix", None)
    return Path(prefix) if prefix else Path.cwd()


def config_section(c) -> dict[str, Any]:
    section = c.config.get(CONFIG_SECTION, None)
    return to_plain(section) if section is not None else {}


def make_task(command: Command) -> FlagTask:
    def body(c, **values: Any) -> None:
        if "dry_run" in command.flags and c.config.run.dry:  # `invoke --dry deploy`
            values["dry_run"] = True
        request = Request(project_dir(c), {name: values.get(name) for name in command.flags}, config_section(c))
        code, _ = execute(command, request)
        if code:
            raise Exit(code=code)

    context = inspect.Parameter("c", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    flags = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None) for name in command.flags]
    body.__signature__ = inspect.Signature([context, *flags])  # type: ignore[attr-defined]
    body.__doc__ = command.help
    body.__name__ = body.__qualname__ = command.session_name
    return FlagTask(body, flags=command.flags, name=command.name.rpartition(".")[2])


TASKS: dict[str, FlagTask] = {name: make_task(command) for name, command in COMMANDS.items()}

test = TASKS["test"]
build = TASKS["build"]
push = TASKS["push"]
render_spec = TASKS["render-spec"]
deploy = TASKS["deploy"]
status = TASKS["status"]
rollback = TASKS["rollback"]
prune = TASKS["prune"]
teardown = TASKS["teardown"]
graph = TASKS["graph"]
init = TASKS["init"]
hooks_install = TASKS["hooks.install"]
hooks_uninstall = TASKS["hooks.uninstall"]


def _collection() -> Collection:
    ns = Collection()
    groups: dict[str, Collection] = {}
    for name, task in TASKS.items():
        group, _, _ = name.rpartition(".")
        if group:
            if group not in groups:
                groups[group] = Collection(group)
                ns.add_collection(groups[group])
            groups[group].add_task(task)
        else:
            ns.add_task(task)
    return ns


ns = _collection()
