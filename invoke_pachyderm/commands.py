"""Every task, declared once: its name, help, flags and one `run` function.

The adapters only translate: `tasks` (Invoke), `nox` (Nox sessions), `cli` (the
`invoke-pachyderm` command) and `action` (the GitHub action's task runner) build their flags from
`COMMANDS` and call `execute`, which runs the command and maps a user error to its exit code.
A new flag is one `Flag` entry here; a new task is one `Command`.

Nothing here imports flow, docker or python_pachyderm at import time, so `invoke --list` stays fast.
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from invoke_pachyderm.core.errors import Interrupted, PachydermToolError, UsageError
from invoke_pachyderm.core.flags import Flag, positive_number, pull_request_number, text
from invoke_pachyderm.core.output import Reporter
from invoke_pachyderm.scaffold.defaults import DEFAULT_BASE_IMAGE, DEFAULT_INPUT_REPO, DEFAULT_REGISTRY

Result = tuple[Mapping[str, Any], str]  # (the --json document, the human text)


@dataclass
class Request:
    """What an adapter hands a command: where the project is, the flags given and Invoke's config."""

    project_dir: Path
    values: dict[str, Any]  # every declared flag; None when not given
    config: Mapping[str, Any] = field(default_factory=dict)  # Invoke's `pachyderm` section

    def settings(self, reporter: Reporter, **flags: Any):
        from invoke_pachyderm.core.config import load_settings

        settings = load_settings(self.project_dir, self.config, flags)
        for secret in settings.secrets():
            reporter.add_secret(secret)
        return settings

    def on(self, name: str) -> bool:
        return bool(self.values.get(name))

    def env(self) -> dict[str, Any]:
        """The `--env` and `--preview` flags as setting flags, for commands that take them."""
        return {"env": self.values.get("env"), "preview": self.values.get("preview")}


@dataclass(frozen=True)
class Command:
    name: str  # as typed: `invoke render-spec`, `nox -s render_spec`
    help: str  # one line: `invoke --list`, `nox -l`, `invoke-pachyderm --help`
    flags: Mapping[str, Flag]
    run: Callable[[Request, Reporter], Result]
    nox: bool = True  # offered as a Nox session
    nox_default: bool = False  # run by a bare `nox` (checks only: nothing built, pushed or changed)
    positional: tuple[str, ...] = ()  # given without `--NAME` on an argparse command line (the CLI)

    @property
    def session_name(self) -> str:
        return self.name.replace("-", "_").replace(".", "_")


def execute(command: Command, request: Request, debug: bool | None = None) -> tuple[int, str]:
    """Run `command`; its result goes to stdout. Returns (exit code, the redacted error line or "").

    The one place a user error becomes an exit code: one line on stderr, the error's documented
    code (errors.py). With `debug` (Invoke's --debug) the error propagates with its traceback.
    """
    reporter = Reporter(json_mode=request.on("json"))
    _skip_collections_at_exit()
    try:
        document, human = command.run(request, reporter)
    except PachydermToolError as error:
        if debug is None:
            debug = logging.getLogger().isEnabledFor(logging.DEBUG)
        if debug:
            raise
        reporter.error(error.message)
        return error.exit_code, reporter.redact(error.message)
    except KeyboardInterrupt as error:  # stages that change something say what (Interrupted, StoppedWith)
        if debug or (debug is None and logging.getLogger().isEnabledFor(logging.DEBUG)):
            raise
        message = f"interrupted: `{command.name}` stopped before it finished"
        if outcome := getattr(error, "outcome", ""):  # e.g. a prune's deletes (progress.StoppedWith)
            message += f"; {outcome}"
        reporter.error(message)
        return Interrupted.exit_code, message
    reporter.result(document, human)
    return 0, ""


def _skip_collections_at_exit() -> None:
    """Interpreter shutdown runs full garbage collections over every object left: ~0.2 s once
    python_pachyderm's pure-Python protobuf descriptors are loaded, ~0.1 s more with 200 rendered
    specs. Frozen objects are not collected, so an exiting process skips that work; the memory
    goes back to the system with the process, and nothing of ours needs a finalizer run at exit
    (files are closed and temporary folders removed where they are used; weakref.finalize and
    logging flush in atexit handlers of their own, which run after this one)."""
    import atexit
    import gc

    atexit.unregister(gc.freeze)  # once, however many tasks run
    atexit.register(gc.freeze)


# -- the commands' bodies: flow does the work, these only shape the result ------------------
def _flow():
    from invoke_pachyderm.stages import flow  # jinja2 and jsonschema: not for `invoke --list`

    return flow


def _github(reporter: Reporter, task_name: str, artifacts, dry_run: bool | None = None) -> None:
    """In GitHub Actions: step outputs and the job summary (see github.py); elsewhere nothing."""
    from invoke_pachyderm.adapters import github_outputs as github

    github.publish(reporter, task_name, artifacts, dry_run)


def run_test(request: Request, reporter: Reporter) -> Result:
    _flow().test_stage(request.settings(reporter), reporter)
    return {"tests": "passed"}, "tests passed"


def run_build(request: Request, reporter: Reporter) -> Result:
    flow = _flow()
    settings = request.settings(reporter)
    artifacts = flow.tag_stage(settings, request.on("allow_dirty"))
    flow.build_stage(settings, reporter, artifacts)
    _github(reporter, "build", artifacts)
    return artifacts.to_json(), "\n".join(f"built {i.ref}" for i in artifacts.images.values())


def run_push(request: Request, reporter: Reporter) -> Result:
    flow = _flow()
    settings = request.settings(reporter)
    artifacts = flow.tag_stage(settings, request.on("allow_dirty"))
    flow.push_stage(settings, reporter, artifacts)
    _github(reporter, "push", artifacts)
    return artifacts.to_json(), "\n".join(f"pushed {i.ref} {i.digest}" for i in artifacts.images.values())


def run_render_spec(request: Request, reporter: Reporter) -> Result:
    flow = _flow()
    settings = request.settings(reporter, out_dir=request.values.get("out_dir"), **request.env())
    artifacts = flow.tag_stage(settings, allow_dirty=True, need_images=False)
    check = request.on("check")
    specs = flow.render_stage(settings, artifacts, write=not check)
    artifacts = replace(artifacts, specs=specs)
    _github(reporter, "render-spec", artifacts)
    verb = "valid" if check else "wrote"
    return artifacts.to_json(), "\n".join(f"{verb} {s.path or s.source} ({s.name})" for s in specs)


def run_deploy(request: Request, reporter: Reporter) -> Result:
    flow = _flow()
    settings = request.settings(reporter, **request.env())
    switches = (
        "skip_tests", "reprocess", "dry_run", "force", "allow_dirty", "allow_older", "rebuild", "regenerate",
        "rollback_on_failure", "adopt", "prune", "keep_repo", "allow_empty",
    )
    options = flow.DeployOptions(
        **{name: request.on(name) for name in switches},
        wait=request.values.get("wait"),
        timeout=request.values.get("timeout"),
    )
    artifacts = flow.deploy(settings, reporter, options)
    _github(reporter, "deploy", artifacts, options.dry_run)
    return {**artifacts.to_json(), "dry_run": options.dry_run}, deploy_summary(artifacts, options.dry_run)


def deploy_summary(artifacts, dry_run: bool) -> str:
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
    if getattr(artifacts, "timings", None) is not None:
        lines.append(artifacts.timings.summary())
    return "\n".join(lines)


def run_status(request: Request, reporter: Reporter) -> Result:
    settings = request.settings(reporter, **request.env())
    rows = [asdict(row) for row in _flow().status(settings, reporter, every=request.on("all"))]
    from invoke_pachyderm.adapters import github_outputs as github

    github.publish_status(reporter, settings.project, rows)
    lines = [
        f"{r['pipeline']}: version {r['version']} {r['state']}"
        f" commit {(r['commit'] or '-')[:12]} image {r['image']}"
        + (" (behind HEAD)" if r["behind_head"] else "")
        + (f" reason: {r['reason']}" if r["reason"] else "")
        + ("" if r["owned"] else LEGACY_MARK if r["legacy"] else f" [not ours: {_owner_text(r['owner'])}]")
        for r in rows
    ]
    return {"pipelines": rows}, "\n".join(lines) or "no pipelines"


LEGACY_MARK = " [legacy: no owner annotation; prune and rollback leave it until a deploy that renders it takes it over]"


def _owner_text(owner) -> str:
    return f"owned by {owner}" if owner else "made by hand"


def run_prune(request: Request, reporter: Reporter) -> Result:
    from invoke_pachyderm.stages import housekeeping

    settings = request.settings(reporter, **request.env())
    dry_run = request.on("dry_run")
    artifacts = housekeeping.prune_pipelines(
        settings, reporter, dry_run, request.on("keep_repo"), request.on("allow_empty")
    )
    return {**artifacts.to_json(), "dry_run": dry_run}, deploy_summary(artifacts, dry_run) or "nothing to prune"


def run_teardown(request: Request, reporter: Reporter) -> Result:
    from invoke_pachyderm.stages import preview as previews

    settings = request.settings(reporter, **request.env())
    result = previews.teardown(settings, reporter, request.on("dry_run"))
    return result.to_json(), result.human()


def run_graph(request: Request, reporter: Reporter) -> Result:
    from invoke_pachyderm.stages import graph as plan_graph

    format = request.values.get("format") or "mermaid"
    if format not in plan_graph.FORMATS:
        raise UsageError(f"graph --format: {format!r} is not one of {', '.join(plan_graph.FORMATS)}")
    settings = request.settings(reporter)
    artifacts, drawn = _flow().plan_graph(settings, reporter, request.on("allow_dirty"))
    text = plan_graph.FORMATS[format](drawn)
    return {**drawn.to_json(), "commit": artifacts.git.commit, format: text}, text.rstrip("\n")


def run_smoke(request: Request, reporter: Reporter) -> Result:
    settings = request.settings(reporter, **request.env())
    artifacts, runs = _flow().smoke(settings, reporter, request.on("allow_dirty"), request.values.get("pipeline"))
    return {**artifacts.to_json(), "smoke": [r.to_json() for r in runs]}, "\n".join(r.human() for r in runs)


def run_rollback(request: Request, reporter: Reporter) -> Result:
    restored = _flow().rollback(request.settings(reporter, **request.env()), reporter, request.values.get("to"))
    return {"restored": [asdict(r) for r in restored]}, "\n".join(
        f"{r.pipeline}: restored version {r.restored_version} "
        f"(commit {(r.restored_commit or '-')[:12]}) as version {r.version}"
        for r in restored
    )


def run_init(request: Request, reporter: Reporter) -> Result:
    from invoke_pachyderm.scaffold.writer import scaffold

    values = request.values
    result = scaffold(
        Path(values["dir"]) if values.get("dir") else request.project_dir,
        name=values.get("name"),
        image=values.get("image"),
        input_repo=values.get("input_repo"),
        base_image=values.get("base_image"),
        force=request.on("force"),
        ci=values.get("ci") or "github",
    )
    return result.to_json(), result.human()


def run_hooks_install(request: Request, reporter: Reporter) -> Result:
    from invoke_pachyderm.adapters import git_hooks as hooks

    settings = request.settings(reporter)
    actions = hooks.install(settings.project_dir, settings.hooks, post_commit=request.on("post_commit"))
    return (
        {"hooks": [a.to_json() for a in actions], "tasks": list(settings.hooks)},
        "\n".join(a.human() for a in actions),
    )


def run_hooks_uninstall(request: Request, reporter: Reporter) -> Result:
    from invoke_pachyderm.adapters import git_hooks as hooks

    actions = hooks.uninstall(request.project_dir.resolve())
    return {"hooks": [a.to_json() for a in actions]}, "\n".join(a.human() for a in actions)


# -- the declaration ------------------------------------------------------------------------
JSON = Flag("print one JSON document on stdout (logs go to stderr)")
ALLOW_DIRTY = Flag("allow uncommitted changes (the tag then says 'dirty' and no clean commit can have it)")
ENV = Flag(
    "environment: a table of [tool.invoke-pachyderm.environments]", "name", "INVOKE_PACHYDERM_ENV, else none", text
)
KEEP_REPO_HELP = "keep the output repos of deleted pipelines"
ALLOW_EMPTY = Flag(
    "go on when the templates render no pipeline (or, with a prune, when a template renders none): "
    "then every pipeline of ours they no longer render is deleted"
)
PREVIEW = Flag(
    "pull request number: use its preview project pr-N (inputs read the base project)", "number",
    "INVOKE_PACHYDERM_PREVIEW, else none", pull_request_number,
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
    "allow_empty": ALLOW_EMPTY,
    "env": ENV,
    "preview": PREVIEW,
    "json": JSON,
}

INIT_FLAGS = {
    "dir": Flag("directory of the project (created if missing)", "path", "the current directory or project", text),
    "name": Flag("project and pipeline name", "name", "the directory's name", text),
    "image": Flag("image repository, without tag", "repository", f"{DEFAULT_REGISTRY}/NAME", text),
    "input_repo": Flag("the Pachyderm repo the pipeline reads", "repo", DEFAULT_INPUT_REPO, text),
    "base_image": Flag(
        "base image of the Dockerfile; it needs /bin/sh, grep and, if requirements.txt lists packages, "
        "Python with pip", "image", DEFAULT_BASE_IMAGE, text,
    ),
    "force": Flag("overwrite files that exist and differ (pyproject.toml: only [tool.invoke-pachyderm])"),
    "ci": Flag("the CI configuration to write: github (.github/workflows) or gitlab (.gitlab-ci.yml)",
               "github|gitlab", "github", text),
    "json": JSON,
}

COMMANDS: dict[str, Command] = {
    command.name: command
    for command in (
        Command("test", "Run the project's tests (the `test_command` setting).", {"json": JSON}, run_test,
                nox_default=True),
        Command("build", "Build the image(s), tagged with the commit SHA, with OCI labels.",
                {"allow_dirty": ALLOW_DIRTY, "json": JSON}, run_build),
        Command("push", "Push the built image(s) and print each pushed digest.",
                {"allow_dirty": ALLOW_DIRTY, "json": JSON}, run_push),
        Command(
            "render-spec", "Render the pipeline spec templates with the commit's image tag and validate them.",
            {
                "check": Flag("validate every template without writing files"),
                "out_dir": Flag("directory for rendered specs", "path", "setting `out_dir` (build/pipelines)", text),
                "env": ENV,
                "preview": PREVIEW,
                "json": JSON,
            },
            run_render_spec, nox_default=True,
        ),
        Command("deploy", "The whole loop: test, build, push, render, and create or update the changed pipelines.",
                DEPLOY_FLAGS, run_deploy),
        Command(
            "status", "List the project's pipelines: deployed commit, image, version, state, behind HEAD.",
            {
                "all": Flag("list every pipeline of the Pachyderm project, marking those this project does not own"),
                "env": ENV,
                "preview": PREVIEW,
                "json": JSON,
            },
            run_status,
        ),
        Command(
            "rollback", "Restore the previous version of each pipeline of the project, in one transaction.",
            {
                "to": Flag("restore the versions deployed from this commit (SHA or prefix)", "commit",
                           "the previous version", text),
                "env": ENV,
                "json": JSON,
            },
            run_rollback,
        ),
        Command(
            "prune", "Delete the pipelines this project owns whose template is gone, downstream first.",
            {
                "dry_run": Flag("show what would be deleted, delete nothing", short="n"),
                "keep_repo": Flag(KEEP_REPO_HELP),
                "allow_empty": ALLOW_EMPTY,
                "env": ENV,
                "json": JSON,
            },
            run_prune,
        ),
        Command(
            "teardown",
            "Delete a pull request's preview: our pipelines in project pr-N, then the project if we created it.",
            {
                "preview": Flag("the pull request whose preview project pr-N to tear down", "number",
                                "INVOKE_PACHYDERM_PREVIEW", pull_request_number),
                "dry_run": Flag("show what would be deleted, delete nothing", short="n"),
                "env": ENV,
                "json": JSON,
            },
            run_teardown,
        ),
        Command(
            "graph", "Draw the deploy plan: input repos -> pipelines, marked create / update / unchanged / deleted.",
            {
                "format": Flag("mermaid (GitHub and GitLab render it in Markdown) or dot (Graphviz)", "mermaid|dot",
                               "mermaid", text),
                "allow_dirty": ALLOW_DIRTY,
                "json": JSON,
            },
            run_graph,
        ),
        Command(
            "smoke", "Build the image(s) and run each pipeline's transform on sample files in a local container.",
            {
                "pipeline": Flag("run only this pipeline's transform", "name",
                                 "every pipeline whose image the project builds", text),
                "allow_dirty": ALLOW_DIRTY,
                "env": ENV,
                "json": JSON,
            },
            run_smoke,
        ),
        # A project's noxfile exists only after init, and hooks run `invoke`: Invoke (and the CLI) only.
        Command("init", "Write the files of a working project (tasks.py, pyproject.toml, Dockerfile, spec, tests, CI).",
                INIT_FLAGS, run_init, nox=False, positional=("dir",)),
        Command(
            "hooks.install",
            "Install a git pre-push hook running the `hooks` setting's tasks (an existing hook runs first).",
            {"post_commit": Flag("also install a post-commit hook running the same tasks"), "json": JSON},
            run_hooks_install, nox=False,
        ),
        Command("hooks.uninstall", "Remove our git hooks and put back the hooks they chained.", {"json": JSON},
                run_hooks_uninstall, nox=False),
    )
}
