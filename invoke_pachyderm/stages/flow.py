"""The stages, in the manner of Skaffold: tag -> build -> push -> render -> deploy.

Each takes `Settings` and a `Reporter`, returns what it produced, and knows nothing of Invoke.
`deploy` is Terraform's plan -> apply: `plan` decides everything (rendering the specs once) and
returns a `DeployPlan`; `--dry-run` prints it; `apply` executes exactly it. Docker and pachd are
reached through `images` and `cluster`, imported only when used; no module below calls back up here.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Any, Callable, Mapping

from invoke_pachyderm import __version__
from invoke_pachyderm.stages import preview
from invoke_pachyderm.stages import prune
from invoke_pachyderm.stages import scope
from invoke_pachyderm.core import secrecy
from invoke_pachyderm.stages import source
from invoke_pachyderm.core.artifacts import Artifacts, DeployPlan, ImageArtifact, PipelineChange, PipelineStatus, RenderedSpec, Restored
from invoke_pachyderm.stages.concurrency import guard, planned_versions
from invoke_pachyderm.core.config import Settings, check_build_files, is_ci
from invoke_pachyderm.stages.connection import EarlyConnection, connect
from invoke_pachyderm.core.errors import (
    ConfigError, HealthError, Interrupted, PachdError, PartlyApplied, RefusedError, TestsFailed,
)
from invoke_pachyderm.core.gitinfo import GitInfo, is_ancestor, read_git_info, read_git_info_or_none
from invoke_pachyderm.core.output import Reporter
from invoke_pachyderm.stages.ownership import (
    OWNER_ANNOTATION, formerly_ours, is_owned, made_here, owner_of, refuse_foreign, resolve_owner, stamp,
)
from invoke_pachyderm.core.artifacts import ANNOTATION_PREFIX
from invoke_pachyderm.backends.build_context import one_template_scan
from invoke_pachyderm.stages.plan import dependency_order, plan_changes
from invoke_pachyderm.core.progress import Progress
from invoke_pachyderm.stages.render import render_specs, write_specs
from invoke_pachyderm.stages.smoke import SmokeRun, check_pipeline, sample_folder, smoke_before_push, smoke_stage
from invoke_pachyderm.stages.tagging import tag_images
from invoke_pachyderm.core.timings import Timings


# -- tag ------------------------------------------------------------------------------
def tag_stage(settings: Settings, allow_dirty: bool, need_images: bool = True) -> Artifacts:
    """Read git, refuse a dirty tree unless allowed, give every image its tag."""
    git = read_git_info(settings.project_dir, ignore=(settings.out_dir,))
    source.check_out_dir(settings, git)  # the dirty check skips out_dir: it may hold nothing that counts
    source.check_checkout_is_the_commit(settings.project_dir, git)
    if not allow_dirty:
        source.check_templates_committed(settings)
    configs = settings.require_images() if need_images else settings.image_configs
    for config in configs if need_images else ():
        check_build_files(settings, config, git.top)
    images = tag_images(settings, list(configs), git, allow_dirty)
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
        raise TestsFailed(f"tests failed: `{command}` exited {result.returncode}; nothing was pushed or deployed")


# -- build / push ---------------------------------------------------------------------
def jobs(settings: Settings) -> int:
    return settings.jobs or default_jobs()


def default_jobs() -> int:
    """The CPUs plus 4, at most 32 (ThreadPoolExecutor's rule for waiting work): the daemon does
    the building, and a build spends much of its time waiting (context upload, registry, layer
    commits). Measured on 2 cores, a cold deploy of 3 images: 2.94 s with 3 at once, 3.25 s with 2."""
    return min(32, (os.cpu_count() or 1) + 4)


def build_stage(settings: Settings, reporter: Reporter, artifacts: Artifacts) -> None:
    from invoke_pachyderm.stages import build_push as images

    try:
        with reporter.group("build"):
            images.build_all(settings, artifacts.git, artifacts.images, jobs(settings), _log_for(reporter, artifacts.images))
    except KeyboardInterrupt:
        built = [i.ref for i in artifacts.images.values() if i.built]
        done = f"built {', '.join(built)}" if built else "no image was built"
        raise Interrupted(f"interrupted during the build; {done}; nothing was pushed or changed") from None


def push_stage(settings: Settings, reporter: Reporter, artifacts: Artifacts) -> None:
    from invoke_pachyderm.stages import build_push as images

    try:
        with reporter.group("push"):
            images.push_all(settings, artifacts.images, jobs(settings), _log_for(reporter, artifacts.images))
    except KeyboardInterrupt:
        raise Interrupted(Progress("the push", images=artifacts.images).describe()) from None


def build_and_push_stage(
    settings: Settings, reporter: Reporter, git: GitInfo, images: Mapping[str, ImageArtifact], rebuild: bool,
    timings: Timings | None = None, before_push=None, builds=None,
) -> None:
    """Each image's tag is looked up in the registry, and built and pushed when absent; the image
    records get built/pushed/digest as that happens (what Ctrl-C reports). `builds`: the
    build_push.Builds begun during the plan (start_builds), finished here."""
    from invoke_pachyderm.stages import build_push as backend

    with reporter.group("build and push"):
        if builds is None:
            builds = backend.Builds(settings, git, dict(images), rebuild, jobs(settings), timings).start()
        builds.finish(_log_for(reporter, images), before_push)


def start_builds(settings: Settings, artifacts: Artifacts, rebuild: bool, timings: Timings):
    """The registry look-ups and builds of `artifacts.images`, begun now in threads of their own
    (build_push.Builds): a deploy's build overlaps its rendering, pachd's answers and the tests.
    Pushed only by apply, after the plan and the tests passed."""
    from invoke_pachyderm.backends.pachd_early import load_protobuf_after
    from invoke_pachyderm.stages import build_push as backend

    builds = backend.Builds(settings, artifacts.git, artifacts.images, rebuild, jobs(settings), timings).start()
    load_protobuf_after(builds.daemon_reached)
    return builds


def _log_for(reporter: Reporter, images: Mapping[str, ImageArtifact]):
    several = len(images) > 1
    return lambda name: reporter.log_for(name if several else None)


# -- render ---------------------------------------------------------------------------
def render_stage(settings: Settings, artifacts: Artifacts, write: bool = True) -> list[RenderedSpec]:
    specs = render_specs(settings, artifacts)
    scope.refuse_other_projects(settings, specs)
    preview.read_inputs_from_base(settings, specs)
    preview.stamp(settings, specs)
    owner = resolve_owner(settings, artifacts.git).name
    for spec in specs:
        add_provenance(spec, settings, artifacts)
        spec.spec["metadata"]["annotations"][OWNER_ANNOTATION] = owner
    secrecy.refuse_secrets_in_specs(specs, secrecy.known_secrets(settings))
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


# -- deploy: plan, then apply (Terraform's contract) --------------------------------------
@dataclass
class DeployOptions:
    skip_tests: bool = False
    reprocess: bool = False
    dry_run: bool = False
    force: bool = False
    allow_dirty: bool = False
    allow_older: bool = False
    rebuild: bool = False
    regenerate: bool = False  # also update pipelines whose only change is new cluster/project defaults
    wait: bool | None = None
    timeout: float | None = None
    rollback_on_failure: bool = False
    adopt: bool = False
    prune: bool = False
    keep_repo: bool = False
    allow_empty: bool = False  # a deploy whose templates render no pipeline (with --prune: delete all of ours)


def deploy(settings: Settings, reporter: Reporter, options: DeployOptions) -> Artifacts:
    """`deploy`: the plan, printed as it is with --dry-run, else applied."""
    progress = Progress()
    clock = Timings()
    builds = None

    def tagged(artifacts: Artifacts) -> None:
        nonlocal builds
        progress.images = artifacts.images
        if not options.dry_run:
            if settings.preview is not None and cluster is not None:  # nothing is built for a pr-N not ours
                preview.refuse_foreign_project(cluster.get(), settings, resolve_owner(settings, artifacts.git))
            builds = start_builds(settings, artifacts, options.rebuild, clock)

    cluster = None
    try:
        cluster = _Connection(settings, reporter)
        planned = plan(settings, reporter, options, cluster, clock, tagged, send_ahead=not options.dry_run)
        progress.images = planned.images
        if options.dry_run:
            return planned.artifacts(clock)
        return apply(settings, reporter, planned, options, cluster.get(), progress, clock, builds)
    except KeyboardInterrupt as interrupt:
        progress.note = getattr(interrupt, "outcome", progress.note)
        raise Interrupted(progress.describe()) from None
    except PachdError as error:
        if (partly := progress.partly_applied(error)) is None:
            raise
        raise partly from None
    finally:
        if builds is not None:
            builds.cancel()  # after a refused plan, no build begins that nothing will push
        if cluster is not None and cluster.cluster is not None:
            cluster.cluster.forget_ahead()  # dry runs sent for an apply that did not come


class _Connection:
    """The pachd connection, begun at once (connection.EarlyConnection) but handed over, and its
    errors raised, when the plan first needs pachd (after the git and template checks)."""

    def __init__(self, settings: Settings, reporter: Reporter, cluster=None):
        self.settings, self.reporter, self.cluster = settings, reporter, cluster
        self._early = EarlyConnection(settings, reporter) if cluster is None else None

    def get(self):
        if self.cluster is None:
            self.cluster = self._early.get() if self._early is not None else connect(self.settings, self.reporter)
        return self.cluster

    def expect(self, tagged: Artifacts) -> None:
        if self._early is not None:
            self._early.expect(tagged.git, [image.ref for image in tagged.images.values()])


def resolve_wait(settings: Settings, options: DeployOptions) -> bool:
    if options.rollback_on_failure and options.wait is False:
        raise ConfigError("task flag: --rollback-on-failure needs --wait (it rolls back what does not run); drop --no-wait")
    wait = options.wait if options.wait is not None else (settings.wait if settings.wait is not None else is_ci())
    return bool(wait or options.rollback_on_failure)


def plan(settings: Settings, reporter: Reporter, options: DeployOptions, cluster=None,
         clock: Timings | None = None, on_tagged: Callable[[Artifacts], None] | None = None,
         send_ahead: bool = False) -> DeployPlan:
    """Decide everything a deploy does before anything is built or changed.

    Reads git and pachd, changes nothing (a dry run with `pin_digest` also asks the registry for
    the digests). Cheap checks first: config, git, templates, pachd, input repos. `cluster`: a
    Cluster, a `_Connection` (connected when first needed), or None to connect here. `on_tagged`
    is told the images and their tags as soon as they are known (deploy begins the builds).
    `send_ahead`: the pachd requests apply will need are sent now, to be answered during the
    build (Cluster.dry_run_ahead; read-only)."""
    clock = clock or Timings()
    wait = resolve_wait(settings, options)
    checks = ["git: the checkout is the commit" + ("" if options.allow_dirty else ", templates committed"),
              "image build inputs exist"]
    with one_template_scan():  # the templates' list, read by the tag and render stages alike
        with clock.stage("tag"):
            tagged = tag_stage(settings, options.allow_dirty)
        if settings.smoke_before_deploy and not options.dry_run:
            sample_folder(settings)  # checked before the build begins; the smoke run is apply's
            checks.append("smoke sample folder exists")
        if options.dry_run and settings.pin_digest:
            # The plan must compare the image references that would be deployed; a dry run builds
            # nothing, so the digests are the registry's (none for a tag not pushed yet).
            from invoke_pachyderm.stages import build_push as images

            with clock.stage("registry"):
                images.lookup_digests(settings, tagged.images)
        if isinstance(cluster, _Connection):
            cluster.expect(tagged)
        with clock.stage("render"):
            specs = dependency_order(render_stage(settings, tagged, write=False))
        if on_tagged is not None:
            # After rendering, so that a template refused (another project, a budget) builds nothing;
            # rendering takes milliseconds, the builds seconds.
            on_tagged(tagged)
    checks += ["specs rendered and valid", "no credential in a spec", "no dependency cycle"]
    with clock.stage("pachd"):
        cluster = cluster.get() if isinstance(cluster, _Connection) else cluster or connect(settings, reporter)
        preview.refuse_foreign_project(cluster, settings, resolve_owner(settings, tagged.git))
        deployed = cluster.deployed([spec.name for spec in specs])
    with clock.stage("plan"):
        changes = compute_changes(cluster, specs, deployed, options.force, options.regenerate)
    if send_ahead:
        sent = {c.name for c in changes if c.action != "unchanged"}
        cluster.dry_run_ahead({spec.name: spec.spec for spec in specs if spec.name in sent})
    with clock.stage("pachd"):
        # an unchanged pipeline sends nothing, and pachd refuses to delete a repo a pipeline reads
        check_inputs_exist(cluster, specs, {c.name for c in changes if c.action != "unchanged"})
        owner = resolve_owner(settings, tagged.git)
        refuse_foreign(deployed, owner, settings.project, options.adopt)
        doomed = prune.orphans(cluster.every_pipeline(), owner, settings.project, specs) if options.prune else []
    prune.refuse_empty(settings, specs, doomed, options.allow_empty)
    checks += ["input repos exist", "no pipeline of another owner" + (" (--adopt)" if options.adopt else ""),
               "the templates render pipelines" + (" (--allow-empty)" if options.allow_empty else "")]
    if options.prune:
        checks.append("no pipeline that stays reads a pruned one")
    if not options.allow_older:
        refuse_older(settings, tagged.git, deployed)
        checks.append("no pipeline runs a newer commit")
    against = {**deployed, **{p.name: p for p in doomed}}  # what the plan is computed against
    return DeployPlan(
        git=tagged.git,
        images=tagged.images,
        specs=tuple(specs),
        changes=tuple(changes),
        deletions=tuple(prune.deletion_changes(doomed)),
        doomed=tuple(doomed),
        deployed=deployed,
        planned_versions=planned_versions([s.name for s in specs] + [p.name for p in doomed], against),
        owner=owner,
        checks=tuple(checks),
        wait=wait,
    )


def apply(settings: Settings, reporter: Reporter, planned: DeployPlan, options: DeployOptions, cluster,
          progress: Progress | None = None, clock: Timings | None = None, builds=None) -> Artifacts:
    """Execute exactly `planned`: tests, build and push, write the specs, one transaction with the
    plan's changes, the prune, the wait (and the rollback when it fails). `builds`: the plan's
    images' builds, begun during the plan (start_builds); else they begin here."""
    progress = progress or Progress(images=planned.images)
    clock = clock or Timings()
    git, images, deployed = planned.git, planned.images, planned.deployed
    check = guard(cluster, planned.planned_versions, settings.project_dir, git.commit, options.allow_older)
    if planned.doomed:  # shown before anything is done, as the dry run shows it
        when = "after the transaction" + (" and the health check" if planned.wait else "")
        reporter.info(prune.planned_line(list(planned.doomed), when))
    smoke_run = smoke_before_push(settings, reporter, Artifacts(git, dict(images)), list(planned.specs))
    if not options.skip_tests:
        progress.stage = "the tests"
        with clock.stage("test"):
            test_stage(settings, reporter)
    progress.stage = "the build and push"
    build_and_push_stage(settings, reporter, git, images, options.rebuild, clock, smoke_run, builds)
    progress.stage = "rendering"
    specs, changes = specs_after_push(settings, planned, cluster, options, clock)
    write_specs(specs, settings.project_dir / settings.out_dir)
    progress.stage, progress.cluster = "the transaction", cluster
    progress.applying = [c.name for c in changes if c.action != "unchanged"]
    progress.before = {name: pipeline.version for name, pipeline in deployed.items()}
    if settings.preview is not None:  # created only now, so a deploy stopped earlier leaves no empty project
        preview.ensure_project(cluster, settings.preview, planned.owner, reporter.info)
    with clock.stage("apply"):
        changes = apply_changes(cluster, reporter, specs, changes, deployed, options.reprocess, check)
    progress.applied, progress.changes = True, changes
    applied = any(c.action != "unchanged" for c in changes)
    if planned.wait:
        # The prune waits for the health check: a deploy that fails it (rolled back or not) has
        # deleted nothing, since a rollback cannot bring back a deleted pipeline or its data.
        progress.stage, progress.note = "the wait for RUNNING", "stopped waiting for RUNNING" + _not_pruned(planned, "interrupted before")
        touched = [c.name for c in changes if c.action in ("create", "update")]
        try:
            with reporter.group("wait for pipelines to run"), clock.stage("wait"):
                from invoke_pachyderm.stages.watch import wait_running

                wait_running(cluster, touched, options.timeout or settings.timeout, reporter.info)
        except HealthError as error:
            if not options.rollback_on_failure:
                raise HealthError(error.message + _not_pruned(planned, "the deploy did not pass its health check")) from None
            progress.stage = "the rollback after a failed deploy"
            progress.note = "the rollback may not have finished; check with `invoke status`" + _not_pruned(
                planned, "the deploy did not pass its health check")
            failed = roll_back_failed_deploy(cluster, reporter, changes, deployed, error)
            failed.message += _not_pruned(planned, "the deploy did not pass its health check")
            raise failed from None
    if planned.doomed:
        progress.stage, progress.note = "the prune", "the prune may not have finished; check with `invoke status`"
        with clock.stage("prune"):
            changes = changes + prune_after_apply(
                cluster, reporter, specs, list(planned.doomed), options.keep_repo, None if applied else check
            )
    return Artifacts(git, dict(images), specs, changes, clock, planned.checks)


def _not_pruned(planned: DeployPlan, why: str) -> str:
    if not planned.doomed:
        return ""
    return f"; not pruned ({why}): " + ", ".join(p.name for p in planned.doomed)


def specs_after_push(settings: Settings, planned: DeployPlan, cluster, options: DeployOptions,
                     clock: Timings) -> tuple[list[RenderedSpec], list[PipelineChange]]:
    """The plan's specs, now with the pushed digests in their provenance.

    Rendered again, and diffed again, only when a template can see the digest (`pin_digest` puts
    it in the image reference; `images.<name>.digest` in a template): the digest is unknown until
    the push. Otherwise the plan's rendering stands and only the volatile digest annotations
    (which no diff counts) are added."""
    artifacts = Artifacts(planned.git, dict(planned.images))
    if settings.pin_digest or _specs_name_digests(settings, planned.specs):
        with clock.stage("render"):
            specs = dependency_order(render_stage(settings, artifacts, write=False))
        with clock.stage("plan"):
            changes = compute_changes(cluster, specs, planned.deployed, options.force, options.regenerate)
        return specs, changes
    specs = [_own_annotations(spec) for spec in planned.specs]
    for spec in specs:
        add_provenance(spec, settings, artifacts)
    return specs, list(planned.changes)


def _own_annotations(spec: RenderedSpec) -> RenderedSpec:
    """A copy of `spec` whose body, metadata and annotations (all add_provenance writes) are its own:
    the rest is shared with the plan's spec, which nothing changes (a deepcopy each cost ~0.1 ms)."""
    body = dict(spec.spec)
    if isinstance(body.get("metadata"), dict):
        body["metadata"] = metadata = dict(body["metadata"])
        if isinstance(metadata.get("annotations"), dict):
            metadata["annotations"] = dict(metadata["annotations"])
    return replace(spec, spec=body)


def _specs_name_digests(settings: Settings, specs) -> bool:
    """Whether a spec's template read a digest: as rendering recorded it, else as the templates say."""
    if any(spec.reads_digest is None for spec in specs):
        return templates_name_digests(settings)
    return any(spec.reads_digest for spec in specs)


def templates_name_digests(settings: Settings) -> bool:
    """Whether a template (or a file beside one, which it may include) mentions `digest`."""
    from invoke_pachyderm.stages.render import find_templates

    folders = {path.parent for path in find_templates(settings)}
    for folder in folders:
        for path in folder.iterdir():
            try:
                if path.is_file() and "digest" in path.read_text(errors="replace"):
                    return True
            except OSError:
                continue
    return False


def roll_back_failed_deploy(cluster, reporter: Reporter, changes: list[PipelineChange], deployed,
                            failure: HealthError):
    """Restore the versions this deploy replaced, in one transaction (as Helm's --atomic does).

    Pipelines this deploy created have no earlier version; they are named, not deleted.
    Returns the error to raise: the failure, saying what was rolled back."""
    updated = [c for c in changes if c.action == "update" and c.name in deployed]
    created = [c.name for c in changes if c.action == "create"]
    targets = [(c.name, deployed[c.name], deployed[c.name]) for c in updated]
    rolled = ""
    if targets:
        with reporter.group(f"roll back {len(targets)} pipeline(s) in one transaction"):
            try:
                rows = restore(cluster, targets, failed={c.name: c.version for c in updated})
            except (PachdError, PartlyApplied) as error:  # its exit code says whether the rollback changed anything
                return type(error)(f"{failure.message}; rolling back failed too: {error.message}")
        rolled = "; rolled back in one transaction: " + ", ".join(
            f"{r.pipeline} to version {r.restored_version} (now version {r.version})" for r in rows
        )
    if created:
        rolled += "; created by this deploy, so left in place: " + ", ".join(created)
    return HealthError(failure.message + (rolled or "; nothing to roll back"))


def check_inputs_exist(cluster, specs: list[RenderedSpec], sent: set[str] | None = None) -> None:
    """Every pfs input repo exists, in the input's own project (the pipeline's when it names none).

    `sent`: the pipelines this deploy creates or updates (None: all); only their inputs are looked
    up, and without any, no ListRepo is sent."""
    produced = {(cluster.project, spec.name) for spec in specs}
    needed: dict[tuple[str, str], str] = {}
    for spec in specs:
        if sent is not None and spec.name not in sent:
            continue
        for pair in sorted(prune.reads(spec.spec, cluster.project) - produced):
            needed.setdefault(pair, spec.name)
    if not needed:
        return
    missing = cluster.missing_repos(needed)
    if missing:
        project, repo = missing[0]
        raise PachdError(
            f"pipeline {needed[missing[0]]} reads repo '{repo}', which does not exist in project "
            f"'{project}' on pachd at {cluster.target.address}; create it "
            f"(pachctl create repo {repo} --project {project}) or fix the spec's input; nothing was built or changed"
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


def compute_changes(cluster, specs: list[RenderedSpec], deployed, force: bool,
                    regenerate: bool = False) -> list[PipelineChange]:
    deployed_normalized, rendered_normalized = {}, {}
    for spec in specs:
        before, rendered_normalized[spec.name] = cluster.compare_forms(deployed.get(spec.name), spec.spec)
        if before is not None:
            deployed_normalized[spec.name] = before
    stale = {name for name, pipeline in deployed.items() if cluster.defaults_changed(pipeline)}
    changes = plan_changes(
        specs, deployed_normalized, rendered_normalized, force, frozenset(stale) if regenerate else frozenset()
    )
    return [_against(change, deployed, stale) for change in changes]


def _against(change: PipelineChange, deployed, stale: set[str]) -> PipelineChange:
    if change.name not in deployed:
        return change
    previous = deployed[change.name].version
    return replace(
        change,
        previous_version=previous,
        defaults_changed=change.name in stale,
        version=previous if change.action == "unchanged" else change.version,
    )


def apply_changes(cluster, reporter: Reporter, specs: list[RenderedSpec], changes: list[PipelineChange], deployed,
                  reprocess: bool, check=None) -> list[PipelineChange]:
    """One transaction with the changes; returns them with the versions pachd gave them."""
    by_name = {spec.name: spec for spec in specs}
    todo = [c for c in changes if c.action != "unchanged"]
    if not todo:
        reporter.info("every pipeline is unchanged; nothing to apply")
        return list(changes)
    batch = [(by_name[c.name], by_name[c.name].spec, c.name in deployed) for c in todo]
    with reporter.group(f"apply {len(batch)} pipeline change(s) in one transaction"):
        try:
            before = {c.name: deployed[c.name].version for c in todo if c.name in deployed}
            cluster.apply(batch, reprocess, before_finish=check, before=before)
        except PachdError:
            if check is not None:
                check()  # a create that collided with one made meanwhile: another deploy's doing
            raise
    after = cluster.versions_after_apply([c.name for c in todo])
    applied = {c.name: replace(c, version=after[c.name]) for c in todo}
    for change in applied.values():
        reporter.info(f"{change.name}: {change.action}d, version {change.version}")
    return [applied.get(c.name, c) for c in changes]


def prune_after_apply(cluster, reporter: Reporter, specs: list[RenderedSpec], doomed, keep_repo: bool,
                      check) -> list[PipelineChange]:
    """Delete after the transaction (pachd cannot delete inside one), downstream first."""
    if check is not None:
        check()
    prune.recheck_readers(cluster.every_pipeline(), doomed, cluster.project, specs)
    with reporter.group(f"prune {len(doomed)} pipeline(s) whose template is gone"):
        prune.delete(cluster, doomed, keep_repo, reporter.info)
    return prune.deletion_changes(doomed)


# -- status / rollback ----------------------------------------------------------------
def git_or_none(settings: Settings) -> GitInfo | None:
    # status works outside a repository too; "behind" is then unknown
    return read_git_info_or_none(settings.project_dir)


def status(settings: Settings, reporter: Reporter, every: bool = False) -> list[PipelineStatus]:
    cluster = connect(settings, reporter)
    git_info = git_or_none(settings)
    head = git_info.commit if git_info else None
    try:
        owner = resolve_owner(settings, git_info)
    except ConfigError:
        if not every:
            raise
        owner = None
    rows = []
    for name, pipeline in sorted(cluster.deployed().items()):
        who = owner_of(pipeline.annotations, owner) if owner else pipeline.annotations.get(OWNER_ANNOTATION, "")
        owned = owner is not None and is_owned(pipeline, owner)
        # legacy and formerly-ours pipelines are shown, marked: no prune or rollback touches them
        legacy = owner is not None and made_here(pipeline.annotations, owner)
        if not (owned or legacy or every or (owner is not None and formerly_ours(pipeline.annotations, owner))):
            continue
        commit = pipeline.annotations.get(ANNOTATION_PREFIX + "commit")
        behind = None
        if commit and head:
            behind = commit != head and bool(is_ancestor(settings.project_dir, commit, head))
        rows.append(
            PipelineStatus(
                pipeline=name,
                version=pipeline.version,
                state=pipeline.state.removeprefix("PIPELINE_"),
                reason=pipeline.reason,
                commit=commit,
                image=pipeline.spec.get("transform", {}).get("image"),
                behind_head=behind,
                owner=who or None,
                owned=owned,
                legacy=legacy,
            )
        )
    return rows


def rollback(settings: Settings, reporter: Reporter, to_commit: str | None = None) -> list[Restored]:
    """Restore, for each pipeline of the project, the previous (or the given commit's) spec, atomically."""
    cluster = connect(settings, reporter)
    owner = resolve_owner(settings, git_or_none(settings))
    preview.refuse_foreign_project(cluster, settings, owner)
    targets = []
    for name, current in sorted(cluster.deployed().items()):
        if not is_owned(current, owner):
            continue  # another project's or made by hand
        target = pick_rollback_version(cluster, name, current, to_commit)
        if target is not None:
            targets.append((name, current, target))
    if not targets:
        what = f"deployed from commit {to_commit}" if to_commit else "to go back to"
        raise PachdError(
            f"no pipeline of project '{settings.project}' owned by {owner.name} has a version {what}; nothing changed"
        )
    progress = Progress("the rollback", cluster=cluster, applying=[name for name, _, _ in targets])
    progress.before = {name: current.version for name, current, _ in targets}
    planned = {name: current.version for name, current, _ in targets}
    try:
        return restore(cluster, targets, owner, guard(cluster, planned, settings.project_dir, "", True))
    except KeyboardInterrupt:
        raise Interrupted(progress.describe()) from None


ROLLED_BACK_FROM = ANNOTATION_PREFIX + "rolled-back-from"


def restore(cluster, targets, owner=None, before_finish=None, failed: Mapping[str, int | None] | None = None
            ) -> list[Restored]:
    """Put back (name, current, target) pipelines' target specs, all in one transaction. `failed`:
    the versions an automatic rollback replaces for failing their health check, recorded on the
    restored spec so that a later plain `rollback` never brings them back."""
    batch = []
    for name, _, target in targets:
        body = cluster.restorable_spec(target)
        if owner is not None:
            body = stamp(body, owner)
        if failed and failed.get(name):
            metadata = dict(body.get("metadata") or {})
            metadata["annotations"] = {**(metadata.get("annotations") or {}), ROLLED_BACK_FROM: str(failed[name])}
            body = {**body, "metadata": metadata}
        batch.append((RenderedSpec(name=name, source=f"version {target.version}", spec=body), body, True))
    cluster.apply(batch, reprocess=False, before_finish=before_finish,
                  before={name: current.version for name, current, _ in targets})
    after = cluster.versions_after_apply([name for name, _, _ in targets])
    return [
        Restored(
            pipeline=name,
            from_version=current.version,
            from_commit=current.annotations.get(ANNOTATION_PREFIX + "commit"),
            restored_version=target.version,
            restored_commit=target.annotations.get(ANNOTATION_PREFIX + "commit"),
            version=after[name],
        )
        for name, current, target in targets
    ]


def pick_rollback_version(cluster, name: str, current, to_commit: str | None):
    every = cluster.history(name)
    history = [p for p in every if p.version < current.version]
    if to_commit:
        for past in history:
            commit = past.annotations.get(ANNOTATION_PREFIX + "commit", "")
            if commit and commit.startswith(to_commit):
                return past
        return None
    failed = {p.annotations.get(ROLLED_BACK_FROM) for p in every}
    for past in history:
        if str(past.version) not in failed and not cluster.same_spec(past, current):
            return past
    return None




# -- smoke and graph: other readings of the same stages ----------------------------------
def smoke(settings: Settings, reporter: Reporter, allow_dirty: bool, only: str | None) -> tuple[Artifacts, list[SmokeRun]]:
    """The `smoke` task: checks (sample folder, templates) first, then build, then the runs."""
    artifacts = tag_stage(settings, allow_dirty)
    sample_folder(settings)
    specs = dependency_order(render_stage(settings, artifacts, write=False))
    check_pipeline(specs, only)
    build_stage(settings, reporter, artifacts)
    return replace(artifacts, specs=specs), smoke_stage(settings, reporter, artifacts, specs, only)


def plan_graph(settings: Settings, reporter: Reporter, allow_dirty: bool):
    """The dry-run plan of `deploy`, plus the pipelines deleted from the templates, as a graph."""
    from invoke_pachyderm.stages.graph import build_graph, owned_but_not_rendered

    cluster = _Connection(settings, reporter)
    options = DeployOptions(dry_run=True, allow_dirty=allow_dirty, allow_older=True)
    planned = plan(settings, reporter, options, cluster)
    deleted = owned_but_not_rendered(cluster.get().deployed(), planned.specs, planned.owner)
    return planned.artifacts(), build_graph(list(planned.specs), planned.all_changes, deleted)
