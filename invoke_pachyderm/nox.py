"""Nox sessions for the tasks of `commands.COMMANDS`, for projects that standardize on Nox.

In a noxfile.py::

    from invoke_pachyderm.nox import register

    register()  # sessions: test, build, push, render_spec, deploy, status, rollback

then ``nox -s render_spec``, ``nox -s deploy -- --dry-run --json``. Options after ``--`` are the
task's flags, from the same declaration as the Invoke task's (``nox -s deploy -- --help`` lists
them). Sessions use ``python=False``: they run in the Python that runs nox, which must have
invoke-pachyderm installed; no virtualenv is made.

Each session is thin: it parses the flags and calls `commands.execute`, as the Invoke task does
(settings: pyproject.toml < ``INVOKE_PACHYDERM_*`` < flags). A failure ends the session with the
task's one-line message; nox itself exits 1 (it has no per-error exit codes).
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, Callable, Sequence

from invoke_pachyderm.adapters.argparsing import ParseStopped, parser_for as _parser_for
from invoke_pachyderm.commands import COMMANDS, Command, Request, execute

STAGES: dict[str, Command] = {command.session_name: command for command in COMMANDS.values() if command.nox}
SESSIONS = tuple(STAGES)


def parser_for(stage: str):
    return _parser_for(STAGES[stage], prog=f"nox -s {stage} --")


def run_stage(stage: str, project_dir: Path, posargs: Sequence[str], fail: Callable[[str], Any]) -> None:
    """Run one stage as its session does; `fail(message)` ends the session (nox's session.error)."""
    command = STAGES[stage]
    try:
        values = vars(parser_for(stage).parse_args(list(posargs)))
    except ParseStopped as stopped:
        if stopped.message:
            fail(stopped.message)
        return  # --help printed
    code, message = execute(command, Request(Path(project_dir), values), debug=False)
    if code:
        fail(message)


def register(project_dir: str | Path | None = None, prefix: str = "", sessions: Sequence[str] = SESSIONS) -> list[str]:
    """Register the sessions with nox (call it at the top level of a noxfile); returns their names.

    project_dir defaults to the directory of the calling noxfile; `prefix` prefixes every session
    name (e.g. "pachyderm-"), for noxfiles that already have a `test` session.
    """
    import nox

    directory = Path(project_dir) if project_dir is not None else _caller_dir()
    names = []
    for stage in sessions:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
        names.append(prefix + stage)
        # `nox` alone runs the checks (test, render_spec); the others only when named.
        nox.session(name=prefix + stage, python=False, default=STAGES[stage].nox_default)(
            _session_function(stage, directory)
        )
    return names


def _session_function(stage: str, directory: Path):
    def session_function(session) -> None:
        run_stage(stage, directory, session.posargs, session.error)

    session_function.__doc__ = STAGES[stage].help
    session_function.__name__ = stage
    session_function.__qualname__ = stage
    return session_function


def _caller_dir() -> Path:
    for frame in inspect.stack()[2:]:
        filename = frame.filename
        if filename and not filename.startswith("<") and Path(filename).resolve() != Path(__file__).resolve():
            return Path(filename).resolve().parent
    return Path.cwd()
