"""`prune` on its own: what `deploy --prune` does after its transaction, without deploying."""
from __future__ import annotations

from dataclasses import replace

from invoke_pachyderm.stages import flow
from invoke_pachyderm.stages import preview, prune
from invoke_pachyderm.core.artifacts import Artifacts
from invoke_pachyderm.stages.concurrency import guard
from invoke_pachyderm.core.config import Settings
from invoke_pachyderm.core.errors import GitStateError
from invoke_pachyderm.core.output import Reporter
from invoke_pachyderm.stages.ownership import resolve_owner


def prune_pipelines(settings: Settings, reporter: Reporter, dry_run: bool, keep_repo: bool,
                    allow_empty: bool = False) -> Artifacts:
    artifacts = flow.tag_stage(settings, allow_dirty=False, need_images=False)
    if artifacts.git.dirty:  # the templates in the working tree decide what is deleted
        raise GitStateError(
            f"{settings.project_dir}: uncommitted changes; prune decides from the committed templates, "
            "so commit (or stash) first"
        )
    specs = flow.render_stage(settings, artifacts, write=False)
    artifacts = replace(artifacts, specs=specs)
    cluster = flow.connect(settings, reporter)
    owner = resolve_owner(settings, artifacts.git)
    preview.refuse_foreign_project(cluster, settings, owner)
    doomed = prune.orphans(cluster.every_pipeline(), owner, settings.project, specs)
    prune.refuse_empty(settings, specs, doomed, allow_empty)
    if dry_run or not doomed:
        return replace(artifacts, changes=prune.deletion_changes(doomed))
    reporter.info(prune.planned_line(doomed))
    check = guard(cluster, {p.name: p.version for p in doomed}, settings.project_dir, artifacts.git.commit, True)
    return replace(artifacts, changes=flow.prune_after_apply(cluster, reporter, specs, doomed, keep_repo, check))
