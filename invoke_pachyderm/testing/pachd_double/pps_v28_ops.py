"""pachd >= 2.8 pipeline creation and defaults (src/server/pps/server/api_server.go).

* ``CreatePipelineV2`` / ``createPipeline``: the effective spec is made from the defaults at
  call time; ``dry_run`` returns it without a transaction; otherwise a
  ``CreatePipelineTransaction{request, user_json, effective_json}`` is run (or appended to
  the open transaction: ``txnEnv.WithTransaction`` honours the pach-transaction header).
* ``CreatePipeline`` (legacy): ``protojson.Marshal(request)`` becomes the user JSON, so zero
  values (``"autoscaling": false``) are lost before the merge.
* ``initializePipelineInfo``: ``UserSpecJson`` / ``EffectiveSpecJson`` are stored on the info.
* ``Get/SetClusterDefaults``, ``Get/SetProjectDefaults``: stored verbatim; ``regenerate``
  re-merges each pipeline's user JSON and updates (new version) those whose effective spec
  changed (``proto.Equal``), ``reprocess`` giving them a new salt; ``dry_run`` only reports.
"""
from __future__ import annotations

import grpc
from python_pachyderm.proto.v2.pfs import pfs_pb2
from python_pachyderm.proto.v2.pps import pps_pb2
from python_pachyderm.proto.v2.transaction import transaction_pb2

from invoke_pachyderm.backends.pachd_v28 import messages, specs_of
from . import pfs_ops
from .defaults import check_defaults_json, equal_effective, make_effective_spec, protojson
from .errors import RpcFailure, unknown
from .state import DEFAULT_PROJECT, ClusterState


def effective_request(state: ClusterState, user_json: str) -> tuple[str, pps_pb2.CreatePipelineRequest]:
    """apiServer.makeEffectiveSpec with the defaults of the pipeline's project."""
    project = _project_of(user_json)
    return make_effective_spec(state.cluster_defaults, state.project_defaults.get(project, "{}"), user_json)


def _project_of(user_json: str) -> str:
    import json

    try:
        spec = json.loads(user_json)
    except ValueError:
        return DEFAULT_PROJECT
    pipeline = spec.get("pipeline") if isinstance(spec, dict) else None
    project = pipeline.get("project") if isinstance(pipeline, dict) else None
    name = project.get("name") if isinstance(project, dict) else None
    return name or DEFAULT_PROJECT


def transaction_request(state: ClusterState, user_json: str, update: bool, reprocess: bool):
    """createPipeline up to txn.CreatePipeline: a TransactionRequest{create_pipeline_v2} and the
    effective JSON (protojson of the effective request, as CreatePipelineV2 answers)."""
    effective_json, request = effective_request(state, user_json)
    request.update = update
    request.reprocess = reprocess
    if not request.HasField("pipeline"):
        raise unknown("request.Pipeline cannot be nil")
    if not request.pipeline.project.name:  # ensurePipelineProject
        request.pipeline.project.name = DEFAULT_PROJECT
    txn = messages().CreatePipelineTransaction(
        create_pipeline_request=request.SerializeToString(), user_json=user_json, effective_json=effective_json
    )
    wrapped = transaction_pb2.TransactionRequest()
    wrapped.MergeFromString(messages().TransactionRequestV28(create_pipeline_v2=txn.SerializeToString()).SerializeToString())
    return wrapped, protojson(request)


def legacy_transaction_request(state: ClusterState, request: pps_pb2.CreatePipelineRequest):
    """CreatePipeline on >= 2.8: protojson.Marshal(request) is the user JSON."""
    return transaction_request(state, protojson(request), request.update, request.reprocess)[0]


def create_pipeline_transaction(request: transaction_pb2.TransactionRequest):
    """The CreatePipelineTransaction in field 11 of a TransactionRequest, or None."""
    payload = messages().TransactionRequestV28.FromString(request.SerializeToString()).create_pipeline_v2
    if not payload:
        return None
    txn = messages().CreatePipelineTransaction.FromString(payload)
    return (
        pps_pb2.CreatePipelineRequest.FromString(txn.create_pipeline_request),
        txn.user_json,
        txn.effective_json,
    )


def with_spec_jsons(info: pps_pb2.PipelineInfo, user_json: str, effective_json: str) -> None:
    """PipelineInfo.user_spec_json (13) / effective_spec_json (14)."""
    info.MergeFromString(
        messages().PipelineInfoSpecs(user_spec_json=user_json, effective_spec_json=effective_json).SerializeToString()
    )


# --- defaults ------------------------------------------------------------------


def get_project_defaults(state: ClusterState, project: str) -> str:
    """GetProjectDefaults: the project must exist; "{}" when none were set."""
    project = project or DEFAULT_PROJECT
    pfs_ops.inspect_project(state, pfs_pb2.Project(name=project))
    return state.project_defaults.get(project, "{}")


def set_defaults(state: ClusterState, clock, defaults_json: str, project: str | None,
                 regenerate: bool, reprocess: bool, dry_run: bool) -> list[tuple[str, str]]:
    """SetClusterDefaults (project None) / SetProjectDefaults; returns the affected pipelines."""
    from .pps_ops import create_pipeline

    what = "cluster defaults" if project is None else "project defaults"
    if project is not None:
        project = project or DEFAULT_PROJECT
        pfs_ops.inspect_project(state, pfs_pb2.Project(name=project))
    check_defaults_json(defaults_json, what)
    if reprocess and not regenerate:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, "reprocess requires regenerate")
    trial = state.copy()
    if project is None:
        trial.cluster_defaults = defaults_json
    else:
        trial.project_defaults[project] = defaults_json
    affected = []
    if regenerate:
        for key, versions in sorted(state.pipelines.items()):
            if project is not None and key[0] != project:
                continue
            info = versions[-1].info
            user_json, old_effective = specs_of(info)
            if not user_json:  # ppsutil.PipelineReqFromInfo
                user_json = protojson(versions[-1].request)
            old_effective = old_effective or user_json
            effective_json, request = effective_request(trial, user_json)
            if not equal_effective(old_effective, request):
                affected.append((key, user_json, effective_json, request))
    if dry_run:
        return [key for key, *_ in affected]
    for key, user_json, effective_json, request in affected:
        request.update = True
        request.reprocess = reprocess
        if not request.pipeline.project.name:
            request.pipeline.project.name = key[0]
        create_pipeline(trial, request, clock, user_json=user_json, effective_json=effective_json)
    state.cluster_defaults = trial.cluster_defaults
    state.project_defaults = trial.project_defaults
    state.pipelines = trial.pipelines
    state.repos = trial.repos
    return [key for key, *_ in affected]
