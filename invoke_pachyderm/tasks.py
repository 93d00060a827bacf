"""Thin Invoke adapters over `flow`: read c.config, map flags, turn user errors into exit codes.

Flags are declared once each (`flags.Flag`): switches are real booleans, values are checked while
the command line is read, and a flag that is not given is None, so "not given" differs from "false".
"""
from __future__ import annotations

import functools
import inspect
import logging
from pathlib import Path

from invoke import Collection
from invoke.exceptions import Exit

from .config import load_settings, to_plain
from .errors import Interrupted, PachydermToolError, UsageError
from .flags import Flag, positive_number, pull_request_number, task, text
from .output import Reporter
from .secrecy import install_log_filter

CONFIG_SECTION = "pachyderm"
install_log_filter()  # `invoke --debug` logs the configuration, secrets included, before any task runs


class _LazyFlow:
    """`flow` pulls in jinja2 and jsonschema; `invoke --list` and `--help` must not pay for them."""

    def __getattr__(self, name):
        from . import flow as module

        return getattr(module, name)


flow = _LazyFlow()


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
        reporter = Reporter(json_mode=bool(kwargs.get("json")))
        try:
            return function(c, reporter, *args, **kwargs)
        except PachydermToolError as error:
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            reporter.error(error.message)
            raise Exit(code=error.exit_code) from None
        except KeyboardInterrupt:  # stages that change something say what; the others changed nothing
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                raise
            reporter.error(f"interrupted: `{function.__name__.replace('_', '-')}` stopped before it finished")
            raise Exit(code=Interrupted.exit_code) from None

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


JSON = Flag("print one JSON document on stdout (logs go to stderr)")
ALLOW_DIRTY = Flag("allow uncommitted changes (the tag then says 'dirty' and no clean commit can have it)")
ENV = Flag(
    "environment: a table of [tool.invoke-pachyderm.environments]", "name", "INVOKE_PACHYDERM_ENV, else none", text
)
KEEP_REPO_HELP = "keep the output repos of deleted pipelines"
PREVIEW = Flag(
    "pull request number: use its preview project pr-N (inputs read the base project)", "number",
    "INVOKE_PACHYDERM_PREVIEW, else none", pull_request_number,
)


@task(flags={"json": JSON})
@handled
def test(c, reporter, json=None):
    """Run the project's tests (the `test_command` setting)."""
    settings = _prepare(c, reporter)
    flow.test_stage(settings, reporter)
    reporter.result({"tests": "passed"}, "tests passed")


@task(flags={"allow_dirty": ALLOW_DIRTY, "json": JSON})
@handled
def build(c, reporter, allow_dirty=None, json=None):
    """Build the image(s), tagged with the commit SHA, with OCI labels."""
    settings = _prepare(c, reporter)
    artifacts = flow.tag_stage(settings, bool(allow_dirty))
    flow.build_stage(settings, reporter, artifacts)
    _github(reporter, "build", artifacts)
    reporter.result(artifacts.to_json(), "\n".join(f"built {i.ref}" for i in artifacts.images.values()))


@task(flags={"allow_dirty": ALLOW_DIRTY, "json": JSON})
@handled
def push(c, reporter, allow_dirty=None, json=None):
    """Push the built image(s) and print each pushed digest."""
    settings = _prepare(c, reporter)
    artifacts = flow.tag_stage(settings, bool(allow_dirty))
    flow.push_stage(settings, reporter, artifacts)
    _github(reporter, "push", artifacts)
    reporter.result(
        artifacts.to_json(), "\n".join(f"pushed {i.ref} {i.digest}" for i in artifacts.images.values())
    )


@task(
    name="render-spec",
    flags={
        "check": Flag("validate every template without writing files"),
        "out_dir": Flag("directory for rendered specs", "path", "setting `out_dir` (build/pipelines)", text),
        "env": ENV,
        "preview": PREVIEW,
        "json": JSON,
    },
)
@handled
def render_spec(c, reporter, check=None, out_dir=None, env=None, preview=None, json=None):
    """Render the pipeline spec templates with the commit's image tag and validate them."""
    settings = _prepare(c, reporter, out_dir=out_dir, env=env, preview=preview)
    artifacts = flow.tag_stage(settings, allow_dirty=True, need_images=False)
    specs = flow.render_stage(settings, artifacts, write=not check)
    _github(reporter, "render-spec", artifacts)
    verb = "valid" if check else "wrote"
    reporter.result(
        artifacts.to_json(),
        "\n".join(f"{verb} {s.path or s.source} ({s.name})" for s in specs),
    )


DEPLOY_FLAGS = {
    "skip_tests": Flag("do not run the test command first"),
    "reprocess": Flag("reprocess all data with the updated pipelines"),
    "dry_run": Flag("build, push and change nothing; print the plan (also `invoke --dry deploy`)", short="n"),
    "force": Flag("update every pipeline, even those whose spec is unchanged"),
    "allow_dirty": ALLOW_DIRTY,
    "allow_older": Flag("deploy even if a pipeline runs a newer commit (a descendant of this one)"),
    "rebuild": Flag("build and push even if the tag is already in the registry"),
    "regenerate": Flag("also update pipelines whose only change is new cluster or project defaults (pachd >= 2.8)"),
    "wait": Flag(
        "wait until updated pipelines are RUNNING (--no-wait: do not)",
        default="setting `wait`, else on when CI is set", negatable=True,
    ),
    "timeout": Flag("seconds to wait for RUNNING", "number > 0", "setting `timeout` (600)", positive_number),
    "rollback_on_failure": Flag(
        "implies --wait; if a pipeline does not reach RUNNING in time, restore the replaced versions in one transaction"
    ),
    "adopt": Flag("take over pipelines of the same name that another project owns or that were made by hand"),
    "prune": Flag("delete the pipelines this project owns whose template is gone (after the transaction)"),
    "keep_repo": Flag(KEEP_REPO_HELP + " (with --prune)"),
    "env": ENV,
    "preview": PREVIEW,
    "json": JSON,
}


@task(flags=DEPLOY_FLAGS)
@handled
def deploy(
    c, reporter, skip_tests=None, reprocess=None, dry_run=None, force=None, allow_dirty=None,
    allow_older=None, rebuild=None, regenerate=None, wait=None, timeout=None, json=None, rollback_on_failure=None,
    adopt=None, prune=None, keep_repo=None, env=None, preview=None,
):
    """The whole loop: test, build, push, render, and create or update the changed pipelines."""
    settings = _prepare(c, reporter, env=env, preview=preview)
    options = flow.DeployOptions(
        skip_tests=bool(skip_tests),
        reprocess=bool(reprocess),
        dry_run=bool(dry_run) or bool(c.config.run.dry),
        force=bool(force),
        allow_dirty=bool(allow_dirty),
        allow_older=bool(allow_older),
        rebuild=bool(rebuild),
        regenerate=bool(regenerate),
        wait=wait,
        timeout=timeout,
        rollback_on_failure=bool(rollback_on_failure),
        adopt=bool(adopt),
        prune=bool(prune),
        keep_repo=bool(keep_repo),
    )
    artifacts = flow.deploy(settings, reporter, options)
    _github(reporter, "deploy", artifacts, options.dry_run)
    document = {**artifacts.to_json(), "dry_run": options.dry_run}
    reporter.result(document, flow_summary(artifacts, options.dry_run))


def flow_summary(artifacts, dry_run: bool) -> str:
    lines = []
    for change in artifacts.changes:
        if dry_run:
            lines.append(f"{change.name}: {change.action}")
            if change.diff:
                lines.append(change.diff.rstrip("\n"))
        elif change.action == "unchanged":
            lines.append(f"{change.name}: unchanged (version {change.version})")
        elif change.action == "delete":
            lines.append(f"{change.name}: deleted (was version {change.previous_version})")
        else:
            lines.append(f"{change.name}: {change.action}d (version {change.version})")
        if change.defaults_note:
            lines.append(f"{change.name}: note: {change.defaults_note}")
    return "\n".join(lines)


STATUS_FLAGS = {
    "all": Flag("list every pipeline of the Pachyderm project, marking those this project does not own"),
    "env": ENV,
    "preview": PREVIEW,
    "json": JSON,
}


@task(flags=STATUS_FLAGS)
@handled
def status(c, reporter, json=None, all=None, env=None, preview=None):
    """List the project's pipelines: deployed commit, image, version, state, behind HEAD."""
    settings = _prepare(c, reporter, env=env, preview=preview)
    rows = flow.status(settings, reporter, every=bool(all))
    _github_status(reporter, settings, rows)
    lines = [
        f"{r['pipeline']}: version {r['version']} {r['state']}"
        f" commit {(r['commit'] or '-')[:12]} image {r['image']}"
        + (" (behind HEAD)" if r["behind_head"] else "")
        + (f" reason: {r['reason']}" if r["reason"] else "")
        + ("" if r["owned"] else f" [not ours: {_owner_text(r['owner'])}]")
        for r in rows
    ]
    reporter.result({"pipelines": rows}, "\n".join(lines) or "no pipelines")


def _github_status(reporter: Reporter, settings, rows) -> None:
    from . import github

    github.publish_status(reporter, settings.project, rows)


def _owner_text(owner) -> str:
    return f"owned by {owner}" if owner else "made by hand"


@task(
    flags={
        "to": Flag("restore the versions deployed from this commit (SHA or prefix)", "commit", "the previous version", text),
        "env": ENV,
        "json": JSON,
    },
)
@handled
def rollback(c, reporter, to=None, json=None, env=None):
    """Restore the previous version of each pipeline of the project, in one transaction."""
    settings = _prepare(c, reporter, env=env)
    rows = flow.rollback(settings, reporter, to)
    reporter.result(
        {"restored": rows},
        "\n".join(
            f"{r['pipeline']}: restored version {r['restored_version']} "
            f"(commit {(r['restored_commit'] or '-')[:12]}) as version {r['version']}"
            for r in rows
        ),
    )


PRUNE_FLAGS = {
    "dry_run": Flag("show what would be deleted, delete nothing", short="n"),
    "keep_repo": Flag(KEEP_REPO_HELP),
    "env": ENV,
    "json": JSON,
}


@task(flags=PRUNE_FLAGS)
@handled
def prune(c, reporter, dry_run=None, keep_repo=None, env=None, json=None):
    """Delete the pipelines this project owns whose template is gone, downstream first."""
    from . import housekeeping

    settings = _prepare(c, reporter, env=env)
    dry_run = bool(dry_run) or bool(c.config.run.dry)
    artifacts = housekeeping.prune_pipelines(settings, reporter, dry_run, bool(keep_repo))
    document = {**artifacts.to_json(), "dry_run": dry_run}
    reporter.result(document, flow_summary(artifacts, dry_run) or "nothing to prune")


TEARDOWN_FLAGS = {
    "preview": Flag("the pull request whose preview project pr-N to tear down", "number", "INVOKE_PACHYDERM_PREVIEW", pull_request_number),
    "dry_run": Flag("show what would be deleted, delete nothing", short="n"),
    "env": ENV,
    "json": JSON,
}


@task(flags=TEARDOWN_FLAGS)
@handled
def teardown(c, reporter, preview=None, dry_run=None, env=None, json=None):
    """Delete a pull request's preview: our pipelines in project pr-N, then the project if we created it."""
    from . import preview as previews

    settings = _prepare(c, reporter, env=env, preview=preview)
    result = previews.teardown(settings, reporter, bool(dry_run) or bool(c.config.run.dry))
    reporter.result(result.to_json(), result.human())


GRAPH_FLAGS = {
    "format": Flag("mermaid (GitHub and GitLab render it in Markdown) or dot (Graphviz)", "mermaid|dot", "mermaid", text),
    "allow_dirty": ALLOW_DIRTY,
    "json": JSON,
}


@task(flags=GRAPH_FLAGS)
@handled
def graph(c, reporter, format=None, allow_dirty=None, json=None):
    """Draw the deploy plan: input repos -> pipelines, marked create / update / unchanged / deleted."""
    from . import graph as plan_graph

    format = format or "mermaid"
    if format not in plan_graph.FORMATS:
        raise UsageError(f"graph --format: {format!r} is not one of {', '.join(plan_graph.FORMATS)}")
    settings = _prepare(c, reporter)
    artifacts, drawn = plan_graph.plan_graph(settings, reporter, bool(allow_dirty))
    text = plan_graph.FORMATS[format](drawn)
    reporter.result({**drawn.to_json(), "commit": artifacts.git.commit, format: text}, text.rstrip("\n"))


INIT_FLAGS = {
    "dir": Flag("directory of the project", "path", "this project's directory", text),
    "name": Flag("project and pipeline name", "name", "the directory's name", text),
    "image": Flag("image repository, without tag", "repository", "localhost:5000/NAME", text),
    "input_repo": Flag("the Pachyderm repo the pipeline reads", "repo", "data", text),
    "base_image": Flag("base image of the Dockerfile", "image", "python:3.12-slim", text),
    "force": Flag("overwrite files that exist and differ (pyproject.toml: only [tool.invoke-pachyderm])"),
    "ci": Flag("the CI configuration to write: github or gitlab (.gitlab-ci.yml)", "github|gitlab", "github", text),
    "json": JSON,
}


@task(flags=INIT_FLAGS)
@handled
def init(c, reporter, dir=None, name=None, image=None, input_repo=None, base_image=None, force=None, json=None, ci=None):
    """Write the files of a working project (also: the `invoke-pachyderm init` command)."""
    from .scaffold import scaffold

    result = scaffold(
        Path(dir) if dir else project_dir(c), name=name, image=image, input_repo=input_repo,
        base_image=base_image, force=bool(force), ci=ci or "github",
    )
    reporter.result(result.to_json(), result.human())


@task(
    name="install",
    flags={"post_commit": Flag("also install a post-commit hook running the same tasks"), "json": JSON},
)
@handled
def hooks_install(c, reporter, post_commit=None, json=None):
    """Install a git pre-push hook running the `hooks` setting's tasks (an existing hook runs first)."""
    from . import hooks

    settings = _prepare(c, reporter)
    actions = hooks.install(settings.project_dir, settings.hooks, post_commit=bool(post_commit))
    reporter.result(
        {"hooks": [a.to_json() for a in actions], "tasks": list(settings.hooks)},
        "\n".join(a.human() for a in actions),
    )


@task(name="uninstall", flags={"json": JSON})
@handled
def hooks_uninstall(c, reporter, json=None):
    """Remove our git hooks and put back the hooks they chained."""
    from . import hooks

    actions = hooks.uninstall(project_dir(c).resolve())
    reporter.result({"hooks": [a.to_json() for a in actions]}, "\n".join(a.human() for a in actions))


hooks_collection = Collection("hooks", hooks_install, hooks_uninstall)
ns = Collection(test, build, push, render_spec, deploy, status, rollback, prune, teardown, init, hooks_collection)
ns.add_task(graph)
