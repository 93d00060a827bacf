"""Which pipelines of a shared Pachyderm project are this project's: the owner annotation.

Every pipeline we deploy carries `invoke-pachyderm.io/owner`. Its default names the git remote
and the project's directory inside the repository (`github.com/org/repo//pipelines/edges`), so
every clone, laptop or CI runner of one project agrees on it; the `owner` setting overrides it.

Without a remote the repository is named by its root commit, `local/<sha>//pipelines/edges`:
unrelated repositories have different first commits even in folders of the same name. With
several root commits (unrelated histories merged) it is the one reached by first parents from
HEAD, which later merges do not change. A shallow clone without a remote does not know its root
commit: its owner cannot be derived (set `owner`). Copies of one history (a copied folder, a
clone whose remote was removed) share the root commit, so the owner: set `owner` in a copy.
Earlier releases named such a repository `local/<folder>`; a pipeline they stamped is not ours
(never pruned, rolled back or taken over) and a deploy that renders it is refused with the fix.

Pipelines deployed before owners existed ("legacy": our commit and repository annotations but
no owner) do not say which project of a repository made them, so inference never makes one
owned: prune, rollback and teardown leave it. A deploy whose templates render its name, from the
repository that made it (its `repository` annotation is our remote, or with no remote on either
side its commit is known here), updates it and stamps our owner, without --adopt.
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
    former: str | None = None  # `local/<folder>`, what earlier releases derived without a remote


def resolve_owner(settings, git_info: GitInfo | None) -> Owner:
    """The `owner` setting, else derived from the git remote (or root commit) and the project's place in the repository."""
    repository = git_info.repo_url if git_info else None
    if settings.owner:
        return Owner(settings.owner, repository, settings.project_dir)
    if git_info is None:
        raise ConfigError(
            f"{settings.project_dir}: not a git repository, so the owner of this project's pipelines cannot be "
            "derived; set `owner` under [tool.invoke-pachyderm] (or pass --all to list every pipeline)"
        )
    name = default_owner(settings.project_dir, repository, git_info.top)
    former = None if repository else _former_owner(settings.project_dir, git_info.top)
    return Owner(name, repository, settings.project_dir, former)


def default_owner(project_dir: Path, repository: str | None, top: str | None = None) -> str:
    """`top`: the work tree's top as git printed it (GitInfo.top), which spares a git process."""
    _, prefix = _place(project_dir, top)
    base = remote_name(repository) if repository else f"local/{root_commit(project_dir)}"
    return f"{base}//{prefix}" if prefix else base


def _former_owner(project_dir: Path, top: str | None) -> str:
    root, prefix = _place(project_dir, top)
    return f"local/{root.name}//{prefix}" if prefix else f"local/{root.name}"


def _place(project_dir: Path, top: str | None) -> tuple[Path, str]:
    try:
        return _known_place(project_dir, top) or _place_in_repository(project_dir)
    except GitStateError:
        return project_dir, ""


@functools.lru_cache(maxsize=16)
def root_commit(project_dir: Path) -> str:
    """The root commit reached by first parents from HEAD (once per process; a failure is not cached)."""
    if git(project_dir, "rev-parse", "--is-shallow-repository") == "true":
        raise ConfigError(
            f"{project_dir}: a shallow clone without a git remote does not know its first commit, so the owner "
            "of this project's pipelines cannot be derived; set `owner` under [tool.invoke-pachyderm]"
        )
    return git(project_dir, "rev-list", "--first-parent", "--max-parents=0", "HEAD").split()[0]


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
    """Who owns a deployed pipeline: an owner name, a legacy pipeline's repository, or HAND_MADE."""
    if annotations.get(OWNER_ANNOTATION):
        return annotations[OWNER_ANNOTATION]
    commit = annotations.get(COMMIT_ANNOTATION)
    if not commit:
        return HAND_MADE
    theirs = annotations.get(REPOSITORY_ANNOTATION)
    if made_here(annotations, owner):
        return f"{remote_name(theirs) if theirs else 'this repository'} (deployed before owners existed)"
    return remote_name(theirs) if theirs else f"another repository (commit {commit[:12]})"


def is_legacy(annotations: Mapping[str, str]) -> bool:
    return not annotations.get(OWNER_ANNOTATION) and bool(annotations.get(COMMIT_ANNOTATION))


def made_here(annotations: Mapping[str, str], owner: Owner) -> bool:
    """A legacy pipeline deployed from this repository (by which of its projects, nothing says)."""
    if not is_legacy(annotations):
        return False
    theirs, ours = annotations.get(REPOSITORY_ANNOTATION), owner.repository
    if theirs and ours:
        return remote_name(theirs) == remote_name(ours)
    if theirs or ours:
        return False
    return _commit_known(owner.project_dir, annotations[COMMIT_ANNOTATION])


def _commit_known(project_dir: Path, commit: str) -> bool:
    result = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=project_dir, capture_output=True
    )
    return result.returncode == 0


def is_owned(pipeline, owner: Owner) -> bool:
    """Ours to prune, roll back or tear down: only the owner annotation says so."""
    return pipeline.annotations.get(OWNER_ANNOTATION) == owner.name


def owned(deployed: Mapping[str, object], owner: Owner) -> dict:
    return {name: p for name, p in deployed.items() if is_owned(p, owner)}


def formerly_ours(annotations: Mapping[str, str], owner: Owner) -> bool:
    """Stamped `local/<folder>` by an earlier release, from a commit this repository knows."""
    commit = annotations.get(COMMIT_ANNOTATION)
    if owner.former is None or annotations.get(OWNER_ANNOTATION) != owner.former or not commit:
        return False
    return _commit_known(owner.project_dir, commit)


def describe_owner(who: str) -> str:
    if who == HAND_MADE:
        return f"created by hand or by another tool (no {OWNER_ANNOTATION} annotation)"
    return f"owned by {who}"


def refuse_foreign(deployed: Mapping[str, Any], owner: Owner, project: str, adopt: bool) -> None:
    """A pipeline we would create or update that exists but is not ours (nor a legacy one of this
    repository's): refused unless adopting."""
    if adopt:
        return
    for name, pipeline in sorted(deployed.items()):
        if is_owned(pipeline, owner) or made_here(pipeline.annotations, owner):
            continue
        if formerly_ours(pipeline.annotations, owner):
            raise RefusedError(
                f"pipeline {name} in project '{project}' is owned by {owner.former}, the owner earlier releases "
                f"gave this repository, which without a git remote is now {owner.name}; pass --adopt to take it "
                f'over, or set `owner = "{owner.former}"` under [tool.invoke-pachyderm] to keep the old owner '
                "(which every repository in a folder of that name derives too)"
            )
        raise RefusedError(
            f"pipeline {name} already exists in project '{project}' and is "
            f"{describe_owner(owner_of(pipeline.annotations, owner))}, "
            f"not by {owner.name}; rename yours, or pass --adopt to take it over"
        )


def stamp(spec: dict, owner: Owner) -> dict:
    """The spec with our owner annotation (a restored old version may predate owners)."""
    metadata = dict(spec.get("metadata") or {})
    metadata["annotations"] = {**(metadata.get("annotations") or {}), OWNER_ANNOTATION: owner.name}
    return {**spec, "metadata": metadata}
