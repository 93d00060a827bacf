"""Repos and projects, following src/server/pfs/server/driver.go.

Every function takes the ``ClusterState`` to read or change and raises
``RpcFailure`` with pachd's code and message.
"""
from __future__ import annotations

import grpc
from python_pachyderm.proto.v2.pfs import pfs_pb2

from .errors import RpcFailure, already_exists, not_found, unknown
from .names import go_quote, validate_name, validate_project_name
from .state import (
    DEFAULT_PROJECT,
    USER_REPO,
    ClusterState,
    now_timestamp,
    repo_string,
)


def project_name(project: pfs_pb2.Project | None) -> str:
    """EnsureProject: an unset or empty project means "default"."""
    return (project.name if project is not None else "") or DEFAULT_PROJECT


def repo_key(repo: pfs_pb2.Repo) -> tuple:
    return (project_name(repo.project), repo.name, repo.type or USER_REPO)


def make_repo(project: str, name: str, repo_type: str = USER_REPO) -> pfs_pb2.Repo:
    return pfs_pb2.Repo(name=name, type=repo_type, project=pfs_pb2.Project(name=project))


def repo_not_found(key: tuple) -> RpcFailure:
    return not_found(f"repo {repo_string(*key)} not found")


def project_not_found(name: str) -> RpcFailure:
    return not_found(f"project {go_quote(name)} not found")


# --- repos -----------------------------------------------------------------


def create_repo(state: ClusterState, request: pfs_pb2.CreateRepoRequest) -> None:
    key = repo_key(request.repo)
    project, name, repo_type = key
    validate_name(name)
    if project not in state.projects:
        raise project_not_found(project).wrapped(f"cannot find project {go_quote(project)}")
    existing = state.repos.get(key)
    if existing is None:
        _require_user_repo_for_system_repo(state, key)
        state.repos[key] = pfs_pb2.RepoInfo(
            repo=make_repo(*key), created=now_timestamp(), description=request.description
        )
        return
    if not request.update:
        raise already_exists(f"repo {repo_string(*key)} already exists")
    if existing.description != request.description:
        updated = pfs_pb2.RepoInfo()
        updated.CopyFrom(existing)
        updated.description = request.description
        state.repos[key] = updated


def _require_user_repo_for_system_repo(state: ClusterState, key: tuple) -> None:
    project, name, repo_type = key
    if repo_type != USER_REPO and (project, name, USER_REPO) not in state.repos:
        raise repo_not_found((project, name, USER_REPO)).wrapped(
            "cannot create a system repo without a corresponding 'user' repo"
        )


def inspect_repo(state: ClusterState, repo: pfs_pb2.Repo) -> pfs_pb2.RepoInfo:
    key = repo_key(repo)
    info = state.repos.get(key)
    if info is None:
        raise repo_not_found(key)
    return info


def list_repos(state: ClusterState, repo_type: str, projects) -> list:
    """Newest first, filtered by type ("" = all) and project names (none = all)."""
    wanted = {project_name(p) for p in projects}
    infos = [
        info
        for (project, _, kind), info in state.repos.items()
        if (not repo_type or kind == repo_type) and (not wanted or project in wanted)
    ]
    return list(reversed(infos))


def delete_repo(state: ClusterState, request: pfs_pb2.DeleteRepoRequest) -> None:
    """A missing repo is not an error (driver.deleteRepo returns nil)."""
    key = repo_key(request.repo)
    if key not in state.repos:
        return
    project, name, _ = key
    if (project, name) in state.pipelines:
        raise unknown("cannot delete a repo associated with a pipeline - delete the pipeline instead")
    for related in _related_repo_keys(state, key):
        del state.repos[related]


def _related_repo_keys(state: ClusterState, key: tuple) -> list:
    project, name, repo_type = key
    if repo_type != USER_REPO:
        return [key]
    return [k for k in state.repos if k[0] == project and k[1] == name]


def delete_all_repos(state: ClusterState) -> None:
    """pfs DeleteAll: repos that belong to a pipeline are skipped, as canDeleteRepo does."""
    for key in list(state.repos):
        if (key[0], key[1]) not in state.pipelines:
            del state.repos[key]
    for name in list(state.projects):
        if name != DEFAULT_PROJECT and not _project_repos(state, name):
            del state.projects[name]


def put_system_repo(state: ClusterState, key: tuple, description: str) -> None:
    """Create a repo pachd makes for a pipeline, keeping an existing one."""
    if key not in state.repos:
        state.repos[key] = pfs_pb2.RepoInfo(
            repo=make_repo(*key), created=now_timestamp(), description=description
        )


def with_branch(info: pfs_pb2.RepoInfo, branch: str) -> pfs_pb2.RepoInfo:
    if any(b.name == branch for b in info.branches):
        return info
    updated = pfs_pb2.RepoInfo()
    updated.CopyFrom(info)
    updated.branches.add(repo=info.repo, name=branch)
    return updated


# --- projects --------------------------------------------------------------


def create_project(state: ClusterState, request: pfs_pb2.CreateProjectRequest) -> None:
    name = request.project.name
    validate_project_name(name)
    existing = state.projects.get(name)
    if existing is not None and not request.update:
        raise already_exists(f"project {name} already exists")
    info = pfs_pb2.ProjectInfo(
        project=pfs_pb2.Project(name=name),
        description=request.description,
        created_at=existing.created_at if existing is not None else now_timestamp(),
    )
    state.projects[name] = info


def inspect_project(state: ClusterState, project: pfs_pb2.Project) -> pfs_pb2.ProjectInfo:
    name = project.name
    info = state.projects.get(name)
    if info is None:
        raise project_not_found(name).wrapped(f"error getting project {go_quote(name)}")
    return info


def list_projects(state: ClusterState) -> list:
    return list(state.projects.values())


def delete_project(state: ClusterState, request: pfs_pb2.DeleteProjectRequest) -> None:
    name = request.project.name
    validate_project_name(name)
    if name not in state.projects:
        raise project_not_found(name).wrapped(f"delete project {go_quote(name)}")
    remaining = _project_repos(state, name)
    if remaining:
        listed = "\n".join(f"repo {repo_string(*key)} still exists" for key in remaining)
        raise RpcFailure(
            grpc.StatusCode.FAILED_PRECONDITION, f"cannot delete project {name}: {listed}"
        )
    del state.projects[name]


def _project_repos(state: ClusterState, project: str) -> list:
    return [key for key in state.repos if key[0] == project]
