"""Nox sessions with the same stages as the invoke tasks, for projects that standardize on Nox.

In a noxfile.py::

    from invoke_pachyderm.nox import register

    register()            # sessions: test, build, push, render_spec, deploy

then ``nox -s render_spec``, ``nox -s deploy -- --dry-run --json``. Options after ``--`` are the
task's flags (``nox -s deploy -- --help`` lists them). Sessions use ``python=False``: they run in
the Python that runs nox, which must have invoke-pachyderm installed; no virtualenv is made.

Each session is thin: settings are read as for the tasks (pyproject.toml < ``INVOKE_PACHYDERM_*``
< flags), then the same functions of `flow` run, with the same Reporter (logs on stderr, result on
stdout, GitHub Actions outputs and summary). A failure ends the session with the same one-line
message as the task; nox itself exits 1 (it has no per-error exit codes).
"""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path
from typing import Any, Callable, Sequence

from . import flow, github
from .config import load_settings
from .errors import PachydermToolError
from .flags import argparse_hint, positive_number, text
from .output import Reporter

SESSIONS = ("test", "build", "push", "render_spec", "deploy")


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # no sys.exit inside a nox session
        raise _UsageError(f"{self.prog}: {message}{argparse_hint(self, message)}")

    def exit(self, status=0, message=None):
        if message:
            raise _UsageError(message)
        raise _UsageError("")


def parser_for(stage: str) -> argparse.ArgumentParser:
    parser = _Parser(prog=f"nox -s {stage} --", add_help=True, allow_abbrev=False)
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    if stage in ("build", "push", "deploy"):
        parser.add_argument("--allow-dirty", action="store_true", help="allow uncommitted changes")
    if stage == "render_spec":
        parser.add_argument("--check", action="store_true", help="validate without writing files")
        parser.add_argument("--out-dir", default=None, type=_checked(text), help="directory for rendered specs")
    if stage == "deploy":
        for flag in ("skip-tests", "reprocess", "dry-run", "force", "allow-older", "rebuild"):
            parser.add_argument(f"--{flag}", action="store_true")
        parser.add_argument("--wait", dest="wait", action="store_true", default=None)
        parser.add_argument("--no-wait", dest="wait", action="store_false")
        parser.add_argument("--timeout", type=_checked(positive_number), default=None)
    return parser


def _checked(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def check(value: str) -> Any:
        try:
            return parse(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return check


# -- the stages: each calls flow, then reports ------------------------------------------------
def _test(settings, reporter: Reporter, args) -> tuple[dict[str, Any], str]:
    flow.test_stage(settings, reporter)
    return {"tests": "passed"}, "tests passed"


def _build(settings, reporter: Reporter, args):
    artifacts = flow.tag_stage(settings, args.allow_dirty)
    flow.build_stage(settings, reporter, artifacts)
    github.publish(reporter, "build", artifacts)
    return artifacts.to_json(), "\n".join(f"built {i.ref}" for i in artifacts.images.values())


def _push(settings, reporter: Reporter, args):
    artifacts = flow.tag_stage(settings, args.allow_dirty)
    flow.push_stage(settings, reporter, artifacts)
    github.publish(reporter, "push", artifacts)
    return artifacts.to_json(), "\n".join(f"pushed {i.ref} {i.digest}" for i in artifacts.images.values())


def _render_spec(settings, reporter: Reporter, args):
    artifacts = flow.tag_stage(settings, allow_dirty=True, need_images=False)
    specs = flow.render_stage(settings, artifacts, write=not args.check)
    github.publish(reporter, "render-spec", artifacts)
    verb = "valid" if args.check else "wrote"
    return artifacts.to_json(), "\n".join(f"{verb} {s.path or s.source} ({s.name})" for s in specs)


def _deploy(settings, reporter: Reporter, args):
    options = flow.DeployOptions(
        skip_tests=args.skip_tests,
        reprocess=args.reprocess,
        dry_run=args.dry_run,
        force=args.force,
        allow_dirty=args.allow_dirty,
        allow_older=args.allow_older,
        rebuild=args.rebuild,
        wait=args.wait,
        timeout=args.timeout,
    )
    artifacts = flow.deploy(settings, reporter, options)
    github.publish(reporter, "deploy", artifacts, options.dry_run)
    lines = [
        f"{c.name}: {c.action}" + (f" (version {c.version})" if c.version else "") for c in artifacts.changes
    ]
    return {**artifacts.to_json(), "dry_run": options.dry_run}, "\n".join(lines)


STAGES: dict[str, tuple[Callable, str]] = {
    "test": (_test, "Run the project's tests (the `test_command` setting)."),
    "build": (_build, "Build the image(s), tagged with the commit SHA."),
    "push": (_push, "Push the built image(s) and print each pushed digest."),
    "render_spec": (_render_spec, "Render and validate the pipeline spec templates (-- --check: no files)."),
    "deploy": (_deploy, "Test, build, push, render, and create or update the changed pipelines."),
}


def run_stage(stage: str, project_dir: Path, posargs: Sequence[str], fail: Callable[[str], Any]) -> None:
    """Run one stage as its session does; `fail(message)` ends the session (nox's session.error)."""
    function, _ = STAGES[stage]
    try:
        args = parser_for(stage).parse_args(list(posargs))
    except _UsageError as error:
        text = str(error)
        if text:
            fail(text)
        return  # --help printed
    reporter = Reporter(json_mode=args.json)
    try:
        flags = {"out_dir": getattr(args, "out_dir", None)}
        settings = load_settings(project_dir, {}, flags)
        for secret in settings.secrets():
            reporter.add_secret(secret)
        document, human = function(settings, reporter, args)
    except PachydermToolError as error:
        reporter.error(error.message)
        fail(reporter.redact(error.message))
        return
    reporter.result(document, human)


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
        # `nox` alone runs the checks (test, render_spec); build, push and deploy only when named.
        default = stage in ("test", "render_spec")
        nox.session(name=prefix + stage, python=False, default=default)(_session_function(stage, directory))
    return names


def _session_function(stage: str, directory: Path):
    def session_function(session) -> None:
        run_stage(stage, directory, session.posargs, session.error)

    session_function.__doc__ = STAGES[stage][1]
    session_function.__name__ = stage
    session_function.__qualname__ = stage
    return session_function


def _caller_dir() -> Path:
    for frame in inspect.stack()[2:]:
        filename = frame.filename
        if filename and not filename.startswith("<") and Path(filename).resolve() != Path(__file__).resolve():
            return Path(filename).resolve().parent
    return Path.cwd()
