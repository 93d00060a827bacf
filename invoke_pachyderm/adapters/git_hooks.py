"""Git hooks that run the project's chosen tasks (setting `hooks`) through invoke.

`install` writes a `pre-push` hook (and, on request, a `post-commit` hook) into the directory git
really uses for hooks (`git rev-parse --git-path hooks`, so `core.hooksPath` is respected). A hook
that is already there and is not ours is moved aside to `<name>.invoke-pachyderm-chained`; ours runs
it first, with the same arguments and standard input, and stops if it fails. `uninstall` removes
ours and moves the chained hook back. Installing twice changes nothing.

The hook runs `python -m invoke <task>` with the Python that installed it (so the project's
virtual environment is used even when git is run from an IDE without it on PATH), else the
`invoke` found on PATH; with that Python's directory first on PATH, so `test_command = "python ..."`
finds the same environment. Knows nothing of Invoke's API.
"""
from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from invoke_pachyderm.core.errors import ConfigError, GitStateError
from invoke_pachyderm.core.gitinfo import git

MARKER = "# invoke-pachyderm hook v1"
CHAINED_SUFFIX = ".invoke-pachyderm-chained"
HOOK_NAMES = ("pre-push", "post-commit")
STDIN_HOOKS = {"pre-push"}  # hooks git feeds on standard input


@dataclass
class HookAction:
    hook: str
    path: str
    action: str  # installed | updated | unchanged | removed | restored | absent | skipped
    chained: str | None = None  # the hook moved aside, run first
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def human(self) -> str:
        text = f"{self.hook}: {self.action} {self.path}"
        if self.chained:
            text += f" (runs {self.chained} first)" if self.action in ("installed", "updated", "unchanged") else ""
        if self.reason:
            text += f" ({self.reason})"
        return text


def hooks_dir(project_dir: Path) -> Path:
    """The hooks directory git uses for the repository of project_dir (core.hooksPath respected)."""
    if git(project_dir, "rev-parse", "--is-inside-work-tree", check=False) != "true":
        raise GitStateError(f"{project_dir}: not a git repository; run `git init` first")
    path = Path(git(project_dir, "rev-parse", "--git-path", "hooks"))
    return path if path.is_absolute() else (project_dir / path).resolve()


def project_relative(project_dir: Path) -> str:
    """The project's path relative to the top of its work tree ('.' at the top)."""
    top = Path(git(project_dir, "rev-parse", "--show-toplevel")).resolve()
    return Path(os.path.relpath(project_dir.resolve(), top)).as_posix()


def check_tasks(tasks: Iterable[Any]) -> list[list[str]]:
    commands = []
    for index, task in enumerate(tasks):
        if not isinstance(task, str) or not task.strip():
            raise ConfigError(f"hooks[{index}] must be a task invocation like \"render-spec --check\", got {task!r}")
        try:
            commands.append(shlex.split(task))
        except ValueError as error:
            raise ConfigError(f"hooks[{index}] {task!r}: {error}") from None
    if not commands:
        raise ConfigError("the `hooks` setting is empty: list the tasks the hook runs, e.g. [\"test\"]")
    return commands


def hook_script(name: str, tasks: list[list[str]], project: str, python: str) -> str:
    """The shell script of hook `name`."""
    invocations = "\n".join(
        f"run_task {' '.join(shlex.quote(word) for word in words)}" for words in tasks
    )
    read_stdin = name in STDIN_HOOKS
    return f"""#!/bin/sh
{MARKER}: {name}
# Runs `invoke` tasks of the project in {project!r} (setting `hooks` under [tool.invoke-pachyderm]).
# Installed by `invoke hooks.install`; `invoke hooks.uninstall` removes it and restores any hook it chained.
# Skip it once with `git {'push' if name == 'pre-push' else 'commit'} --no-verify`{'' if name == 'pre-push' else ' (post-commit hooks cannot be skipped that way; they cannot block either)'}.
hook_name={shlex.quote(name)}
chained="$(dirname "$0")/{name}{CHAINED_SUFFIX}"
python={shlex.quote(python)}
project={shlex.quote(project)}

stdin_file=
cleanup() {{ [ -n "$stdin_file" ] && rm -f "$stdin_file"; }}
trap cleanup EXIT
{'stdin_file="$(mktemp)" || exit 1' if read_stdin else ''}
{'cat >"$stdin_file"' if read_stdin else ''}

# 1. The hook that was here before, with the same arguments and input.
if [ -x "$chained" ]; then
    {'"$chained" "$@" <"$stdin_file"' if read_stdin else '"$chained" "$@"'} || exit $?
fi

{_skip_deletions() if read_stdin else ''}
# 2. The project's tasks.
top="$(git rev-parse --show-toplevel)" || exit 1
unset GIT_DIR GIT_WORK_TREE GIT_INDEX_FILE
cd "$top/$project" || {{ echo "invoke-pachyderm $hook_name hook: no directory $top/$project" >&2; exit 1; }}
if [ -x "$python" ] && "$python" -c "import invoke" >/dev/null 2>&1; then
    PATH="$(dirname "$python"):$PATH"; export PATH
    invoke() {{ "$python" -m invoke "$@"; }}
elif ! command -v invoke >/dev/null 2>&1; then
    echo "invoke-pachyderm $hook_name hook: $python is gone and no invoke on PATH; reinstall with \\`invoke hooks.install\\`" >&2
    exit 1
fi
if [ -n "$(git status --porcelain --untracked-files=no -- . 2>/dev/null)" ]; then
    echo "invoke-pachyderm $hook_name hook: note: uncommitted changes; the tasks see the working tree, not only what is committed" >&2
fi

run_task() {{
    echo "invoke-pachyderm $hook_name hook: invoke $*" >&2
    invoke "$@" </dev/null
    status=$?
    if [ "$status" -ne 0 ]; then
        echo "invoke-pachyderm $hook_name hook: \\`invoke $*\\` failed (exit $status){'; push refused (git push --no-verify skips this hook)' if name == 'pre-push' else ''}" >&2
        exit "$status"
    fi
}}
{invocations}
exit 0
"""


def _skip_deletions() -> str:
    return """# Nothing to check when every pushed ref is a deletion.
if [ -s "$stdin_file" ] && ! awk '$2 !~ /^0+$/ { found = 1 } END { exit !found }' "$stdin_file"; then
    exit 0
fi
"""


def is_ours(path: Path) -> bool:
    try:
        with path.open("r", encoding="utf-8", errors="replace") as handle:
            return MARKER in handle.read(4096)
    except OSError:
        return False


def install(
    project_dir: Path, tasks: Iterable[Any], post_commit: bool = False, python: str | None = None
) -> list[HookAction]:
    commands = check_tasks(tasks)
    directory = hooks_dir(project_dir)
    project = project_relative(project_dir)
    python = python or sys.executable
    names = ["pre-push"] + (["post-commit"] if post_commit else [])
    planned = []
    for name in names:  # check every hook before changing any
        path, chained = directory / name, directory / (name + CHAINED_SUFFIX)
        if path.exists() and not is_ours(path) and chained.exists():
            raise GitStateError(
                f"{path} is not ours, and {chained.name} (a hook we chained) is there too; "
                f"move one of them away, then install again"
            )
        planned.append((name, path, chained))
    directory.mkdir(parents=True, exist_ok=True)
    actions = []
    for name, path, chained in planned:
        script = hook_script(name, commands, project, python)
        moved = False
        if path.exists() or path.is_symlink():
            if is_ours(path):
                if path.read_text(encoding="utf-8", errors="replace") == script and os.access(path, os.X_OK):
                    actions.append(HookAction(name, str(path), "unchanged", _chained(chained)))
                    continue
                action = "updated"
            else:
                os.replace(path, chained)
                moved = True
                action = "installed"
        else:
            action = "installed"
        tmp = path.with_name(f".{name}.invoke-pachyderm-tmp")
        tmp.write_text(script, encoding="utf-8")
        tmp.chmod(tmp.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH | stat.S_IRUSR)
        os.replace(tmp, path)
        reason = "the existing hook was moved aside and runs first" if moved else ""
        actions.append(HookAction(name, str(path), action, _chained(chained), reason))
    return actions


def uninstall(project_dir: Path) -> list[HookAction]:
    directory = hooks_dir(project_dir)
    actions = []
    for name in HOOK_NAMES:
        path, chained = directory / name, directory / (name + CHAINED_SUFFIX)
        if path.exists() and not is_ours(path):
            reason = "not installed by invoke-pachyderm; left alone"
            if chained.exists():
                reason += f"; {chained.name} is still there"
            actions.append(HookAction(name, str(path), "skipped", None, reason))
            continue
        if path.exists():
            path.unlink()
            if chained.exists() or chained.is_symlink():
                os.replace(chained, path)
                actions.append(HookAction(name, str(path), "restored", None, "the hook that was there before"))
            else:
                actions.append(HookAction(name, str(path), "removed"))
        elif chained.exists():
            os.replace(chained, path)
            actions.append(HookAction(name, str(path), "restored", None, "ours was already gone"))
        else:
            actions.append(HookAction(name, str(path), "absent"))
    return actions


def _chained(chained: Path) -> str | None:
    return str(chained) if chained.exists() else None
