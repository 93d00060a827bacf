"""The stages, in the manner of Skaffold: tag -> build -> push -> render -> deploy.

Each takes `Settings`, a `Reporter` and the `Artifacts` record of the commit, and knows nothing
of Invoke. Docker and pachd are reached through `images` and `cluster`, imported only when used.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from . import __version__
from .artifacts import Artifacts, PipelineChange, RenderedSpec
from .config import Settings, is_ci, resolve_pachd
from .errors import GitStateError, PachdError, RefusedError, TestsFailed
from .gitinfo import GitInfo, is_ancestor, read_git_info
from .output import Reporter
from .plan import ANNOTATION_PREFIX, dependency_order, plan_changes
from .render import render_specs, write_specs
from .tagging import tag_image
from .timings import Timings


# -- tag ------------------------------------------------------------------------------
def tag_stage(settings: Settings, allow_dirty: bool, need_images: bool = True) -> Artifacts:
    """Read git, refuse a dirty tree unless allowed, give every image its tag."""
    git = read_git_info(settings.project_dir, ignore=(settings.out_dir,))
    configs = settings.require_images() if need_images else settings.image_configs
    images = {config.name: tag_image(settings, config, git, allow_dirty) for config in configs}
    return Artifacts(git=git, images=images)


# -- test -----------------------------------------------------------------------------
def test_stage(settings: Settings, reporter: Reporter) -> None:
    command = settings.test_command
    # `python` in the command is the interpreter running this tool (its virtualenv first on PATH).
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")}
    with reporter.group(f"test: {command}"):
        result = subprocess.run(
            command,
            shell=True,
            cwd=settings.project_dir,
            env=env,
            stdout=sys.stderr if reporter.json_mode else None,
        )
    if result.returncode != 0:
        raise TestsFailed(f"tests failed: `{command}` exited {result.returncode}; nothing was built")


# -- build / push ---------------------------------------------------------------------
def jobs(settings: Settings) -> int:
    return settings.jobs or os.cpu_count() or 1


def build_stage(settings: Settings, reporter: Reporter, artifacts: Artifacts) -> None:
    from . import images

    with reporter.group("build"):
        images.build_all(settings, artifacts.git, artifacts.images, jobs(settings), _log_for(reporter, artifacts))


def push_stage(settings: Settings, reporter: Reporter, artifacts: Artifacts) -> None:
    from . import images

    with reporter.group("push"):
        images.push_all(settings, artifacts.images, jobs(settings), _log_for(reporter, artifacts))


def build_and_push_stage(settings: Settings, reporter: Reporter, artifacts: Artifacts, rebuild: bool) -> None:
    from . import images

    with reporter.group("build and push"):
        images.build_and_push_all(
            settings, artifacts.git, artifacts.images, rebuild, jobs(settings), _log_for(reporter, artifacts),
            artifacts.timings,
        )


def _log_for(reporter: Reporter, artifacts: Artifacts):
    several = len(artifacts.images) > 1
    return lambda name: reporter.log_for(name if several else None)


# -- render ---------------------------------------------------------------------------
def render_stage(settings: Settings, artifacts: Artifacts, write: bool = True) -> list[RenderedSpec]:
    specs = render_specs(settings, artifacts)
    for spec in specs:
        add_provenance(spec, settings, artifacts)
    artifacts.specs = specs
    if write:
        write_specs(specs, settings.project_dir / settings.out_dir)
    return specs


def provenance(settings: Settings, artifacts: Artifacts, environ=None, uses: str | None = None) -> dict[str, str]:
    """The annotations of a deployed spec; with `uses` (the spec's JSON), only the images it names,
    so that a new tag of one image changes only the specs that run it."""
    environ = os.environ if environ is None else environ
    annotations = {
        "commit": artifacts.git.commit,
        "branch": artifacts.git.branch,
        "tool-version": __version__,
    }
    if artifacts.git.repo_url:
        annotations["repository"] = artifacts.git.repo_url
    for name, image in artifacts.images.items():
        if uses is not None and image.ref not in uses:
            continue
        suffix = "" if name == "main" else f".{name}"
        annotations[f"image{suffix}"] = image.ref
        if image.digest:
            annotations[f"digest{suffix}"] = image.digest
    run_url = ci_run_url(environ)
    if run_url:
        annotations["ci-run"] = run_url
    return {ANNOTATION_PREFIX + key: value for key, value in annotations.items()}


def ci_run_url(environ) -> str | None:
    if environ.get("GITHUB_ACTIONS") == "true" and environ.get("GITHUB_RUN_ID"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{environ['GITHUB_RUN_ID']}"
    return environ.get("CI_JOB_URL") or environ.get("BUILD_URL") or None


def add_provenance(spec: RenderedSpec, settings: Settings, artifacts: Artifacts) -> None:
    metadata = spec.spec.setdefault("metadata", {})
    annotations = metadata.setdefault("annotations", {})
    annotations.update(provenance(settings, artifacts, uses=json.dumps(spec.spec)))


# -- deploy ---------------------------------------------------------------------------
@dataclass
class DeployOptions:
    skip_tests: bool = False
    reprocess: bool = False
    dry_run: bool = False
    force: bool = False
    allow_dirty: bool = False
    allow_older: bool = False
    rebuild: bool = False
    wait: bool | None = None
    timeout: float | None = None


def connect(settings: Settings, reporter: Reporter):
    from .cluster import Cluster

    target = resolve_pachd(settings)
    reporter.add_secret(target.token)
    return Cluster(target, settings.project)


def deploy(settings: Settings, reporter: Reporter, options: DeployOptions) -> Artifacts:
    # Cheap checks first: config, git, templates, pachd, input repos. Then the slow work.
    clock = Timings()
    with clock.stage("tag"):
        artifacts = tag_stage(settings, options.allow_dirty)
    artifacts.timings = clock
    with clock.stage("render"):
        specs = dependency_order(render_stage(settings, artifacts, write=False))
    with clock.stage("pachd"):
        cluster = connect(settings, reporter)
        check_inputs_exist(cluster, specs)
        deployed = cluster.deployed([spec.name for spec in specs])
    if not options.allow_older:
        refuse_older(settings, artifacts.git, deployed)
    if options.dry_run:
        if settings.pin_digest:  # the plan must compare the image references that would be deployed
            from . import images

            with clock.stage("registry"):
                images.lookup_digests(settings, artifacts.images)
            with clock.stage("render"):
                specs = dependency_order(render_stage(settings, artifacts, write=False))
        with clock.stage("plan"):
            artifacts.changes = compute_changes(cluster, specs, deployed, options.force)
        return artifacts
    if not options.skip_tests:
        with clock.stage("test"):
            test_stage(settings, reporter)
    build_and_push_stage(settings, reporter, artifacts, options.rebuild)
    with clock.stage("render"):
        specs = dependency_order(render_stage(settings, artifacts, write=True))
    with clock.stage("plan"):
        artifacts.changes = compute_changes(cluster, specs, deployed, options.force)
    with clock.stage("apply"):
        apply_changes(cluster, reporter, artifacts, deployed, options.reprocess)
    wait = options.wait if options.wait is not None else (settings.wait if settings.wait is not None else is_ci())
    if wait:
        touched = [c.name for c in artifacts.changes if c.action != "unchanged"]
        with reporter.group("wait for pipelines to run"), clock.stage("wait"):
            cluster.wait_running(touched, options.timeout or settings.timeout, reporter.info)
    return artifacts


def check_inputs_exist(cluster, specs: list[RenderedSpec]) -> None:
    produced = {spec.name for spec in specs}
    needed = {repo: spec.name for spec in specs for repo in spec.input_repos if repo not in produced}
    missing = cluster.missing_repos(needed)
    if missing:
        repo = missing[0]
        raise PachdError(
            f"pipeline {needed[repo]} reads repo '{repo}', which does not exist in project "
            f"'{cluster.project}' on pachd at {cluster.target.address}; create it "
            f"(pachctl create repo {repo}) or fix the spec's input; nothing was built or changed"
        )


def refuse_older(settings: Settings, git: GitInfo, deployed: dict[str, Any]) -> None:
    newer: dict[str, bool | None] = {}  # one git process per deployed commit, not per pipeline
    for name, pipeline in deployed.items():
        deployed_commit = pipeline.annotations.get(ANNOTATION_PREFIX + "commit")
        if not deployed_commit or deployed_commit == git.commit:
            continue
        if deployed_commit not in newer:
            newer[deployed_commit] = is_ancestor(settings.project_dir, git.commit, deployed_commit)
        if newer[deployed_commit]:
            raise RefusedError(
                f"pipeline {name} runs commit {deployed_commit[:12]}, which is newer than {git.commit[:12]} "
                "(a descendant of it); an older run finishing late? pass --allow-older to deploy it anyway"
            )


def compute_changes(cluster, specs: list[RenderedSpec], deployed, force: bool) -> list[PipelineChange]:
    deployed_normalized = {name: cluster.normalized(p.spec) for name, p in deployed.items()}
    rendered_normalized = {spec.name: cluster.normalized(spec.spec) for spec in specs}
    changes = plan_changes(specs, deployed_normalized, rendered_normalized, force)
    for change in changes:
        if change.name in deployed:
            change.previous_version = deployed[change.name].version
            if change.action == "unchanged":
                change.version = change.previous_version
    return changes


def apply_changes(cluster, reporter: Reporter, artifacts: Artifacts, deployed, reprocess: bool) -> None:
    by_name = {spec.name: spec for spec in artifacts.specs}
    todo = [c for c in artifacts.changes if c.action != "unchanged"]
    if not todo:
        reporter.info("every pipeline is unchanged; nothing to apply")
        return
    batch = [(by_name[c.name], by_name[c.name].spec, c.name in deployed) for c in todo]
    with reporter.group(f"apply {len(batch)} pipeline change(s) in one transaction"):
        cluster.apply(batch, reprocess)
    after = cluster.states([c.name for c in todo])
    for change in todo:
        change.version = after[change.name].version
        reporter.info(f"{change.name}: {change.action}d, version {change.version}")


# -- status / rollback ----------------------------------------------------------------
def status(settings: Settings, reporter: Reporter) -> list[dict[str, Any]]:
    cluster = connect(settings, reporter)
    try:
        head = read_git_info(settings.project_dir).commit
    except GitStateError:  # status works outside a repository too; "behind" is then unknown
        head = None
    rows = []
    for name, pipeline in sorted(cluster.deployed().items()):
        commit = pipeline.annotations.get(ANNOTATION_PREFIX + "commit")
        behind = None
        if commit and head:
            behind = commit != head and bool(is_ancestor(settings.project_dir, commit, head))
        rows.append(
            {
                "pipeline": name,
                "version": pipeline.version,
                "state": pipeline.state.removeprefix("PIPELINE_"),
                "reason": pipeline.reason,
                "commit": commit,
                "image": pipeline.spec.get("transform", {}).get("image"),
                "behind_head": behind,
            }
        )
    return rows


def rollback(settings: Settings, reporter: Reporter, to_commit: str | None = None) -> list[dict[str, Any]]:
    """Restore, for each pipeline of the project, the previous (or the given commit's) spec, atomically."""
    cluster = connect(settings, reporter)
    restored = []
    batch = []
    for name, current in sorted(cluster.deployed().items()):
        target = pick_rollback_version(cluster, name, current, to_commit)
        if target is None:
            continue
        body = dict(target.spec)
        batch.append((RenderedSpec(name=name, source=f"version {target.version}", spec=body), body, True))
        restored.append(
            {
                "pipeline": name,
                "from_version": current.version,
                "from_commit": current.annotations.get(ANNOTATION_PREFIX + "commit"),
                "restored_version": target.version,
                "restored_commit": target.annotations.get(ANNOTATION_PREFIX + "commit"),
            }
        )
    if not batch:
        what = f"deployed from commit {to_commit}" if to_commit else "to go back to"
        raise PachdError(f"no pipeline of project '{settings.project}' has a version {what}; nothing changed")
    cluster.apply(batch, reprocess=False)
    after = cluster.states([row["pipeline"] for row in restored])
    for row in restored:
        row["version"] = after[row["pipeline"]].version
    return restored


def pick_rollback_version(cluster, name: str, current, to_commit: str | None):
    history = [p for p in cluster.history(name) if p.version < current.version]
    if to_commit:
        for past in history:
            commit = past.annotations.get(ANNOTATION_PREFIX + "commit", "")
            if commit and commit.startswith(to_commit):
                return past
        return None
    current_normalized = cluster.normalized(current.spec)
    for past in history:
        if cluster.normalized(past.spec) != current_normalized:
            return past
    return None


