"""The GitHub action's task runner: `python -m invoke_pachyderm.adapters.github_action` (action.yml, "Run the tasks").

Reads the action's inputs from the environment: ACTION_TASKS, one `invoke` invocation per line
(`#` starts a comment), run in order, stopping at the first failure with its exit code; and
ACTION_DRY_RUN, a boolean (flags.switch): when true, every task that declares a `dry_run` flag
(commands.py) gets `--dry-run`.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import Mapping

from invoke_pachyderm.commands import COMMANDS
from invoke_pachyderm.core.errors import ConfigError
from invoke_pachyderm.core.flags import switch


def dry_run_input(value: str) -> bool:
    if not value.strip():
        return False
    try:
        return switch(value)
    except ValueError:
        raise ConfigError(f"dry-run must be true or false, not {value!r}") from None


def invocations(tasks: str) -> list[list[str]]:
    return [words for words in (line.split("#", 1)[0].split() for line in tasks.splitlines()) if words]


def with_dry_run(words: list[str]) -> list[str]:
    """`--dry-run` after each task that declares it, unless the line already asks for a dry run."""
    dry = {name: command.flags["dry_run"] for name, command in COMMANDS.items() if "dry_run" in command.flags}
    if any(word == "--dry-run" or (flag.short and word == "-" + flag.short) for word in words for flag in dry.values()):
        return words
    result = []
    for word in words:
        result.append(word)
        if word in dry:
            result.append("--dry-run")
    return result


def runner(environ: Mapping[str, str]) -> tuple[list[str], str]:
    """project-tasks true (default): `invoke`, which imports the project's tasks.py. false: the
    library's own tasks, isolated from the checkout (program.py), for a job holding a secret with a
    pull request's code checked out."""
    value = environ.get("ACTION_PROJECT_TASKS", "")
    try:
        project_tasks = switch(value) if value.strip() else True
    except ValueError:
        raise ConfigError(f"project-tasks must be true or false, not {value!r}") from None
    if project_tasks:
        return [sys.executable, "-m", "invoke"], "invoke"
    return [sys.executable, "-I", "-m", "invoke_pachyderm.adapters.program"], "python -I -m invoke_pachyderm.adapters.program"


def run(environ: Mapping[str, str]) -> int:
    dry_run = dry_run_input(environ.get("ACTION_DRY_RUN", ""))
    command, label = runner(environ)
    lines = invocations(environ.get("ACTION_TASKS", ""))
    if not lines:
        raise ConfigError("the tasks input names no task")
    for words in lines:
        if dry_run:
            words = with_dry_run(words)
        print(f"invoke-pachyderm action: {label} {' '.join(words)}", flush=True)
        code = subprocess.run([*command, *words]).returncode
        if code:
            return code
    return 0


def main() -> int:
    try:
        return run(os.environ)
    except ConfigError as error:
        print(f"::error::{error.message}", flush=True)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
