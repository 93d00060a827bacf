"""Thin Invoke adapters over `flow`: read c.config, map flags, turn user errors into exit codes.

Flags default to None so that "not given" is distinguishable from "false"; boolean flags are
`optional`, so `--skip-tests` alone means true.
"""
from __future__ import annotations

import functools
import inspect
import logging
from pathlib import Path
from typing import Any

from invoke import Collection, task
from invoke.exceptions import Exit

from .config import load_settings, to_plain
from .errors import ConfigError, PachydermToolError
from .output import Reporter

CONFIG_SECTION = "pachyderm"


class _LazyFlow:
    """`flow` pulls in jinja2 and jsonschema; `invoke --list` and `--help` must not pay for them."""

    def __getattr__(self, name):
        from . import flow as module

        return getattr(module, name)


flow = _LazyFlow()


def _flag(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    return str(value).strip().lower() not in ("0", "false", "no", "off", "")


def project_dir(c) -> Path:
    prefix = getattr(c.config, "_project_prefix", None) or c.config.get("_project_prefix", None)
    return Path(prefix) if prefix else Path.cwd()


def settings_for(c, **flags):
    section = c.config.get(CONFIG_SECTION, None)
    return load_settings(project_dir(c), to_plain(section) if section is not None else {}, flags)


def handled(function):
    """Run a task body; a user error becomes one line on stderr and its exit code."""

    @functools.wraps(function)
    def wrapper(c, *args, **kwargs):
        reporter = Reporter(json_mode=bool(_flag(kwargs.get("json"))))
        try:
            return function(c, reporter, *args, **kwargs)
        except PachydermToolError as error:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            reporter.error(error.message)
            raise Exit(code=error.exit_code) from None

    signature = inspect.signature(function)
    parameters = list(signature.parameters.values())
    wrapper.__signature__ = signature.replace(parameters=[parameters[0], *parameters[2:]])
    return wrapper


def _prepare(c, reporter: Reporter, **flags):
    settings = settings_for(c, **flags)
    for secret in settings.secrets():
        reporter.add_secret(secret)
    return settings


def _github(reporter: Reporter, task_name: str, artifacts, dry_run: bool | None = None) -> None:
    """In GitHub Actions: step outputs and the job summary (see github.py); elsewhere nothing."""
    from . import github

    github.publish(reporter, task_name, artifacts, dry_run)


JSON_HELP = "print one JSON document on stdout (logs go to stderr)"
DIRTY_HELP = "allow uncommitted changes (the tag then says 'dirty' and no clean commit can have it)"


@task(optional=["json"], help={"json": JSON_HELP})
@handled
def test(c, reporter, json=None):
    """Run the project's tests (the `test_command` setting)."""
    settings = _prepare(c, reporter)
    flow.test_stage(settings, reporter)
    reporter.result({"tests": "passed"}, "tests passed")


@task(optional=["allow_dirty", "json"], help={"allow_dirty": DIRTY_HELP, "json": JSON_HELP})
@handled
def build(c, reporter, allow_dirty=None, json=None):
    """Build the image(s), tagged with the commit SHA, with OCI labels."""
    settings = _prepare(c, reporter)
    artifacts = flow.tag_stage(settings, bool(_flag(allow_dirty)))
    flow.build_stage(settings, reporter, artifacts)
    _github(reporter, "build", artifacts)
    reporter.result(artifacts.to_json(), "\n".join(f"built {i.ref}" for i in artifacts.images.values()))


@task(optional=["allow_dirty", "json"], help={"allow_dirty": DIRTY_HELP, "json": JSON_HELP})
@handled
def push(c, reporter, allow_dirty=None, json=None):
    """Push the built image(s) and print each pushed digest."""
    settings = _prepare(c, reporter)
    artifacts = flow.tag_stage(settings, bool(_flag(allow_dirty)))
    flow.push_stage(settings, reporter, artifacts)
    _github(reporter, "push", artifacts)
    reporter.result(
        artifacts.to_json(), "\n".join(f"pushed {i.ref} {i.digest}" for i in artifacts.images.values())
    )


@task(
    name="render-spec",
    optional=["check", "json"],
    help={
        "check": "validate every template without writing files",
        "out_dir": "directory for rendered specs (default build/pipelines)",
        "json": JSON_HELP,
    },
)
@handled
def render_spec(c, reporter, check=None, out_dir=None, json=None):
    """Render the pipeline spec templates with the commit's image tag and validate them."""
    settings = _prepare(c, reporter, out_dir=out_dir)
    artifacts = flow.tag_stage(settings, allow_dirty=True, need_images=False)
    specs = flow.render_stage(settings, artifacts, write=not _flag(check))
    _github(reporter, "render-spec", artifacts)
    verb = "valid" if _flag(check) else "wrote"
    reporter.result(
        artifacts.to_json(),
        "\n".join(f"{verb} {s.path or s.source} ({s.name})" for s in specs),
    )


DEPLOY_HELP = {
    "skip_tests": "do not run the test command first",
    "reprocess": "reprocess all data with the updated pipelines",
    "dry_run": "build, push and change nothing; print the plan (also `invoke --dry deploy`)",
    "force": "update every pipeline, even those whose spec is unchanged",
    "allow_dirty": DIRTY_HELP,
    "allow_older": "deploy even if a pipeline runs a newer commit (a descendant of this one)",
    "rebuild": "build and push even if the tag is already in the registry",
    "wait": "wait until updated pipelines are RUNNING (default: on in CI); --wait=false to skip",
    "timeout": "seconds to wait for RUNNING (default 600)",
    "json": JSON_HELP,
}
BOOL_DEPLOY_FLAGS = ["skip_tests", "reprocess", "dry_run", "force", "allow_dirty", "allow_older", "rebuild", "wait", "json"]


@task(optional=BOOL_DEPLOY_FLAGS, help=DEPLOY_HELP)
@handled
def deploy(
    c, reporter, skip_tests=None, reprocess=None, dry_run=None, force=None, allow_dirty=None,
    allow_older=None, rebuild=None, wait=None, timeout=None, json=None,
):
    """The whole loop: test, build, push, render, and create or update the changed pipelines."""
    settings = _prepare(c, reporter)
    options = flow.DeployOptions(
        skip_tests=bool(_flag(skip_tests)),
        reprocess=bool(_flag(reprocess)),
        dry_run=bool(_flag(dry_run)) or bool(c.config.run.dry),
        force=bool(_flag(force)),
        allow_dirty=bool(_flag(allow_dirty)),
        allow_older=bool(_flag(allow_older)),
        rebuild=bool(_flag(rebuild)),
        wait=_flag(wait),
        timeout=_seconds(timeout),
    )
    artifacts = flow.deploy(settings, reporter, options)
    _github(reporter, "deploy", artifacts, options.dry_run)
    document = {**artifacts.to_json(), "dry_run": options.dry_run}
    reporter.result(document, flow_summary(artifacts, options.dry_run))


def _seconds(value) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if seconds <= 0:
        raise ConfigError(f"task flag: --timeout={value!r} must be a positive number of seconds")
    return seconds


def flow_summary(artifacts, dry_run: bool) -> str:
    lines = []
    for change in artifacts.changes:
        if dry_run:
            lines.append(f"{change.name}: {change.action}")
            if change.diff:
                lines.append(change.diff.rstrip("\n"))
        elif change.action == "unchanged":
            lines.append(f"{change.name}: unchanged (version {change.version})")
        else:
            lines.append(f"{change.name}: {change.action}d (version {change.version})")
    if artifacts.timings is not None:
        lines.append(artifacts.timings.summary())
    return "\n".join(lines)


@task(optional=["json"], help={"json": JSON_HELP})
@handled
def status(c, reporter, json=None):
    """List the project's pipelines: deployed commit, image, version, state, behind HEAD."""
    settings = _prepare(c, reporter)
    rows = flow.status(settings, reporter)
    lines = [
        f"{r['pipeline']}: version {r['version']} {r['state']}"
        f" commit {(r['commit'] or '-')[:12]} image {r['image']}"
        + (" (behind HEAD)" if r["behind_head"] else "")
        + (f" reason: {r['reason']}" if r["reason"] else "")
        for r in rows
    ]
    reporter.result({"pipelines": rows}, "\n".join(lines) or "no pipelines")


@task(optional=["json"], help={"to": "restore the versions deployed from this commit (SHA or prefix)", "json": JSON_HELP})
@handled
def rollback(c, reporter, to=None, json=None):
    """Restore the previous version of each pipeline of the project, in one transaction."""
    settings = _prepare(c, reporter)
    rows = flow.rollback(settings, reporter, to)
    reporter.result(
        {"restored": rows},
        "\n".join(
            f"{r['pipeline']}: restored version {r['restored_version']} "
            f"(commit {(r['restored_commit'] or '-')[:12]}) as version {r['version']}"
            for r in rows
        ),
    )


INIT_HELP = {
    "dir": "directory of the project (default: this project's directory)",
    "name": "project and pipeline name (default: the directory's name)",
    "image": "image repository, without tag (default: localhost:5000/NAME)",
    "input_repo": "the Pachyderm repo the pipeline reads (default: data)",
    "base_image": "base image of the Dockerfile (default: python:3.12-slim)",
    "force": "overwrite files that exist and differ (pyproject.toml: only [tool.invoke-pachyderm])",
    "json": JSON_HELP,
}


@task(optional=["force", "json"], help=INIT_HELP)
@handled
def init(c, reporter, dir=None, name=None, image=None, input_repo=None, base_image=None, force=None, json=None):
    """Write the files of a working project (also: the `invoke-pachyderm init` command)."""
    from .scaffold import scaffold

    result = scaffold(
        Path(dir) if dir else project_dir(c), name=name, image=image, input_repo=input_repo,
        base_image=base_image, force=bool(_flag(force)),
    )
    reporter.result(result.to_json(), result.human())


@task(
    name="install",
    optional=["post_commit", "json"],
    help={"post_commit": "also install a post-commit hook running the same tasks", "json": JSON_HELP},
)
@handled
def hooks_install(c, reporter, post_commit=None, json=None):
    """Install a git pre-push hook running the `hooks` setting's tasks (an existing hook runs first)."""
    from . import hooks

    settings = _prepare(c, reporter)
    actions = hooks.install(settings.project_dir, settings.hooks, post_commit=bool(_flag(post_commit)))
    reporter.result(
        {"hooks": [a.to_json() for a in actions], "tasks": list(settings.hooks)},
        "\n".join(a.human() for a in actions),
    )


@task(name="uninstall", optional=["json"], help={"json": JSON_HELP})
@handled
def hooks_uninstall(c, reporter, json=None):
    """Remove our git hooks and put back the hooks they chained."""
    from . import hooks

    actions = hooks.uninstall(project_dir(c).resolve())
    reporter.result({"hooks": [a.to_json() for a in actions]}, "\n".join(a.human() for a in actions))


hooks_collection = Collection("hooks", hooks_install, hooks_uninstall)
ns = Collection(test, build, push, render_spec, deploy, status, rollback, init, hooks_collection)
