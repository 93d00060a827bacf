"""Talk to pachd. The only module that imports `python_pachyderm` (lazily: its import costs ~150 ms)."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from .artifacts import RenderedSpec
from .config import PachdTarget
from .errors import HealthError, PachdError
from .plan import normalize_spec

CONNECT_TIMEOUT = 10.0
DETAIL_FIELDS_SKIPPED = (
    "created_at", "recent_error", "workers_requested", "workers_available", "salt", "reason",
    "unclaimed_tasks", "worker_rc",
)


@dataclass
class DeployedPipeline:
    name: str
    version: int
    state: str
    reason: str
    spec: dict[str, Any]  # as a CreatePipelineRequest-shaped dict
    annotations: dict[str, str] = field(default_factory=dict)


class Cluster:
    """A connected pachd, with every gRPC error turned into one PachdError line."""

    def __init__(self, target: PachdTarget, project: str):
        import python_pachyderm

        self.target = target
        self.project = project
        self.client = python_pachyderm.Client(
            host=target.host, port=target.port, auth_token=target.token, tls=target.tls,
            root_certs=target.root_certs,
        )
        self._check_reachable()

    def _check_reachable(self) -> None:
        """GetVersion with a deadline: a refused connection fails at once, a black hole in 10 s."""
        import grpc
        from google.protobuf import empty_pb2
        from python_pachyderm.proto.v2.version.versionpb import version_pb2_grpc

        stub = version_pb2_grpc.APIStub(self.client._channel)
        try:
            stub.GetVersion(empty_pb2.Empty(), timeout=CONNECT_TIMEOUT)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PachdError(
                    f"pachd at {self.target.address} (from {self.target.source}) does not answer within "
                    f"{CONNECT_TIMEOUT:.0f}s; check the address or set pachd_address / PACHD_ADDRESS"
                ) from None
            raise PachdError(self.describe(error, f"connecting (address from {self.target.source})")) from None
        except ConnectionError:  # python_pachyderm's interceptor turns "connection refused" into this
            raise PachdError(self.unreachable()) from None

    def unreachable(self) -> str:
        return (
            f"cannot connect to pachd at {self.target.address} (address from {self.target.source}); "
            "is pachd running and the address right? set pachd_address or PACHD_ADDRESS"
        )

    def call(self, what: str, function: Callable, *args, **kwargs):
        import grpc

        try:
            result = function(*args, **kwargs)
            return list(result) if hasattr(result, "__next__") else result
        except grpc.RpcError as error:
            raise PachdError(self.describe(error, what)) from None
        except ConnectionError:
            raise PachdError(self.unreachable()) from None

    def describe(self, error, what: str) -> str:
        code = error.code().name if hasattr(error, "code") and error.code() else "UNKNOWN"
        details = (error.details() if hasattr(error, "details") else str(error)) or ""
        if self.target.token:
            details = details.replace(self.target.token, "***")
        hint = {
            "UNAVAILABLE": "; is pachd running and the address right?",
            "UNAUTHENTICATED": "; set INVOKE_PACHYDERM_TOKEN or log in with pachctl auth login",
            "PERMISSION_DENIED": "; the token lacks the role needed",
        }.get(code, "")
        return f"pachd at {self.target.address}: {what} failed: {code}: {details}{hint}"

    # -- reading -------------------------------------------------------------------------
    def missing_repos(self, names: Iterable[str]) -> list[str]:
        existing = {
            info.repo.name
            for info in self.call("ListRepo", self.client.list_repo)
            if not info.repo.project.name or info.repo.project.name == self.project
        }
        return sorted(set(names) - existing)

    def deployed(self, names: Iterable[str] | None = None) -> dict[str, DeployedPipeline]:
        infos = self.call("ListPipeline", self.client.list_pipeline, details=True)
        wanted = set(names) if names is not None else None
        result = {}
        for info in infos:
            if info.pipeline.project.name not in ("", self.project):
                continue
            if wanted is not None and info.pipeline.name not in wanted:
                continue
            result[info.pipeline.name] = to_deployed(info)
        return result

    def history(self, name: str) -> list[DeployedPipeline]:
        infos = self.call(
            "ListPipeline", self.client.inspect_pipeline, name, history=-1, details=True, project_name=self.project
        )
        return sorted((to_deployed(info) for info in infos), key=lambda p: -p.version)

    def states(self, names: Iterable[str]) -> dict[str, DeployedPipeline]:
        return {
            name: to_deployed(self.call("InspectPipeline", self.client.inspect_pipeline, name, project_name=self.project)[0])
            for name in names
        }

    # -- writing -------------------------------------------------------------------------
    def apply(
        self, specs: list[tuple[RenderedSpec, dict[str, Any], bool]], reprocess: bool,
        before_finish: Callable[[], None] | None = None,
    ) -> None:
        """Create or update (spec, body, exists) in one transaction: all or nothing.

        `before_finish` runs (outside the transaction) right before it is finished; if it raises,
        the transaction is deleted unfinished."""
        import grpc

        transaction = self.call("StartTransaction", self.client.start_transaction)
        self.client.transaction_id = transaction.id
        current = None
        try:
            for rendered, body, exists in specs:
                current = rendered.name
                request = self.request(body, update=exists, reprocess=reprocess and exists)
                self.client.create_pipeline_from_request(request)
            current = None
            self.client.transaction_id = None
            if before_finish is not None:
                self._checked(before_finish, transaction)
            self.client.finish_transaction(transaction)
        except ConnectionError:
            self.client.transaction_id = None
            raise PachdError(self.unreachable() + "; the transaction was not finished, so nothing was changed") from None
        except grpc.RpcError as error:
            self.client.transaction_id = None
            self._abandon(transaction)
            what = f"pipeline {current}" if current else "the deploy transaction"
            if not current and (failed := _failed_request(error, specs)):
                what = f"the deploy transaction, at pipeline {failed}"
            raise PachdError(self.describe(error, what) + "; nothing was changed") from None
        except KeyboardInterrupt:
            self.client.transaction_id = None
            self._abandon(transaction)  # an interrupted deploy leaves no open transaction behind
            raise
        finally:
            self.client.transaction_id = None

    def _checked(self, check: Callable[[], None], transaction) -> None:
        try:
            check()
        except BaseException:
            self._abandon(transaction)
            raise

    def every_pipeline(self) -> list[tuple[str, DeployedPipeline]]:
        """(project, pipeline) for every pipeline pachd lists, in every project."""
        infos = self.call("ListPipeline", self.client.list_pipeline, details=True)
        return [(info.pipeline.project.name or "default", to_deployed(info)) for info in infos]

    def delete_pipelines(self, names: Iterable[str], keep_repo: bool) -> None:
        """One DeletePipeline each, in the order given (pachd runs no delete inside a transaction)."""
        for name in names:
            self.call(
                f"DeletePipeline {name}", self.client.delete_pipeline, name, keep_repo=keep_repo,
                project_name=self.project,
            )

    def project_exists(self) -> bool:
        return any(info.project.name == self.project for info in self.call("ListProject", self.client.list_project))

    def create_project(self, description: str) -> None:
        self.call(f"CreateProject {self.project}", self.client.create_project, self.project, description=description)

    def project_description(self) -> str:
        return self.call(f"InspectProject {self.project}", self.client.inspect_project, self.project).description

    def delete_project(self) -> None:
        self.call(f"DeleteProject {self.project}", self.client.delete_project, self.project)

    def _abandon(self, transaction) -> None:
        import grpc

        try:
            self.client.delete_transaction(transaction)
        except (grpc.RpcError, ConnectionError):
            pass  # already finished, failed or gone: nothing was applied either way

    def request(self, body: Mapping[str, Any], update: bool, reprocess: bool):
        from google.protobuf import json_format
        from python_pachyderm.proto.v2.pps import pps_pb2

        request = json_format.ParseDict(dict(body), pps_pb2.CreatePipelineRequest())
        if not request.pipeline.project.name:
            request.pipeline.project.name = self.project
        request.update = update
        request.reprocess = reprocess
        return request

    def normalized(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Round-trip through protobuf (key forms, int64 as strings) then pachd's defaults."""
        from google.protobuf import json_format
        from python_pachyderm.proto.v2.pps import pps_pb2

        message = json_format.ParseDict(dict(body), pps_pb2.CreatePipelineRequest())
        as_dict = json_format.MessageToDict(message, preserving_proto_field_name=True)
        return normalize_spec(as_dict, self.project)

    def wait_running(self, names: list[str], timeout: float, log, poll: float = 0.5) -> dict[str, DeployedPipeline]:
        deadline = time.monotonic() + timeout
        pending = list(names)
        seen: dict[str, DeployedPipeline] = {}
        while pending:
            for name, info in self.states(pending).items():
                seen[name] = info
                if info.state == "PIPELINE_RUNNING":
                    log(f"{name}: running (version {info.version})")
                    pending.remove(name)
                elif info.state in ("PIPELINE_CRASHING", "PIPELINE_FAILURE"):
                    raise HealthError(
                        f"pipeline {name} (version {info.version}) is {info.state.removeprefix('PIPELINE_')}: "
                        f"{info.reason or 'no reason given'}"
                    )
            if pending and time.monotonic() > deadline:
                states = ", ".join(f"{n} {seen[n].state.removeprefix('PIPELINE_')}" for n in pending)
                raise HealthError(f"timed out after {timeout:.0f}s waiting for pipelines to run: {states}")
            if pending:
                time.sleep(poll)
        return seen


def _failed_request(error, specs: list) -> str | None:
    """pachd reports a failed transaction as "error running request I of N: ..." (I from 1)."""
    match = re.search(r"request (\d+) of (\d+)", (error.details() if hasattr(error, "details") else "") or "")
    if match and int(match.group(2)) == len(specs) and 1 <= int(match.group(1)) <= len(specs):
        return specs[int(match.group(1)) - 1][0].name
    return None


def to_deployed(info) -> DeployedPipeline:
    from google.protobuf import json_format
    from python_pachyderm.proto.v2.pps import pps_pb2

    details = json_format.MessageToDict(info.details, preserving_proto_field_name=True)
    request_fields = {f.name for f in pps_pb2.CreatePipelineRequest.DESCRIPTOR.fields}
    spec = {k: v for k, v in details.items() if k in request_fields and k not in DETAIL_FIELDS_SKIPPED}
    spec["pipeline"] = {"name": info.pipeline.name}
    annotations = dict(info.details.metadata.annotations) if info.details.HasField("metadata") else {}
    return DeployedPipeline(
        name=info.pipeline.name,
        version=info.version,
        state=pps_pb2.PipelineState.Name(info.state),
        reason=info.reason or info.details.reason,
        spec=spec,
        annotations=annotations,
    )
