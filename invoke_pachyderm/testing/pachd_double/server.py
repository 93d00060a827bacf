"""A pachd double: a gRPC server speaking Pachyderm's own protocol, for tests.

It is built on the servicers python-pachyderm generates from pachd's protos, and
its rules follow pachd's source (src/server/pps/server/api_server.go,
src/server/pfs/server/driver.go, src/server/transaction/server/driver.go,
src/auth/auth.go).  It is NOT pachd.  What it does not model:

* Data: no commits, branches (beyond the output branch a pipeline makes), files,
  filesets, jobs, datums, logs, egress or S3 gateway.  Those RPCs, and any not
  listed below, answer UNIMPLEMENTED.  Transactions only carry CreateRepo,
  DeleteRepo and CreatePipeline requests.
* Workers: no Kubernetes.  A pipeline's state is a clock plus a registry
  look-up: PIPELINE_STARTING for ``start_delay`` seconds after create, update or
  start, then PIPELINE_RUNNING if the registry has ``transform.image``, else
  PIPELINE_CRASHING with reason ``image pull failed: manifest for <image> not
  found`` (rechecked on every inspect, as a kubelet retries).  No
  FAILURE/STANDBY/RESTARTING, no last_job_state, no workers_* counts.  The
  image's registry host is ignored (the path is looked up in ``registry_url``),
  no Docker Hub ``library/`` prefix, no registry auth, no image pull secrets.
* Auth: a static list of tokens, each allowed everything; no ACLs, roles,
  robot tokens, pipeline auth tokens, OIDC, or enterprise/license/identity
  services (python-pachyderm's ``delete_all`` therefore fails here).
* Validation not done: cron specs are not parsed, Kubernetes secrets are not
  looked up, enterprise limits (pipeline count, parallelism) are not enforced,
  SQL egress is not checked, triggers name their branch but create none,
  tolerations are not checked, spec_commit requests are ignored, deleting an
  input repo of a pipeline is allowed (pachd refuses).
* Versions: ``version`` >= 2.8.0 models pachd 2.8-2.12 (defaults.py,
  pps_v28_ops.py): cluster defaults as the 2.8.0 migration writes them,
  project defaults, the effective spec, CreatePipelineV2 (also inside a
  transaction), PipelineInfo user/effective spec JSON, regenerate.  Only the
  CreatePipelineRequest fields python-pachyderm 7.6 knows are known: a newer
  field (``maximum_expected_uptime``) is refused as pachd refuses an unknown one.
  Below 2.8: no defaults RPCs (UNIMPLEMENTED), the legacy create only.
* Ancestry syntax (``edges^1``, ``edges.2``) in pipeline names is not resolved.
* ListPipeline: no jqFilter and no commit_set (UNIMPLEMENTED).  As pachd's
  listPipeline does, it returns details whatever ``details`` says; only
  InspectPipeline strips them.
* Errors: codes and messages are pachd's where its source showed them; Go's
  plain errors surface as UNKNOWN.  Some wrapping prefixes are approximations.
* No persistence: state lives in memory; a restart of the same object keeps it.
"""
from __future__ import annotations

import threading
from concurrent import futures

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from python_pachyderm.proto.v2.auth import auth_pb2_grpc
from python_pachyderm.proto.v2.pfs import pfs_pb2, pfs_pb2_grpc
from python_pachyderm.proto.v2.pps import pps_pb2_grpc
from python_pachyderm.proto.v2.transaction import transaction_pb2_grpc
from python_pachyderm.proto.v2.version.versionpb import version_pb2_grpc

from . import pfs_ops
from .controls import ControlInterceptor, Controls, as_token_list
from .defaults import MIGRATION_CLUSTER_DEFAULTS_JSON
from .engine import Engine
from .lifecycle import present
from .servicers import (
    AuthServicer,
    PfsServicer,
    PpsServicer,
    PpsV28Servicer,
    TransactionServicer,
    VersionServicer,
    parse_version,
)
from .state import DEFAULT_PROJECT

HOST = "127.0.0.1"


def pachd_has_defaults(version: str) -> bool:
    """Cluster/project defaults, CreatePipelineV2 and user/effective spec JSON arrived in 2.8.0."""
    parsed = parse_version(version)
    return (parsed.major, parsed.minor) >= (2, 8)


class PachdDouble:
    """Start with ``start()`` or ``with PachdDouble() as d:``; talk to ``d.address``."""

    host = HOST

    def __init__(
        self,
        registry_url: str | None = None,
        tokens=None,
        version: str = "2.11.2",
        start_delay: float = 0.05,
        port: int = 0,
    ):
        cluster_defaults = MIGRATION_CLUSTER_DEFAULTS_JSON if pachd_has_defaults(version) else "{}"
        self.engine = Engine(registry_url=registry_url, start_delay=start_delay, cluster_defaults=cluster_defaults)
        self.controls = Controls(tokens)
        self.version = version
        self._wanted_port = port
        self._port: int | None = None
        self._server: grpc.Server | None = None
        self._server_lock = threading.Lock()

    # --- configuration (read on every call, so settable between tests) -----

    @property
    def registry_url(self) -> str | None:
        return self.engine.registry_url

    @registry_url.setter
    def registry_url(self, value: str | None) -> None:
        self.engine.registry_url = value

    @property
    def start_delay(self) -> float:
        return self.engine.start_delay

    @start_delay.setter
    def start_delay(self, value: float) -> None:
        self.engine.start_delay = value

    @property
    def tokens(self) -> list:
        return self.controls.tokens

    @tokens.setter
    def tokens(self, value) -> None:
        self.controls.tokens = as_token_list(value)

    # --- lifecycle ---------------------------------------------------------

    def start(self) -> "PachdDouble":
        """Bind 127.0.0.1 (the port given, else the previous one, else any) and serve."""
        with self._server_lock:
            if self._server is not None:
                return self
            server = self._build_server()
            self._port = self._bind(server)
            server.start()
            self._server = server
        return self

    def _build_server(self) -> grpc.Server:
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="pachd-double"),
            interceptors=[ControlInterceptor(self.controls)],
        )
        pfs_pb2_grpc.add_APIServicer_to_server(PfsServicer(self.engine), server)
        defaults = pachd_has_defaults(self.version)
        if defaults:  # registered first: these methods are not in python-pachyderm's servicer
            server.add_generic_rpc_handlers((PpsV28Servicer(self.engine).handler(),))
        pps = PpsServicer(self.engine, defaults)
        server.add_generic_rpc_handlers((pps.wire_handler(),))
        pps_pb2_grpc.add_APIServicer_to_server(pps, server)
        transaction_pb2_grpc.add_APIServicer_to_server(
            TransactionServicer(self.engine, self.controls, self._crash), server
        )
        version_pb2_grpc.add_APIServicer_to_server(VersionServicer(self.version), server)
        auth_pb2_grpc.add_APIServicer_to_server(AuthServicer(self.controls), server)
        health_servicer = health.HealthServicer()
        health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        return server

    def _bind(self, server: grpc.Server) -> int:
        port = self._wanted_port or self._port or 0
        try:
            bound = server.add_insecure_port(f"{HOST}:{port}")
        except RuntimeError:
            bound = 0
        if not bound and port and not self._wanted_port:
            bound = server.add_insecure_port(f"{HOST}:0")  # the old port is taken
        if not bound:
            raise RuntimeError(f"pachd double could not bind {HOST}:{port}")
        return bound

    def stop(self, grace: float | None = None) -> None:
        with self._server_lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop(grace).wait()

    def _crash(self) -> None:
        """Stop serving from inside a call (that call's client sees UNAVAILABLE)."""
        with self._server_lock:
            server, self._server = self._server, None
        if server is not None:
            server.stop(grace=0.5)

    @property
    def running(self) -> bool:
        return self._server is not None

    def __enter__(self) -> "PachdDouble":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("pachd double is not started")
        return self._port

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def has_defaults(self) -> bool:
        """This version models pachd >= 2.8 (defaults, CreatePipelineV2, spec JSONs)."""
        return pachd_has_defaults(self.version)

    # --- steering ----------------------------------------------------------

    def reset(self) -> None:
        """Forget repos, pipelines, projects (but default), transactions, faults, calls, delay."""
        self.engine.reset()
        self.controls.reset()

    def set_delay(self, seconds: float, method: str | None = None) -> None:
        """Every call, or only gRPC method `method` (e.g. "CreatePipeline"), sleeps first."""
        if method is None:
            self.controls.delay = seconds
        else:
            self.controls.method_delays[method.rsplit("/", 1)[-1]] = seconds

    def fail_next(self, method: str, code: grpc.StatusCode, count: int = 1,
                  message: str = "injected failure") -> None:
        """The next ``count`` calls of gRPC method ``method`` (e.g. "CreatePipeline") fail."""
        self.controls.fail_next(method, code, count, message)

    def stop_during_transaction(self) -> None:
        """The next FinishTransaction or BatchTransaction stops the server before applying anything."""
        self.controls.stop_on_next_finish()

    @property
    def calls(self) -> list:
        """gRPC method names received, in order (health and version included)."""
        return self.controls.calls

    # --- looking inside ----------------------------------------------------

    def pipeline_versions(self, project: str = DEFAULT_PROJECT) -> dict:
        def versions(state):
            return {
                name: history[-1].info.version
                for (proj, name), history in state.pipelines.items()
                if proj == project
            }

        return self.engine.read(versions)

    def pipeline_spec(self, name: str, project: str = DEFAULT_PROJECT) -> dict:
        """The CreatePipelineRequest of the current version, as received, as a JSON dict."""
        version = self.engine.read(lambda state: state.current((project, name)))
        if version is None:
            raise KeyError(f"no pipeline {project}/{name}")
        return _as_dict(version.request)

    def pipeline_info(self, name: str, project: str = DEFAULT_PROJECT) -> dict:
        """The stored PipelineInfo with details (state as last observed), as a JSON dict."""
        version = self.engine.read(lambda state: state.current((project, name)))
        if version is None:
            raise KeyError(f"no pipeline {project}/{name}")
        return _as_dict(present(version, version.last_state, version.last_reason, details=True))

    def set_cluster_defaults(self, defaults_json: str, regenerate: bool = False) -> list:
        """SetClusterDefaults (pachd >= 2.8), as `pachctl update defaults --cluster` does it."""
        return self._set_defaults(defaults_json, None, regenerate)

    def set_project_defaults(self, defaults_json: str, project: str = DEFAULT_PROJECT,
                             regenerate: bool = False) -> list:
        return self._set_defaults(defaults_json, project, regenerate)

    def _set_defaults(self, defaults_json: str, project, regenerate: bool) -> list:
        if not pachd_has_defaults(self.version):
            raise RuntimeError(f"pachd {self.version} has no defaults (they arrived in 2.8.0)")
        from .pps_v28_ops import set_defaults

        clock = self.engine.clock
        return self.engine.write(
            lambda state: set_defaults(state, clock, defaults_json, project, regenerate, False, False)
        )

    def user_spec_json(self, name: str, project: str = DEFAULT_PROJECT) -> tuple[str, str]:
        """(user_spec_json, effective_spec_json) of the current version (empty before 2.8)."""
        from invoke_pachyderm.backends.pachd_v28 import specs_of

        version = self.engine.read(lambda state: state.current((project, name)))
        if version is None:
            raise KeyError(f"no pipeline {project}/{name}")
        return specs_of(version.info)

    def create_repo(self, name: str, project: str = DEFAULT_PROJECT) -> None:
        request = pfs_pb2.CreateRepoRequest(repo=pfs_ops.make_repo(project, name))
        self.engine.write(lambda state: pfs_ops.create_repo(state, request))


def _as_dict(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)
