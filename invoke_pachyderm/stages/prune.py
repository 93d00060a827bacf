"""Prune: delete the pipelines this project owns whose template is gone.

pachd cannot delete a pipeline inside a transaction, so a deploy applies its transaction first
and deletes afterwards, one pipeline at a time, downstream first (a pipeline before the ones it
reads). A pipeline still read by one that stays (ours after this deploy, another owner's, or one
in another project) is never deleted: the prune is refused before anything changes.
"""
from __future__ import annotations

import difflib
import graphlib
import json
from typing import Any, Iterable, Mapping

from invoke_pachyderm.core.artifacts import PipelineChange, RenderedSpec
from invoke_pachyderm.core.errors import ConnectionLost, PachdError, PartlyApplied, RefusedError
from invoke_pachyderm.core.progress import StoppedWith, groups
from invoke_pachyderm.stages.ownership import Owner, owned


def reads(spec: Mapping[str, Any], project: str) -> set[tuple[str, str]]:
    """The (project, repo) pairs a spec's pfs inputs read; a missing project is the pipeline's own."""
    found: set[tuple[str, str]] = set()

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            pfs = node.get("pfs")
            if isinstance(pfs, dict) and pfs.get("repo"):
                found.add((pfs.get("project") or project, pfs["repo"]))
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for item in node:
                visit(item)

    visit(spec.get("input") or {})
    return found


def orphans(
    every: list[tuple[str, Any]], owner: Owner, project: str, specs: list[RenderedSpec]
) -> list[Any]:
    """Owned pipelines of `project` without a template, downstream first; refused if one is still read."""
    rendered = {spec.name for spec in specs}
    here = {p.name: p for proj, p in every if proj == project}
    doomed = {name: p for name, p in owned(here, owner).items() if name not in rendered}
    refuse_readers(doomed, _remaining(every, doomed, project, specs), project)
    return downstream_first(doomed, project)


def _remaining(every, doomed, project: str, specs: list[RenderedSpec]) -> list[tuple[str, str, Mapping]]:
    """(project, name, spec) of every pipeline there will be after the deploy, rendered specs for ours."""
    rendered = {spec.name for spec in specs}
    stays: list[tuple[str, str, Mapping]] = [(project, spec.name, spec.spec) for spec in specs]
    for proj, pipeline in every:
        if proj == project and (pipeline.name in doomed or pipeline.name in rendered):
            continue
        stays.append((proj, pipeline.name, pipeline.spec))
    return stays


def refuse_readers(doomed: Mapping[str, Any], stays: Iterable[tuple[str, str, Mapping]], project: str) -> None:
    for proj, name, spec in stays:
        for read_project, repo in sorted(reads(spec, proj)):
            if read_project == project and repo in doomed:
                where = "" if proj == project else f" (project '{proj}')"
                raise RefusedError(
                    f"cannot prune pipeline {repo}: pipeline {name}{where} still reads its output repo; "
                    f"change or remove {name} first, or keep {repo}'s template; nothing was changed"
                )


def downstream_first(doomed: Mapping[str, Any], project: str) -> list[Any]:
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for name, pipeline in doomed.items():
        upstream = [repo for proj, repo in reads(pipeline.spec, project) if proj == project and repo in doomed]
        sorter.add(name, *[repo for repo in upstream if repo != name])
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError:  # pachd allows no cycles; keep going in name order anyway
        order = sorted(doomed)
    return [doomed[name] for name in reversed(order)]


def refuse_empty(settings, specs: list[RenderedSpec], doomed: list[Any], allow_empty: bool) -> None:
    """An empty rendering is a mistake far more often than a wish to delete everything: a template
    rendering `[]`, or a loop over a list that a variable left empty. Refused unless --allow-empty."""
    if allow_empty:
        return
    from invoke_pachyderm.stages.render import find_templates

    sources = [path.relative_to(settings.project_dir).as_posix() for path in find_templates(settings)]
    rendered = {spec.source for spec in specs}
    empty = [source for source in sources if source not in rendered]
    doomed_text = ", ".join(p.name for p in doomed)
    if not specs:
        deletes = f"; with --prune that deletes {doomed_text}" if doomed else ""
        raise RefusedError(
            f"{', '.join(sources)}: the spec templates render no pipeline{deletes}; nothing was changed; "
            "fix the templates (an empty list, or a loop over an empty variable?), or pass --allow-empty "
            "to deploy nothing" + (" and delete them" if doomed else "")
        )
    if empty and doomed:
        raise RefusedError(
            f"{', '.join(empty)}: renders no pipeline, and --prune would delete {doomed_text} (no template "
            "renders them); nothing was changed; fix that template, or pass --allow-empty to delete them"
        )


def planned_line(doomed: list[Any], when: str = "") -> str:
    """The plan's deletions, printed before anything runs."""
    listed = ", ".join(f"{p.name} (version {p.version})" for p in doomed)
    return f"the plan deletes {len(doomed)} pipeline(s){' ' + when if when else ''}: {listed}"


def deletion_changes(doomed: list[Any]) -> list[PipelineChange]:
    return [
        PipelineChange(name=p.name, action="delete", diff=_removal_diff(p), previous_version=p.version)
        for p in doomed
    ]


def _removal_diff(pipeline) -> str:
    lines = [line + "\n" for line in json.dumps(pipeline.spec, indent=2, sort_keys=True).splitlines()]
    return "".join(difflib.unified_diff(lines, [], fromfile=f"deployed/{pipeline.name}", tofile="/dev/null"))


def delete(cluster, doomed: list[Any], keep_repo: bool, log) -> None:
    """Delete in the given order; a failure names each pipeline as deleted, not deleted or unknown."""
    done: list[str] = []
    for index, pipeline in enumerate(doomed):
        rest = [p.name for p in doomed[index:]]
        try:
            cluster.delete_pipelines([pipeline.name], keep_repo=keep_repo)
        except PachdError as error:
            deleted, kept, unknown = _fates(cluster, done, rest, look_up=isinstance(error, ConnectionLost))
            then = "check with `invoke status`, then rerun" if unknown else "rerun to prune the rest"
            raise (PartlyApplied if deleted or unknown else PachdError)(
                f"{error.message}; {_groups(deleted, kept, unknown)}; {then}"
            ) from None
        except KeyboardInterrupt:  # the delete may have been made: a Ctrl-C waits for the call's answer
            raise StoppedWith(_groups(*_fates(cluster, done, rest, look_up=True))) from None
        done.append(pipeline.name)
        log(f"{pipeline.name}: deleted (was version {pipeline.version})" + (", output repo kept" if keep_repo else ""))


def _fates(cluster, done: list[str], rest: list[str], look_up: bool) -> tuple[list[str], list[str], list[str]]:
    """(deleted, not deleted, unknown) for a prune stopped at rest[0]. `look_up`: its delete may
    have been made, so pachd is asked: gone, it was done; still there, not; no answer, unknown."""
    current = rest[0]
    if look_up:
        try:
            gone = current not in cluster.read_back([current])
        except PachdError:
            return done, rest[1:], [current]
        if gone:
            return [*done, current], rest[1:], []
    return done, rest, []


def _groups(deleted: list[str], kept: list[str], unknown: list[str]) -> str:
    return groups(("deleted", deleted), ("not deleted", kept), ("unknown", unknown))


def recheck_readers(every: list[tuple[str, Any]], doomed: list[Any], project: str, specs: list[RenderedSpec]) -> None:
    """Right before deleting: a pipeline made meanwhile may read one of them."""
    by_name = {p.name: p for p in doomed}
    refuse_readers(by_name, _remaining(every, by_name, project, specs), project)
