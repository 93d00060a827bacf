"""Per-pull-request previews: a pull request's head deployed to a Pachyderm project of its own.

`--preview N` (or INVOKE_PACHYDERM_PREVIEW=N), with whatever environment is chosen, replaces the
project with `pr-N` on that environment's cluster. The project the settings named is the *base*:

* pfs inputs that name no project and read a repo no pipeline of this project produces get the
  base project at render time, so a preview reads the same data as the base deploy; inputs
  between the project's own pipelines stay inside `pr-N`;
* `deploy` creates `pr-N` when missing, right before its transaction (a deploy stopped earlier
  leaves no empty project), with a description naming the owner and the pull request: the proof
  `teardown` asks for before it deletes the project;
* every spec of a preview carries `invoke-pachyderm.io/preview: N`;
* a `pr-N` that exists without that description is not a preview of ours (it may be a production
  project that happens to be called so): every command that writes under `--preview N` refuses
  it, and `teardown` deletes nothing in it;
* `teardown` deletes the pipelines this project owns in `pr-N` that carry the preview annotation,
  downstream first (pachd deletes nothing inside a transaction), then the project itself only if
  nothing else is left in it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

from invoke_pachyderm.core.artifacts import ANNOTATION_PREFIX
from invoke_pachyderm.core.errors import PachdError, RefusedError, UsageError
from invoke_pachyderm.stages.ownership import Owner, describe_owner, owned, owner_of
from invoke_pachyderm.stages.prune import downstream_first, reads

PREVIEW_ANNOTATION = ANNOTATION_PREFIX + "preview"
DESCRIPTION_SHOWN = 120  # characters of a foreign project's description quoted in an error line


def marker(owner: str, number: int) -> str:
    """The description of a preview project we create; teardown deletes only a project carrying it."""
    return (
        f"Preview of pull request {number} for {owner}, created by invoke-pachyderm; "
        f"`invoke teardown --preview {number}` deletes it"
    )


# -- render ----------------------------------------------------------------------------------
def stamp(settings, specs: Iterable) -> None:
    """Mark each spec of a preview with its pull request: teardown deletes only pipelines so marked."""
    if settings.preview is None:
        return
    for spec in specs:
        metadata = spec.spec.setdefault("metadata", {})
        metadata.setdefault("annotations", {})[PREVIEW_ANNOTATION] = str(settings.preview)


def read_inputs_from_base(settings, specs: Iterable) -> None:
    """Give each pfs input without a project, reading a repo none of `specs` produces, the base project."""
    if settings.base_project is None:
        return
    specs = list(specs)
    produced = {spec.name for spec in specs}
    for spec in specs:
        _point_at(spec.spec.get("input"), settings.base_project, produced)


def _point_at(node: Any, base: str, produced: set[str]) -> None:
    if isinstance(node, dict):
        pfs = node.get("pfs")
        if isinstance(pfs, dict) and pfs.get("repo") and not pfs.get("project") and pfs["repo"] not in produced:
            pfs["project"] = base
        for value in node.values():
            _point_at(value, base, produced)
    elif isinstance(node, list):
        for item in node:
            _point_at(item, base, produced)


# -- deploy ----------------------------------------------------------------------------------
def refuse_foreign_project(cluster, settings, owner: Owner) -> None:
    """Under --preview N, a pr-N that exists and is not our preview of N for this owner: refused.

    Called by every command that writes under a preview, before it builds or changes anything."""
    if settings.preview is None or not cluster.project_exists():
        return
    not_ours = _not_created_by_us(cluster, owner, settings.preview)
    if not_ours:
        raise RefusedError(
            f"project {cluster.project} exists but is not a preview project of ours: {not_ours}; it may be a "
            "production or another team's project, and a preview writes only into the project it created; "
            "nothing was pushed or changed; run previews on another cluster or environment (--env), or rename "
            "that project"
        )


def ensure_project(cluster, number: int, owner: Owner, log: Callable[[str], None]) -> None:
    """Create the preview project if missing, marked as ours (another deploy may create it meanwhile)."""
    if cluster.project_exists():
        _refuse_made_meanwhile(cluster, owner, number)
        return
    try:
        cluster.create_project(marker(owner.name, number))
    except PachdError:
        if not cluster.project_exists():
            raise
        _refuse_made_meanwhile(cluster, owner, number)
        return
    log(f"created project {cluster.project} for the preview of pull request {number}")


def _refuse_made_meanwhile(cluster, owner: Owner, number: int) -> None:
    not_ours = _not_created_by_us(cluster, owner, number)
    if not_ours:
        raise RefusedError(
            f"project {cluster.project} was created during this deploy, not by us: {not_ours}; "
            "nothing was changed on pachd (the images were pushed); rerun to plan again"
        )


# -- teardown --------------------------------------------------------------------------------
@dataclasses.dataclass
class Teardown:
    project: str
    deleted: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    project_deleted: bool = False
    note: str = ""
    dry_run: bool = False

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def human(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        lines = [f"{row['pipeline']}: {verb} (version {row['version']})" for row in self.deleted]
        return "\n".join(lines + [self.note])


def teardown(settings, reporter, dry_run: bool = False) -> Teardown:
    from invoke_pachyderm.stages.concurrency import guard
    from invoke_pachyderm.stages.connection import connect
    from invoke_pachyderm.core.gitinfo import read_git_info_or_none
    from invoke_pachyderm.stages.ownership import resolve_owner
    from invoke_pachyderm.stages.prune import delete

    if settings.preview is None:
        raise UsageError(
            "teardown: which preview? pass --preview N (the pull request number) or set INVOKE_PACHYDERM_PREVIEW"
        )
    cluster = connect(settings, reporter)
    owner = resolve_owner(settings, read_git_info_or_none(settings.project_dir))
    result = Teardown(project=cluster.project, dry_run=dry_run)
    if not cluster.project_exists():
        result.note = f"project {cluster.project} does not exist; nothing to tear down"
        return result
    not_ours = _not_created_by_us(cluster, owner, settings.preview)
    if not_ours:
        raise RefusedError(
            f"project {cluster.project} kept and nothing deleted in it: {not_ours}; teardown deletes only in a "
            "preview project it created (it may be a production or another team's project); "
            "if it is a preview of yours, delete its pipelines by hand"
        )
    every = cluster.every_pipeline()
    here = {p.name: p for proj, p in every if proj == cluster.project}
    ours = this_preview(here, owner, settings.preview)
    _refuse_readers(ours, every, cluster.project)
    doomed = downstream_first(ours, cluster.project)
    result.deleted = [{"pipeline": p.name, "version": p.version} for p in doomed]
    if dry_run:
        foreign = _foreign(here, ours, owner, settings.preview)
        fate = f"kept: {foreign}" if foreign else "deleted"
        result.note = f"dry run, nothing deleted; project {cluster.project} would be {fate}"
        return result
    if doomed:
        guard(cluster, {p.name: p.version for p in doomed}, settings.project_dir, "", True)()
        with reporter.group(f"delete {len(doomed)} pipeline(s) of project {cluster.project}, downstream first"):
            delete(cluster, doomed, False, reporter.info)
    _delete_project(cluster, owner, settings.preview, result)
    return result


def this_preview(here: dict, owner: Owner, number: int) -> dict:
    """The pipelines of `here` this owner's deploy of preview `number` made (owned and so marked)."""
    return {name: p for name, p in owned(here, owner).items() if p.annotations.get(PREVIEW_ANNOTATION) == str(number)}


def _refuse_readers(ours: dict, every: list, project: str) -> None:
    """A pipeline that stays (another owner's, anywhere) reading one of ours: delete nothing."""
    for proj, pipeline in every:
        if proj == project and pipeline.name in ours:
            continue
        for read_project, repo in sorted(reads(pipeline.spec, proj)):
            if read_project == project and repo in ours:
                where = "" if proj == project else f" (project '{proj}')"
                raise RefusedError(
                    f"cannot tear down project {project}: pipeline {pipeline.name}{where}, not ours, reads the "
                    f"output repo of our pipeline {repo}; remove or change {pipeline.name} first; nothing was deleted"
                )


def _not_created_by_us(cluster, owner: Owner, number: int) -> str:
    """Why the project is not ours ("" when its description is our marker for this owner and number)."""
    description = cluster.project_description()
    if description == marker(owner.name, number):
        return ""
    shown = description if len(description) <= DESCRIPTION_SHOWN else description[:DESCRIPTION_SHOWN] + "..."
    return (
        f"invoke-pachyderm did not create it for {owner.name} and pull request {number} "
        f"(its description is {shown!r})"
    )


def _foreign(here: dict, ours: dict, owner: Owner, number: int) -> str:
    """The first pipeline in the project that is not this preview's, described ("" when there is none)."""
    others = sorted(name for name in here if name not in ours)
    if not others:
        return ""
    who = owner_of(here[others[0]].annotations, owner)
    if who == owner.name:
        return (
            f"pipeline {others[0]} in it is ours but was not deployed by this preview "
            f"(no {PREVIEW_ANNOTATION}: '{number}' annotation)"
        )
    return f"pipeline {others[0]} in it is {describe_owner(who)}"


def _delete_project(cluster, owner: Owner, number: int, result: Teardown) -> None:
    """Only a project we created for this owner and pull request (checked first), and only once it is empty."""
    here = {p.name: p for proj, p in cluster.every_pipeline() if proj == cluster.project}
    foreign = _foreign(here, {}, owner, number)
    if foreign:
        raise RefusedError(
            f"project {cluster.project} kept: {foreign}; {_deleted_text(result)}; "
            "delete or move that pipeline, then rerun teardown"
        )
    repos = cluster.repos_in_project()
    if repos:
        raise RefusedError(
            f"project {cluster.project} kept: repo {repos[0]} is still in it (no pipeline of ours made it); "
            f"{_deleted_text(result)}; delete the repo, then rerun teardown"
        )
    cluster.delete_project()
    result.project_deleted = True
    result.note = f"project {cluster.project} deleted"


def _deleted_text(result: Teardown) -> str:
    names = ", ".join(row["pipeline"] for row in result.deleted)
    return f"deleted our pipelines ({names})" if names else "no pipeline of ours was in it"
