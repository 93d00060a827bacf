"""gRPC servicers built on python-pachyderm's generated ones (Pachyderm's own wire format).

Methods not overridden here keep the generated behaviour: UNIMPLEMENTED.
"""
from __future__ import annotations

import functools
import re

import grpc
from google.protobuf import empty_pb2
from python_pachyderm.proto.v2.auth import auth_pb2, auth_pb2_grpc
from python_pachyderm.proto.v2.pfs import pfs_pb2_grpc
from python_pachyderm.proto.v2.pps import pps_pb2, pps_pb2_grpc
from python_pachyderm.proto.v2.transaction import transaction_pb2, transaction_pb2_grpc
from python_pachyderm.proto.v2.version.versionpb import version_pb2, version_pb2_grpc

from . import pfs_ops, pps_ops, pps_v28_ops
from .controls import TRANSACTION_HEADER, Controls, header
from invoke_pachyderm.backends.pachd_v28 import METHODS, messages
from .engine import Engine
from .errors import RpcFailure

AUTH_NOT_ACTIVATED = "the auth service is not activated"
DOUBLE_USERNAME = "user:pachd-double"


def rpc(method):
    """Turn an ``RpcFailure`` raised by the method into the call's status."""

    @functools.wraps(method)
    def handler(self, request, context):
        try:
            return method(self, request, context)
        except RpcFailure as failure:
            context.abort(failure.code, failure.message)

    return handler


def transaction_id(context) -> str | None:
    return header(context.invocation_metadata(), TRANSACTION_HEADER)


def _empty() -> empty_pb2.Empty:
    return empty_pb2.Empty()


class PfsServicer(pfs_pb2_grpc.APIServicer):
    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    def CreateRepo(self, request, context):
        txn = transaction_pb2.TransactionRequest(create_repo=request)
        self.engine.submit(transaction_id(context), txn)
        return _empty()

    @rpc
    def InspectRepo(self, request, context):
        return self.engine.read(lambda state: pfs_ops.inspect_repo(state, request.repo))

    @rpc
    def ListRepo(self, request, context):
        return iter(self.engine.read(lambda s: pfs_ops.list_repos(s, request.type, request.projects)))

    @rpc
    def DeleteRepo(self, request, context):
        txn = transaction_pb2.TransactionRequest(delete_repo=request)
        self.engine.submit(transaction_id(context), txn)
        return _empty()

    @rpc
    def DeleteAll(self, request, context):
        self.engine.write(pfs_ops.delete_all_repos)
        return _empty()

    @rpc
    def CreateProject(self, request, context):
        self.engine.write(lambda state: pfs_ops.create_project(state, request))
        return _empty()

    @rpc
    def InspectProject(self, request, context):
        return self.engine.read(lambda state: pfs_ops.inspect_project(state, request.project))

    @rpc
    def ListProject(self, request, context):
        return iter(self.engine.read(pfs_ops.list_projects))

    @rpc
    def DeleteProject(self, request, context):
        self.engine.write(lambda state: pfs_ops.delete_project(state, request))
        return _empty()


class PpsServicer(pps_pb2_grpc.APIServicer):
    def __init__(self, engine: Engine, defaults: bool = False):
        self.engine = engine
        self.defaults = defaults  # pachd >= 2.8: every create goes through the effective spec

    @rpc
    def CreatePipeline(self, request, context):
        if self.defaults:  # api_server.go CreatePipeline: protojson.Marshal(request) -> createPipeline
            txn = self.engine.read(lambda state: pps_v28_ops.legacy_transaction_request(state, request))
        else:
            txn = transaction_pb2.TransactionRequest(create_pipeline=request)
        self.engine.submit(transaction_id(context), txn)
        return _empty()

    @rpc
    def InspectPipeline(self, request, context):
        return self.engine.inspect_pipeline(request.pipeline, request.details)

    @rpc
    def ListPipeline(self, request, context):
        return iter(self.engine.list_pipelines(request))

    @rpc
    def ListPipelineWire(self, request, context):
        return iter(self.engine.list_pipelines_wire(request))

    def wire_handler(self) -> grpc.GenericRpcHandler:
        """ListPipeline answering pre-serialized PipelineInfos (registered before the generated
        servicer, whose ListPipeline serializes each message again)."""
        handler = grpc.unary_stream_rpc_method_handler(
            self.ListPipelineWire, request_deserializer=pps_pb2.ListPipelineRequest.FromString,
            response_serializer=bytes,
        )
        return grpc.method_handlers_generic_handler("pps_v2.API", {"ListPipeline": handler})

    @rpc
    def DeletePipeline(self, request, context):
        self.engine.write(lambda state: pps_ops.delete_pipeline(state, request))
        return _empty()

    @rpc
    def StopPipeline(self, request, context):
        self.engine.write(lambda state: pps_ops.stop_pipeline(state, request.pipeline))
        return _empty()

    @rpc
    def StartPipeline(self, request, context):
        clock = self.engine.clock
        self.engine.write(lambda state: pps_ops.start_pipeline(state, request.pipeline, clock))
        return _empty()

    @rpc
    def DeleteAll(self, request, context):
        self.engine.write(pps_ops.delete_all_pipelines)
        return _empty()


class TransactionServicer(transaction_pb2_grpc.APIServicer):
    def __init__(self, engine: Engine, controls: Controls, crash):
        self.engine = engine
        self.controls = controls
        self.crash = crash  # stops the server, for stop_during_transaction()

    @rpc
    def BatchTransaction(self, request, context):
        if self.controls.take_stop_on_finish():
            self.crash()
            context.abort(grpc.StatusCode.UNAVAILABLE, "pachd went away during BatchTransaction")
        return self.engine.batch_transaction(request.requests)

    @rpc
    def StartTransaction(self, request, context):
        return self.engine.start_transaction()

    @rpc
    def InspectTransaction(self, request, context):
        return self.engine.inspect_transaction(request.transaction.id)

    @rpc
    def DeleteTransaction(self, request, context):
        self.engine.delete_transaction(request.transaction.id)
        return _empty()

    @rpc
    def ListTransaction(self, request, context):
        return transaction_pb2.TransactionInfos(transaction_info=self.engine.list_transactions())

    @rpc
    def FinishTransaction(self, request, context):
        if self.controls.take_stop_on_finish():
            self.crash()
            context.abort(grpc.StatusCode.UNAVAILABLE, "pachd went away during FinishTransaction")
        return self.engine.finish_transaction(request.transaction.id)

    @rpc
    def DeleteAll(self, request, context):
        self.engine.delete_all_transactions()
        return _empty()


class VersionServicer(version_pb2_grpc.APIServicer):
    def __init__(self, version: str):
        self.version = parse_version(version)

    def GetVersion(self, request, context):
        return self.version


def parse_version(text: str) -> version_pb2.Version:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(.*)", text)
    if match is None:
        raise ValueError(f"version must look like X.Y.Z, got {text!r}")
    major, minor, micro, rest = match.groups()
    return version_pb2.Version(
        major=int(major), minor=int(minor), micro=int(micro), additional=rest.lstrip("-")
    )


class AuthServicer(auth_pb2_grpc.APIServicer):
    """WhoAmI; every other auth method answers as pachd does without auth, or UNIMPLEMENTED."""

    def __init__(self, controls: Controls):
        self.controls = controls

    def WhoAmI(self, request, context):
        if not self.controls.auth_active:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, AUTH_NOT_ACTIVATED)
        return auth_pb2.WhoAmIResponse(username=DOUBLE_USERNAME)


def _auth_method(name):
    def method(self, request, context):
        if not self.controls.auth_active:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, AUTH_NOT_ACTIVATED)
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"auth {name} is not modelled by the pachd double")

    method.__name__ = name
    return method


for _method in auth_pb2.DESCRIPTOR.services_by_name["API"].methods:
    if _method.name != "WhoAmI":
        setattr(AuthServicer, _method.name, _auth_method(_method.name))


class PpsV28Servicer:
    """The pps RPCs pachd 2.8 added (python-pachyderm 7.6 generates no servicer for them)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @rpc
    def CreatePipelineV2(self, request, context):
        def prepare(state):
            return pps_v28_ops.transaction_request(
                state, request.create_pipeline_request_json, request.update, request.reprocess
            )

        txn, effective = self.engine.read(prepare)
        if not request.dry_run:
            self.engine.submit(transaction_id(context), txn)
        return messages().CreatePipelineV2Response(effective_create_pipeline_request_json=effective)

    @rpc
    def GetClusterDefaults(self, request, context):
        json_text = self.engine.read(lambda state: state.cluster_defaults)
        return messages().GetClusterDefaultsResponse(cluster_defaults_json=json_text or "{}")

    @rpc
    def GetProjectDefaults(self, request, context):
        json_text = self.engine.read(lambda s: pps_v28_ops.get_project_defaults(s, request.project.name))
        return messages().GetProjectDefaultsResponse(project_defaults_json=json_text)

    @rpc
    def SetClusterDefaults(self, request, context):
        affected = self._set(request.cluster_defaults_json, None, request)
        return messages().SetClusterDefaultsResponse(affected_pipelines=affected)

    @rpc
    def SetProjectDefaults(self, request, context):
        affected = self._set(request.project_defaults_json, request.project.name, request)
        return messages().SetProjectDefaultsResponse(affected_pipelines=affected)

    def _set(self, defaults_json, project, request):
        clock = self.engine.clock
        keys = self.engine.write(
            lambda state: pps_v28_ops.set_defaults(
                state, clock, defaults_json, project, request.regenerate, request.reprocess, request.dry_run
            )
        )
        m = messages()
        return [m.Pipeline(name=name, project=m.Project(name=proj)) for proj, name in keys]

    def handler(self) -> grpc.GenericRpcHandler:
        m = messages()
        handlers = {}
        for name, (request_type, response_type) in METHODS.items():
            handlers[name] = grpc.unary_unary_rpc_method_handler(
                getattr(self, name),
                request_deserializer=getattr(m, request_type).FromString,
                response_serializer=getattr(m, response_type).SerializeToString,
            )
        return grpc.method_handlers_generic_handler("pps_v2.API", handlers)
