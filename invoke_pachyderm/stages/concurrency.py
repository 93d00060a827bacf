"""Optimistic concurrency for deploys: nothing is applied over a state the plan did not see.

A deploy records the version of every pipeline its plan was computed against (absent ones as
None: planned creates). Right before it finishes its transaction (and before it deletes
anything) it reads them again; if one moved, another deploy got there first: the transaction is
deleted unfinished, nothing changes, and the deploy exits with ConcurrentDeployError (code 11).
The older-commit guard is part of that check: when the pipeline that moved now runs a newer
commit, the message says so. A create that collides with one made meanwhile fails inside the
transaction (pachd: ALREADY_EXISTS); the check then runs again and reports it the same way.

pachd offers no compare-and-swap on pipeline versions, so a deploy finishing in the few
milliseconds between the re-read and FinishTransaction is not caught (see README).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from invoke_pachyderm.core.errors import ConcurrentDeployError
from invoke_pachyderm.core.gitinfo import is_ancestor
from invoke_pachyderm.core.artifacts import ANNOTATION_PREFIX


def planned_versions(names: Iterable[str], deployed: Mapping[str, Any]) -> dict[str, int | None]:
    return {name: (deployed[name].version if name in deployed else None) for name in names}


def guard(
    cluster, planned: Mapping[str, int | None], project_dir: Path, commit: str, allow_older: bool
) -> Callable[[], None]:
    """A check to run right before the changes are made; it raises ConcurrentDeployError."""

    def check() -> None:
        now = cluster.deployed(list(planned))
        moved = [name for name, version in planned.items() if _version(now.get(name)) != version]
        if not moved:
            return
        name = moved[0]
        more = f" (and {len(moved) - 1} more)" if len(moved) > 1 else ""
        newer = "" if allow_older else _newer_note(now.get(name), project_dir, commit)
        raise ConcurrentDeployError(
            f"{_movement(name, planned[name], _version(now.get(name)))}{more} during this deploy{newer}; "
            "nothing was changed; rerun to plan again"
        )

    return check


def _version(pipeline) -> int | None:
    return pipeline.version if pipeline is not None else None


def _movement(name: str, before: int | None, after: int | None) -> str:
    if before is None:
        return f"pipeline {name} was created (version {after})"
    if after is None:
        return f"pipeline {name} was deleted (it was version {before})"
    return f"pipeline {name} moved from version {before} to {after}"


def _newer_note(pipeline, project_dir: Path, commit: str) -> str:
    theirs = pipeline.annotations.get(ANNOTATION_PREFIX + "commit") if pipeline is not None else None
    if theirs and theirs != commit and is_ancestor(project_dir, commit, theirs):
        return f"; it now runs commit {theirs[:12]}, newer than this deploy's {commit[:12]}"
    return ""
