"""Pipelines, following src/server/pps/server/api_server.go.

Functions take the ``ClusterState`` to read or change and raise ``RpcFailure``
with pachd's code and message.  Old versions are kept (ListPipeline history).
"""
from __future__ import annotations

import dataclasses
import uuid

from python_pachyderm.proto.v2.pfs import pfs_pb2
from python_pachyderm.proto.v2.pps import pps_pb2

from . import pfs_ops
from .errors import already_exists, not_found, unimplemented, unknown
from .names import go_quote
from .pps_validation import (
    apply_defaults,
    details_from_request,
    expected_workers,
    pipeline_type,
    validate_details,
    validate_request,
    walk_input,
)
from .state import (
    META_REPO,
    SPEC_REPO,
    USER_REPO,
    ClusterState,
    PipelineVersion,
    now_timestamp,
    repo_string,
)


def pipeline_key(pipeline: pps_pb2.Pipeline) -> tuple:
    return (pfs_ops.project_name(pipeline.project), pipeline.name)


def pipeline_string(key: tuple) -> str:
    """pps.Pipeline.String(): project/name."""
    return f"{key[0]}/{key[1]}"


def inspect_not_found(key: tuple):
    """What InspectPipelineInTransaction answers when the spec branch is missing."""
    project, name = key
    return not_found(
        f'branch "master" not found in repo {repo_string(project, name, SPEC_REPO)}'
    ).wrapped(
        "pipeline was not inspected: couldn't find up to date spec for pipeline "
        f"{go_quote(pipeline_string(key))}"
    )


# --- create ----------------------------------------------------------------


def create_pipeline(state: ClusterState, request: pps_pb2.CreatePipelineRequest, clock,
                    user_json: str | None = None, effective_json: str | None = None) -> None:
    """CreatePipeline / CreatePipelineInTransaction; the JSONs are pachd >= 2.8's."""
    if not request.HasField("pipeline"):
        raise unknown("request.Pipeline cannot be nil")
    request = _with_project(request)
    key = pipeline_key(request.pipeline)
    old = state.current(key)
    if old is not None and not request.update:
        raise already_exists(f"pipeline {go_quote(key[1])} already exists")
    info = _initialize_info(request, key, old)
    _check_inputs(state, info.details, key)
    if old is None:
        _create_pipeline_repos(state, key, info.details)
    info.spec_commit.CopyFrom(_spec_commit(key))
    if user_json is not None:
        from .pps_v28_ops import with_spec_jsons

        with_spec_jsons(info, user_json, effective_json or "")
    state.pipelines.setdefault(key, []).append(
        PipelineVersion(request=request, info=info, started_at=clock())
    )


def _with_project(request: pps_pb2.CreatePipelineRequest) -> pps_pb2.CreatePipelineRequest:
    """ensurePipelineProject, on a copy (the caller's message is not touched)."""
    copy = pps_pb2.CreatePipelineRequest()
    copy.CopyFrom(request)
    copy.pipeline.project.name = pfs_ops.project_name(request.pipeline.project)
    return copy


def _initialize_info(request, key: tuple, old: PipelineVersion | None) -> pps_pb2.PipelineInfo:
    """initializePipelineInfo: validate, copy into details, defaults, version and salt."""
    project, name = key
    validate_request(request, project)
    details = details_from_request(request)
    details.salt = request.salt if request.salt and not request.reprocess else _new_id()
    details.created_at.CopyFrom(now_timestamp())
    apply_defaults(details, project, name)
    validate_details(details)
    info = pps_pb2.PipelineInfo(
        pipeline=request.pipeline,
        version=1,
        state=pps_pb2.PIPELINE_STARTING,
        parallelism=expected_workers(details),
        type=pipeline_type(details),
        details=details,
    )
    if old is not None:
        info.version = old.info.version + 1
        info.stopped = old.info.stopped
        if not request.reprocess:
            info.details.salt = old.info.details.salt
    return info


def _check_inputs(state: ClusterState, details, key: tuple) -> None:
    """Input repos must exist (a pipeline is read through its output repo); cron repos are made."""
    if not details.HasField("input"):
        return
    for node in walk_input(details.input):
        if node.HasField("pfs"):
            repo = (node.pfs.project, node.pfs.repo, node.pfs.repo_type)
            if repo not in state.repos:
                raise pfs_ops.repo_not_found(repo)
        if node.HasField("cron"):
            description = f"Cron tick repo for pipeline {pipeline_string(key)}."
            pfs_ops.put_system_repo(state, (key[0], node.cron.repo, USER_REPO), description)


def _create_pipeline_repos(state: ClusterState, key: tuple, details) -> None:
    """Output repo (user type, named as the pipeline), spec repo, and meta repo."""
    project, name = key
    output = (project, name, USER_REPO)
    if project not in state.projects:
        raise pfs_ops.project_not_found(project).wrapped(
            f"cannot find project {go_quote(project)}"
        ).wrapped(f"error creating output repo for {name}")
    if output in state.repos:
        raise unknown(
            f"pipeline {go_quote(name)} cannot be created because a repo with the same name "
            "already exists"
        )
    label = pipeline_string(key)
    pfs_ops.put_system_repo(state, output, f"Output repo for pipeline {label}.")
    state.repos[output] = pfs_ops.with_branch(state.repos[output], details.output_branch)
    pfs_ops.put_system_repo(state, (project, name, SPEC_REPO), f"Spec repo for pipeline {label}.")
    if not details.HasField("service") and not details.HasField("spout"):
        meta = (project, name, META_REPO)
        pfs_ops.put_system_repo(state, meta, f"Meta repo for pipeline {name}")
        state.repos[meta] = pfs_ops.with_branch(state.repos[meta], details.output_branch)


def _spec_commit(key: tuple) -> pfs_pb2.Commit:
    repo = pfs_ops.make_repo(key[0], key[1], SPEC_REPO)
    return pfs_pb2.Commit(repo=repo, id=_new_id(), branch=pfs_pb2.Branch(repo=repo, name="master"))


def _new_id() -> str:
    return uuid.uuid4().hex


# --- read ------------------------------------------------------------------


def find_current(state: ClusterState, pipeline: pps_pb2.Pipeline) -> PipelineVersion:
    key = pipeline_key(pipeline)
    current = state.current(key)
    if current is None:
        raise inspect_not_found(key)
    return current


def list_versions(state: ClusterState, request: pps_pb2.ListPipelineRequest) -> list:
    """ListPipeline: newest first; history n keeps n older versions, -1 all."""
    if request.jqFilter:
        raise unimplemented("ListPipeline jqFilter is not modelled by the pachd double")
    if request.HasField("commit_set") and request.commit_set.id:
        raise unimplemented("ListPipeline commit_set is not modelled by the pachd double")
    projects = {pfs_ops.project_name(p) for p in request.projects}
    chosen: list = []
    for key, versions in _selected_pipelines(state, request):
        if projects and key[0] not in projects:
            continue
        oldest = 1 if request.history < 0 else versions[-1].info.version - request.history
        chosen.extend(v for v in versions if v.info.version >= oldest)
    return sorted(chosen, key=lambda v: v.sequence, reverse=True)


def _selected_pipelines(state: ClusterState, request: pps_pb2.ListPipelineRequest) -> list:
    if not (request.HasField("pipeline") and request.pipeline.name):
        return list(state.pipelines.items())
    key = pipeline_key(request.pipeline)
    if key not in state.pipelines:
        raise not_found(f"pipeline {go_quote(key[1])} not found").wrapped(
            "could not list pipeline info"
        )
    return [(key, state.pipelines[key])]


def is_current(state: ClusterState, version: PipelineVersion) -> bool:
    return state.current(pipeline_key(version.info.pipeline)) is version


# --- stop, start, delete ---------------------------------------------------


def stop_pipeline(state: ClusterState, pipeline: pps_pb2.Pipeline) -> None:
    """StopPipeline: a missing pipeline is not an error (NotFound is ignored)."""
    key = pipeline_key(pipeline)
    if state.current(key) is not None:
        _replace_current(state, key, stopped=True)


def start_pipeline(state: ClusterState, pipeline: pps_pb2.Pipeline, clock) -> None:
    key = pipeline_key(pipeline)
    if state.current(key) is None:
        raise inspect_not_found(key)
    _replace_current(state, key, stopped=False, started_at=clock())


def _replace_current(state: ClusterState, key: tuple, stopped: bool, started_at=None) -> None:
    current = state.pipelines[key][-1]
    info = pps_pb2.PipelineInfo()
    info.CopyFrom(current.info)
    info.stopped = stopped
    changes = {"info": info}
    if started_at is not None:
        changes["started_at"] = started_at
    state.pipelines[key][-1] = dataclasses.replace(current, **changes)


def delete_pipeline(state: ClusterState, request: pps_pb2.DeletePipelineRequest) -> None:
    """DeletePipeline: a missing pipeline is not an error; repos go unless keep_repo."""
    if request.all:
        delete_all_pipelines(state, keep_repo=request.keep_repo)
        return
    key = pipeline_key(request.pipeline)
    versions = state.pipelines.pop(key, None)
    if not versions:
        return
    project, name = key
    doomed = [(project, name, SPEC_REPO), (project, name, META_REPO)]
    if not request.keep_repo:
        doomed.append((project, name, USER_REPO))
    doomed.extend(_cron_repos(versions[-1].info.details, project))
    for repo in doomed:
        state.repos.pop(repo, None)


def _cron_repos(details, project: str) -> list:
    if not details.HasField("input"):
        return []
    return [(project, n.cron.repo, USER_REPO) for n in walk_input(details.input) if n.HasField("cron")]


def delete_all_pipelines(state: ClusterState, keep_repo: bool = False) -> None:
    for project, name in list(state.pipelines):
        request = pps_pb2.DeletePipelineRequest(
            pipeline=pps_pb2.Pipeline(name=name, project=pfs_pb2.Project(name=project)),
            keep_repo=keep_repo,
        )
        delete_pipeline(state, request)
