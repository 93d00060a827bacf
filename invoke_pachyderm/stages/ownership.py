"""Which pipelines of a shared Pachyderm project are this project's: the owner annotation.

Every pipeline we deploy carries `invoke-pachyderm.io/owner`. Its default names the git remote
and the project's directory inside the repository (`github.com/org/repo//pipelines/edges`), so
every clone, laptop or CI runner of one project agrees on it; the `owner` setting overrides it.

Pipelines deployed before owners existed carry our other annotations but no owner. Such a
pipeline counts as ours when its `repository` annotation is our git remote, or, with no remote
on either side, when its `commit` annotation is a commit our repository knows. The next deploy
adds the owner annotation (a one-time `update`: the owner is part of the spec, not volatile).
"""
from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from invoke_pachyderm.core.errors import ConfigError, GitStateError, RefusedError
from invoke_pachyderm.core.gitinfo import GitInfo, git
from invoke_pachyderm.core.artifacts import ANNOTATION_PREFIX

OWNER_ANNOTATION = ANNOTATION_PREFIX + "owner"
COMMIT_ANNOTATION = ANNOTATION_PREFIX + "commit"
REPOSITORY_ANNOTATION = ANNOTATION_PREFIX + "repository"
HAND_MADE = ""  # the "owner" of a pipeline without our annotations


@dataclass(frozen=True)
class Owner:
    name: str
    repository: str | None  # our git remote, for pipelines deployed before owners existed
    project_dir: Path


def resolve_owner(settings, git_info: GitInfo | None) -> Owner:
    """The `owner` setting, else derived from the git remote and the project's place in the repository."""
    repository = git_info.repo_url if git_info else None
    if settings.owner:
        return Owner(settings.owner, repository, settings.project_dir)
    if git_info is None:
        raise ConfigError(
            f"{settings.project_dir}: not a git repository, so the owner of this project's pipelines cannot be "
            "derived; set `owner` under [tool.invoke-pachyderm] (or pass --all to list every pipeline)"
        )
    return Owner(default_owner(settings.project_dir, repository, git_info.top), repository, settings.project_dir)


def default_owner(project_dir: Path, repository: str | None, top: str | None = None) -> str:
    """`top`: the work tree's top as git printed it (GitInfo.top), which spares a git process."""
    try:
        root, prefix = _known_place(project_dir, top) or _place_in_repository(project_dir)
    except GitStateError:
        prefix, root = "", project_dir
    base = remote_name(repository) if repository else f"local/{root.name}"
    return f"{base}//{prefix}" if prefix else base


def _known_place(project_dir: Path, top: str | None) -> tuple[Path, str] | None:
    """What `git rev-parse --show-toplevel --show-prefix` says, from the top it already said: git's
    prefix is the physical working directory relative to the top (None when it is not below it)."""
    if not top:
        return None
    here = os.path.realpath(project_dir)
    if here == top:
        return Path(top), ""
    if not here.startswith(top.rstrip("/") + "/"):
        return None
    return Path(top), here[len(top.rstrip("/")) + 1:]


@functools.lru_cache(maxsize=16)
def _place_in_repository(project_dir: Path) -> tuple[Path, str]:
    """(top level, the project's prefix in it): one git process, once per process (a deploy asks
    three times); a failure is not cached."""
    top, _, prefix = git(project_dir, "rev-parse", "--show-toplevel", "--show-prefix").partition("\n")
    return Path(top), prefix.strip("/")


def remote_name(url: str) -> str:
    """`https://host/org/repo.git` and `git@host:org/repo.git` both become `host/org/repo`."""
    if "://" in url:
        url = url.split("://", 1)[1]
    else:
        scp = re.match(r"^(?:[^@/]+@)?([^:/]+):(?!/)(.*)$", url)
        if scp:
            url = f"{scp.group(1)}/{scp.group(2)}"
    url = url.rstrip("/")
    return url[: -len(".git")] if url.endswith(".git") else url


def owner_of(annotations: Mapping[str, str], owner: Owner) -> str:
    """Who owns a deployed pipeline: an owner name, or HAND_MADE."""
    if annotations.get(OWNER_ANNOTATION):
        return annotations[OWNER_ANNOTATION]
    commit = annotations.get(COMMIT_ANNOTATION)
    if not commit:
        return HAND_MADE
    theirs = annotations.get(REPOSITORY_ANNOTATION)
    if theirs and owner.repository:
        return owner.name if theirs == owner.repository else remote_name(theirs)
    if not theirs and not owner.repository and _commit_known(owner.project_dir, commit):
        return owner.name
    return remote_name(theirs) if theirs else f"another repository (commit {commit[:12]})"


def _commit_known(project_dir: Path, commit: str) -> bool:
    result = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=project_dir, capture_output=True
    )
    return result.returncode == 0


def is_owned(pipeline, owner: Owner) -> bool:
    return owner_of(pipeline.annotations, owner) == owner.name


def owned(deployed: Mapping[str, object], owner: Owner) -> dict:
    return {name: p for name, p in deployed.items() if is_owned(p, owner)}


def describe_owner(who: str) -> str:
    if who == HAND_MADE:
        return f"created by hand or by another tool (no {OWNER_ANNOTATION} annotation)"
    return f"owned by {who}"


def refuse_foreign(deployed: Mapping[str, Any], owner: Owner, project: str, adopt: bool) -> None:
    """A pipeline we would create or update that exists but is not ours: refused unless adopting."""
    if adopt:
        return
    for name, pipeline in sorted(deployed.items()):
        who = owner_of(pipeline.annotations, owner)
        if who != owner.name:
            raise RefusedError(
                f"pipeline {name} already exists in project '{project}' and is {describe_owner(who)}, "
                f"not by {owner.name}; rename yours, or pass --adopt to take it over"
            )


def stamp(spec: dict, owner: Owner) -> dict:
    """The spec with our owner annotation (a restored old version may predate owners)."""
    metadata = dict(spec.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), OWNER_ANNOTATION: owner.name}
    return {**spec, "metadata": metadata}
