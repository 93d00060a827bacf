"""Per-pull-request previews: a pull request's head deployed to a Pachyderm project of its own.

`--preview N` (or INVOKE_PACHYDERM_PREVIEW=N), with whatever environment is chosen, replaces the
project with `pr-N` on that environment's cluster. The project the settings named is the *base*:

* pfs inputs that name no project and read a repo no pipeline of this project produces get the
  base project at render time, so a preview reads the same data as the base deploy; inputs
  between the project's own pipelines stay inside `pr-N`;
* `deploy` creates `pr-N` when missing, right before its transaction (a deploy stopped earlier
  leaves no empty project), with a description naming the owner and the pull request: the proof
  `teardown` asks for before it deletes the project;
* `teardown` deletes the pipelines this project owns in `pr-N`, downstream first (pachd deletes
  nothing inside a transaction), then the project itself only if its description is the one we
  wrote for this owner and pull request and nothing else is left in it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

from invoke_pachyderm.core.errors import PachdError, RefusedError, UsageError
from invoke_pachyderm.stages.ownership import Owner, describe_owner, owned, owner_of
from invoke_pachyderm.stages.prune import downstream_first, reads

def marker(owner: str, number: int) -> str:
    """The description of a preview project we create; teardown deletes only a project carrying it."""
    return (
        f"Preview of pull request {number} for {owner}, created by invoke-pachyderm; "
        f"`invoke teardown --preview {number}` deletes it"
    )


# -- render ----------------------------------------------------------------------------------
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
def ensure_project(cluster, number: int, owner: Owner, log: Callable[[str], None]) -> None:
    """Create the preview project if missing, marked as ours (another deploy may create it meanwhile)."""
    if cluster.project_exists():
        return
    try:
        cluster.create_project(marker(owner.name, number))
    except PachdError:
        if not cluster.project_exists():
            raise
        return
    log(f"created project {cluster.project} for the preview of pull request {number}")


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
    every = cluster.every_pipeline()
    here = {p.name: p for proj, p in every if proj == cluster.project}
    ours = owned(here, owner)
    _refuse_readers(ours, every, cluster.project)
    doomed = downstream_first(ours, cluster.project)
    result.deleted = [{"pipeline": p.name, "version": p.version} for p in doomed]
    if dry_run:
        fate = _project_fate(cluster, here, ours, owner, settings.preview)
        result.note = f"dry run, nothing deleted; project {cluster.project} would be {fate}"
        return result
    if doomed:
        guard(cluster, {p.name: p.version for p in doomed}, settings.project_dir, "", True)()
        with reporter.group(f"delete {len(doomed)} pipeline(s) of project {cluster.project}, downstream first"):
            delete(cluster, doomed, False, reporter.info)
    _delete_project(cluster, owner, settings.preview, result)
    return result


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
    """Why the project is not ours to delete ("" when its description is our marker)."""
    description = cluster.project_description()
    if description == marker(owner.name, number):
        return ""
    return (
        f"kept: invoke-pachyderm did not create it for {owner.name} and pull request {number} "
        f"(its description is {description!r})"
    )


def _foreign(here: dict, ours: dict, owner: Owner) -> str:
    """The first pipeline in the project that is not ours, described ("" when there is none)."""
    others = sorted(name for name in here if name not in ours)
    if not others:
        return ""
    return f"pipeline {others[0]} in it is {describe_owner(owner_of(here[others[0]].annotations, owner))}"


def _project_fate(cluster, here: dict, ours: dict, owner: Owner, number: int) -> str:
    return _not_created_by_us(cluster, owner, number) or (
        f"kept: {foreign}" if (foreign := _foreign(here, ours, owner)) else "deleted"
    )


def _delete_project(cluster, owner: Owner, number: int, result: Teardown) -> None:
    """Only a project we created for this owner and pull request, and only once it is empty."""
    not_ours = _not_created_by_us(cluster, owner, number)
    if not_ours:
        result.note = f"project {cluster.project} {not_ours}"
        return
    here = {p.name: p for proj, p in cluster.every_pipeline() if proj == cluster.project}
    foreign = _foreign(here, {}, owner)
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
