"""Talk to pachd. The only module that imports `python_pachyderm` (lazily: its import costs ~150 ms).

pachd >= 2.8 (told by GetVersion) stores each pipeline's *effective* spec: built-in, cluster and
project defaults merged under the user's JSON (src/server/pps/server/defaults.go,
makeEffectiveSpec). There:

* the diff compares the rendered spec with the pipeline's `user_spec_json` (what
  `pachctl edit pipeline` shows since 2.8), both in `pachd_forms.user_spec_form`; defaults never show
  up as a user change. Chosen over a CreatePipelineV2 dry run per pipeline because it costs no
  RPC per pipeline and keeps explicit `false`/`0`/`null` visible as written;
* whether the defaults changed since a pipeline's version is found by merging the current
  cluster and project defaults (two RPCs per deploy) under its stored user JSON and comparing
  with its stored effective spec, as SetClusterDefaults(regenerate) decides it;
* creates and updates carry the user's JSON verbatim as the user spec (CreatePipelineV2 or a
  CreatePipelineTransaction in the batch, see Cluster.apply), so explicit zero values survive
  (the legacy CreatePipeline re-marshals the request with protojson, which drops them).

Below 2.8, the legacy CreatePipeline and `pachd_forms.normalize_pair` (pachd's own defaults) are used.
The >= 2.8 messages come from `pps_v28` (python-pachyderm 7.6 has none of them); those calls use a
channel of this module's own, with the same address, TLS and token.
"""
from __future__ import annotations

import contextlib
import functools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping

from invoke_pachyderm.core.artifacts import RenderedSpec
from invoke_pachyderm.core.config import PachdTarget
from invoke_pachyderm.core.errors import ConnectionLost, PachdError, PachydermToolError, PartlyApplied
from invoke_pachyderm.backends.pachd_early import CONNECT_TIMEOUT, EarlyReads, load_protobuf, metadata, open_channel
from invoke_pachyderm.backends.pachd_forms import normalize_spec

# defaults.go builtInDefaults, the base every effective spec is merged onto
BUILT_IN_DEFAULTS = {
    "transform": {"image": "ubuntu:20.04"}, "output_branch": "master", "datum_tries": 3,
    "reprocess_spec": "until_success",
}
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
    # PipelineInfo.Details as pachd sent it: the message, or its wire bytes (parsed when the spec is read)
    details: Any = field(default=None, repr=False, compare=False)
    annotations: dict[str, str] = field(default_factory=dict)
    user_spec_json: str = ""  # pachd >= 2.8 only
    effective_spec_json: str = ""

    @functools.cached_property
    def spec(self) -> dict[str, Any]:
        """The spec as a CreatePipelineRequest-shaped dict, made on first read: the conversion is
        pure-Python protobuf, and an unchanged deploy on pachd >= 2.8 compares the stored user JSON."""
        if self.details is None:
            return {"pipeline": {"name": self.name}}
        return spec_of_details(self.name, self.details)


DEFAULTS_VERSION = (2, 8)
# src/server/enterprise/limits/limits.go, enforced by api_server.go validateEnterpriseChecks
# (removed in 2.12)
COMMUNITY_PIPELINES, COMMUNITY_PARALLELISM = 16, 8
ENTERPRISE_LIMITS_GONE = (2, 12)
# After a call's answer was lost: how often, and how long each time, pachd is asked what is there
# (a fresh connection each time), and the pause before asking again
READ_BACK_TRIES, READ_BACK_TIMEOUT, READ_BACK_PAUSE = 3, 3.0, 0.5


class Cluster:
    """A connected pachd, with every gRPC error turned into one PachdError line."""

    def __init__(self, target: PachdTarget, project: str, early: EarlyReads | None = None):
        """`early`: GetVersion and ListPipeline already sent on its channel (pachd_early)."""
        self.target = target
        self.project = project
        self._early_reads = early
        self.channel = early.channel if early is not None else self._open_channel()
        self.version = self._check_reachable()
        self.has_defaults = self.version >= DEFAULTS_VERSION
        self._defaults: tuple[str, str] | None = None
        self._base: dict[str, Any] | None = None  # see _defaults_base
        self._pipelines_seen: int | None = None  # on the whole cluster, see _needs_handler_checks
        self._early: dict[str, Any] = {}  # see prefetch
        self._listed: list[tuple[str, DeployedPipeline]] | None = None  # prefetch's list, for may_change
        self._ahead: dict[str, tuple[dict[str, Any], Any]] = {}  # see dry_run_ahead
        self._ahead_defaults: tuple[str, str] | None = None  # the defaults they were sent against
        self._sender: threading.Thread | None = None  # sending them
        self._stop_sending = threading.Event()

    @functools.cached_property
    def client(self):
        """python-pachyderm's client, made on first use: an unchanged deploy on pachd >= 2.8 reads
        pachd with hand-encoded requests (pachd_early) and never imports python_pachyderm."""
        load_protobuf()
        import python_pachyderm

        target = self.target
        return python_pachyderm.Client(
            host=target.host, port=target.port, auth_token=target.token, tls=target.tls,
            root_certs=target.root_certs,
        )

    def prefetch(self) -> None:
        """Ask now what a deploy's plan reads first (every pipeline with details, the defaults),
        keeping each answer, or its PachdError, for the first call that needs it. For a thread of
        its own (stages/connection.py): the main thread meanwhile reads git and renders."""
        early = self._early_reads
        reads: list[tuple[str, Callable[[], Any]]] = [("ListPipeline", lambda: self._parsed(self.call(
            "ListPipeline", early.listing) if early is not None else self._list_with_details()))]
        if self.has_defaults:
            reads.append(("defaults", self._read_defaults))
        for key, read in reads:
            try:
                self._early[key] = (read(), None)
                if key == "ListPipeline":
                    self._listed = self._early[key][0]
            except Exception as error:  # noqa: BLE001 - raised by the first call that needs it
                self._early[key] = (None, error)

    def deployed_commits(self) -> set[str] | None:
        """The commits this project's pipelines were deployed from, as the prefetched list says
        (their provenance annotation); None when there is none, or one without it."""
        from invoke_pachyderm.core.artifacts import ANNOTATION_PREFIX

        if self._listed is None:
            return None
        commits = [p.annotations.get(ANNOTATION_PREFIX + "commit") for project, p in self._listed
                   if project in ("", self.project)]
        if not commits or not all(commits):
            return None
        return set(commits)  # type: ignore[arg-type]

    def names_every(self, refs: list[str]) -> bool:
        """Each image reference is written in a stored user spec of this project (pachd >= 2.8)."""
        if self._listed is None:
            return False
        specs = [p.user_spec_json for project, p in self._listed if project in ("", self.project)]
        return all(any(ref in spec for spec in specs) for ref in refs)

    def warm(self) -> None:
        """Import what creating and updating pipelines needs (python_pachyderm's protobuf modules),
        so that a deploy that changes something does not wait for it later."""
        try:
            load_protobuf()
            from google.protobuf import json_format  # noqa: F401
            from python_pachyderm.proto.v2.pps import pps_pb2  # noqa: F401
            from python_pachyderm.proto.v2.transaction import transaction_pb2  # noqa: F401

            from invoke_pachyderm.backends.pachd_v28 import messages

            if self.has_defaults:
                messages()
        except Exception:  # noqa: BLE001 - only a head start: the caller's own import reports it
            pass

    def _prefetched(self, key: str, read: Callable[[], Any]):
        """The prefetched answer (once: a later call asks pachd again), else read()."""
        if key not in self._early:
            return read()
        answer, error = self._early.pop(key)
        if error is not None:
            raise error
        return answer

    def _open_channel(self):
        return open_channel(self.target)

    def _metadata(self, transaction_id: str | None = None) -> list[tuple[str, str]]:
        return metadata(self.target, transaction_id)

    def _v28(self, method: str, request, transaction_id: str | None = None):
        """One of the >= 2.8 RPCs python-pachyderm 7.6 lacks (raw grpc.RpcError on failure)."""
        return self._v28_callable(method, request)(
            request, metadata=self._metadata(transaction_id), timeout=CONNECT_TIMEOUT * 6
        )

    def _v28_future(self, method: str, request):
        """The same call sent without waiting (its result() raises grpc.RpcError)."""
        return self._v28_callable(method, request).future(
            request, metadata=self._metadata(), timeout=CONNECT_TIMEOUT * 6
        )

    def _v28_callable(self, method: str, request):
        from invoke_pachyderm.backends.pachd_v28 import METHODS, SERVICE, messages

        response_type = getattr(messages(), METHODS[method][1])
        return self.channel.unary_unary(
            SERVICE + method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=response_type.FromString,
        )

    def _check_reachable(self) -> tuple[int, int]:
        """GetVersion with a deadline: a refused connection fails at once, a black hole in 10 s."""
        import grpc

        try:
            if self._early_reads is not None:
                return self._early_reads.version()
            load_protobuf()
            from google.protobuf import empty_pb2
            from python_pachyderm.proto.v2.version.versionpb import version_pb2_grpc

            stub = version_pb2_grpc.APIStub(self.channel)
            version = stub.GetVersion(empty_pb2.Empty(), timeout=CONNECT_TIMEOUT, metadata=self._metadata())
            return (version.major, version.minor)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise PachdError(
                    f"pachd at {self.target.address} (from {self.target.source}) does not answer within "
                    f"{CONNECT_TIMEOUT:.0f}s; check the address or set pachd_address / PACHD_ADDRESS"
                ) from None
            if error.code() == grpc.StatusCode.UNAVAILABLE and "failed to connect" in (error.details() or ""):
                raise PachdError(self.unreachable()) from None
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
            with interrupt_after_call():
                result = function(*args, **kwargs)
                return list(result) if hasattr(result, "__next__") else result
        except grpc.RpcError as error:
            raise self.failure(error, what) from None
        except ConnectionError:
            raise PachdError(self.unreachable()) from None

    def failure(self, error, what: str) -> PachdError:
        """ConnectionLost when the call may have reached pachd but its answer did not come back."""
        return (ConnectionLost if answer_lost(error) else PachdError)(self.describe(error, what))

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
    def missing_repos(self, repos: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """The (project, repo) pairs that do not exist; each input is looked up in its own project."""
        existing = {
            (info.repo.project.name or "default", info.repo.name)
            for info in self.call("ListRepo", self.client.list_repo)
        }
        return sorted(set(repos) - existing)

    def repos_in_project(self) -> list[str]:
        """Every repo of this project, of any type (user, spec, meta)."""
        infos = self.call("ListRepo", self.client.list_repo, type="")
        return sorted(info.repo.name for info in infos if (info.repo.project.name or "default") == self.project)

    def _list_with_details(self) -> list[bytes]:
        from invoke_pachyderm.backends.pachd_early import LIST_PIPELINE_WITH_DETAILS

        return self.call("ListPipeline", self._raw_pipeline_infos, LIST_PIPELINE_WITH_DETAILS)

    def _parsed(self, raws: list[bytes]) -> list[tuple[str, DeployedPipeline]]:
        return [read_deployed(raw, self.has_defaults) for raw in raws]

    def deployed(self, names: Iterable[str] | None = None) -> dict[str, DeployedPipeline]:
        pairs = self._prefetched("ListPipeline", lambda: self._parsed(self._list_with_details()))
        self._pipelines_seen = len(pairs)
        wanted = set(names) if names is not None else None
        result = {}
        for project, pipeline in pairs:
            if project not in ("", self.project):
                continue
            if wanted is not None and pipeline.name not in wanted:
                continue
            result[pipeline.name] = pipeline
        return result

    def history(self, name: str) -> list[DeployedPipeline]:
        infos = self.call(
            "ListPipeline", self.client.inspect_pipeline, name, history=-1, details=True, project_name=self.project
        )
        return sorted((to_deployed(info, self.has_defaults) for info in infos), key=lambda p: -p.version)

    def states(self, names: Iterable[str]) -> dict[str, DeployedPipeline]:
        """Version, state and reason of each named pipeline of this project, from one ListPipeline
        without details (not one InspectPipeline each: N round trips after every apply)."""
        load_protobuf()
        from python_pachyderm.proto.v2.pfs import pfs_pb2
        from python_pachyderm.proto.v2.pps import pps_pb2

        wanted = list(names)
        wanted_set = set(wanted)
        request = pps_pb2.ListPipelineRequest(details=False, projects=[pfs_pb2.Project(name=self.project)])
        found = {}
        for raw in self.call("ListPipeline", self._raw_pipeline_infos, request):
            project, pipeline = read_deployed(raw, has_defaults=False)
            if pipeline.name in wanted_set and (project or "default") == self.project:
                found[pipeline.name] = pipeline
        missing = [name for name in wanted if name not in found]
        if missing:
            raise PachdError(
                f"pachd at {self.target.address}: ListPipeline failed: NOT_FOUND: pipeline {missing[0]} "
                f"not found in project {self.project}"
            )
        return {name: found[name] for name in wanted}

    def _raw_pipeline_infos(self, request):
        """ListPipeline on this module's channel, each PipelineInfo as its wire bytes (parsed by
        the caller, which can then read fields python-pachyderm 7.6 does not know without
        serializing the message again). `request`: a ListPipelineRequest, or its wire bytes."""
        stream = self.channel.unary_stream(
            "/pps_v2.API/ListPipeline", request_serializer=_serialized, response_deserializer=None,
        )
        return stream(request, metadata=self._metadata())

    def defaults(self) -> tuple[str, str]:
        """(cluster defaults JSON, project defaults JSON), read once per deploy (pachd >= 2.8)."""
        if self._defaults is None:
            self._defaults = self._prefetched("defaults", self._read_defaults)
        return self._defaults

    def _read_defaults(self) -> tuple[str, str]:
        from invoke_pachyderm.backends.pachd_early import DefaultsReads

        reads = DefaultsReads(self.channel, self.target, self.project, CONNECT_TIMEOUT * 6)
        cluster = self.call("GetClusterDefaults", reads.json, "GetClusterDefaults")
        project = self.call("GetProjectDefaults", reads.json, "GetProjectDefaults")
        return (cluster or "{}", project or "{}")

    def compare_forms(self, deployed: DeployedPipeline | None, body: Mapping[str, Any]):
        """(deployed, rendered) in the form the diff compares, for this pachd's version."""
        from invoke_pachyderm.backends.pachd_forms import normalize_pair, user_spec_form

        if self.has_defaults and (deployed is None or deployed.user_spec_json):
            if deployed is not None and (same := self._stored_as_sent(deployed, body)) is not None:
                return same, same
            descriptor = self._request_descriptor()
            after = user_spec_form(body, self.project, descriptor)
            if deployed is None:
                return None, after
            try:
                stored = json.loads(deployed.user_spec_json)
            except ValueError:
                stored = {}
            before = user_spec_form(stored, self.project, descriptor)
            if before != after and self._same_effect(before, after):
                return after, after  # e.g. "description": "" or a default written out: no restart
            return before, after
        rendered = self._round_trip(body)
        if deployed is None:
            return None, normalize_pair({}, rendered, self.project)[1]
        return normalize_pair(deployed.spec, rendered, self.project)

    def _stored_as_sent(self, deployed: DeployedPipeline, body: Mapping[str, Any]) -> dict[str, Any] | None:
        """The stored user spec when it is, but for volatile provenance, the very JSON this deploy
        would send (the usual unchanged pipeline): the same input to user_spec_form on both sides,
        so the same verdict without building either form. None: compare the forms."""
        try:
            stored = _without_volatile(json.loads(deployed.user_spec_json))
            # the dict _user_json would write, not its text read back: when the two texts below
            # are equal, so would the read-back's be (a key that is no string, which would read
            # back as one, at worst makes them differ: the forms are then compared)
            sent = _without_volatile(self._user_spec(body))
            same = json.dumps(stored, sort_keys=True) == json.dumps(sent, sort_keys=True)
        except (ValueError, TypeError, AttributeError):
            return None
        return stored if same else None

    def restorable_spec(self, past: DeployedPipeline) -> dict[str, Any]:
        """What to send to bring back a past version: on pachd >= 2.8 the user's JSON it was made
        from (re-sending its effective spec would pin today's defaults into the user spec)."""
        if self.has_defaults and past.user_spec_json:
            try:
                return json.loads(past.user_spec_json)
            except ValueError:
                pass
        return dict(past.spec)

    def same_spec(self, a: DeployedPipeline, b: DeployedPipeline) -> bool:
        """Two versions of one pipeline were deployed from the same spec."""
        from invoke_pachyderm.backends.pachd_forms import user_spec_form

        if self.has_defaults and a.user_spec_json and b.user_spec_json:
            descriptor = self._request_descriptor()
            forms = [user_spec_form(json.loads(p.user_spec_json), self.project, descriptor) for p in (a, b)]
            return forms[0] == forms[1]
        return self.normalized(a.spec) == self.normalized(b.spec)

    def defaults_changed(self, deployed: DeployedPipeline) -> bool:
        """The current defaults would give this pipeline another effective spec than it has
        (how SetClusterDefaults(regenerate) picks the pipelines it updates)."""
        if not (self.has_defaults and deployed.user_spec_json and deployed.effective_spec_json):
            return False
        if self._same_effective_as_dicts(deployed):
            return False
        load_protobuf()
        from google.protobuf import json_format
        from python_pachyderm.proto.v2.pps import pps_pb2

        try:
            now = self._effective(json.loads(deployed.user_spec_json))
            stored = json_format.ParseDict(
                json.loads(deployed.effective_spec_json), pps_pb2.CreatePipelineRequest(), ignore_unknown_fields=True
            )
        except (ValueError, AttributeError, TypeError, json_format.ParseError):
            return False  # not ours to judge: the diff of the user spec still decides
        now.ClearField("pipeline")
        stored.ClearField("pipeline")
        return now != stored

    def _same_effective_as_dicts(self, deployed: DeployedPipeline) -> bool:
        """The merge of today's defaults under the stored user JSON, and the stored effective JSON,
        have the same pachd_forms.message_form (pipeline aside): then they parse to the same
        message, so defaults_changed's verdict is "no" without parsing either. False: parse them."""
        from invoke_pachyderm.backends.pachd_forms import merge_patch, message_form, proto_field_names

        descriptor = self._request_descriptor()
        try:
            user = proto_field_names(json.loads(deployed.user_spec_json), descriptor)
            now = message_form(merge_patch(self._defaults_base(), user), descriptor)
            stored = message_form(json.loads(deployed.effective_spec_json), descriptor)
            if not (isinstance(now, dict) and isinstance(stored, dict)):
                return False
            now, stored = ({k: v for k, v in d.items() if k != "pipeline"} for d in (now, stored))
            return json.dumps(now, sort_keys=True) == json.dumps(stored, sort_keys=True)
        except (ValueError, TypeError, AttributeError):
            return False

    def _defaults_base(self) -> dict[str, Any]:
        """Built-in <- cluster <- project defaults in protobuf field names, merged once per deploy
        (ValueError when a defaults JSON is not an object; not cached then)."""
        if self._base is None:
            from invoke_pachyderm.backends.pachd_forms import merge_patch, proto_field_names

            descriptor = self._request_descriptor()
            base: Any = proto_field_names(dict(BUILT_IN_DEFAULTS), descriptor)
            for text in self.defaults():
                base = merge_patch(base, proto_field_names(_defaults_layer(text), descriptor))
            self._base = base
        return self._base

    def _same_effect(self, before: dict[str, Any], after: dict[str, Any]) -> bool:
        """Two user specs that differ as written but give the same effective spec under today's
        defaults (compared as protobuf messages, as pachd's proto.Equal): updating would only
        restart the pipeline. Fields the client's protos do not know are compared as written.
        Two specs with another string somewhere (an image tag, a command's repo) differ without
        parsing either (the usual update: a protobuf parse is ~1 ms a spec)."""
        from invoke_pachyderm.backends.pachd_forms import merge_patch, message_form, strings_differ

        descriptor = self._request_descriptor()
        try:
            forms = [message_form(merge_patch(self._defaults_base(), side), descriptor) for side in (before, after)]
            if strings_differ(forms[0], forms[1], descriptor):
                return False
        except (ValueError, TypeError, AttributeError):
            pass  # the parse below decides
        load_protobuf()
        from google.protobuf import json_format

        try:
            same = self._effective(before) == self._effective(after)
        except (ValueError, AttributeError, TypeError, json_format.ParseError):
            return False
        known = {f.name for f in self._request_descriptor().fields}
        unknown = [{k: v for k, v in form.items() if k not in known} for form in (before, after)]
        return same and unknown[0] == unknown[1]

    @staticmethod
    def _request_descriptor():
        """CreatePipelineRequest's descriptor as pachd_forms reads it, without python_pachyderm."""
        from invoke_pachyderm.backends.pps_table import request_descriptor

        return request_descriptor()

    def _effective(self, user_spec: Mapping[str, Any]):
        """makeEffectiveSpec's merge (built-in <- cluster <- project <- user), as a message."""
        load_protobuf()
        from google.protobuf import json_format
        from python_pachyderm.proto.v2.pps import pps_pb2

        from invoke_pachyderm.backends.pachd_forms import merge_patch, proto_field_names

        descriptor = pps_pb2.CreatePipelineRequest.DESCRIPTOR
        effective = merge_patch(self._defaults_base(), proto_field_names(dict(user_spec), descriptor))
        return json_format.ParseDict(effective, pps_pb2.CreatePipelineRequest(), ignore_unknown_fields=True)

    # -- writing -------------------------------------------------------------------------
    def apply(
        self, specs: list[tuple[RenderedSpec, dict[str, Any], bool]], reprocess: bool,
        before_finish: Callable[[], None] | None = None, before: Mapping[str, int] | None = None,
    ) -> None:
        """Create or update (spec, body, exists) in one transaction: all or nothing.

        One BatchTransaction (in every pachd 2.x: transaction.proto since 2.0.0) runs the requests
        once, in one SQL transaction (driver.go batchTransaction). Appending them one by one to a
        started transaction dry-runs the whole transaction on every append (appendTransaction):
        quadratic in the number of pipelines. `before_finish` runs right before the batch (or the
        FinishTransaction); if it raises, nothing is sent. `before`: the versions of the pipelines
        that exist, to tell, if the answer to the batch (or the FinishTransaction) is lost, what it
        applied (read back); an updated pipeline missing from it is then reported as unknown."""
        requests = self._batch_requests(specs, reprocess)
        if requests is None:
            self._apply_appending(specs, reprocess, before_finish, before)
        else:
            self._apply_batch(specs, requests, before_finish, before)

    def _batch_requests(self, specs, reprocess: bool):
        """One TransactionRequest per spec, or None when only the per-pipeline RPCs keep pachd's
        checks (see _needs_handler_checks) or the request cannot be built without loss."""
        load_protobuf()
        from python_pachyderm.proto.v2.transaction import transaction_pb2

        if self.has_defaults:
            pairs = self._effective_requests(specs, reprocess)
            if pairs is None:
                return None
        else:
            pairs = [
                (self.request(body, update=exists, reprocess=reprocess and exists), None)
                for _, body, exists in specs
            ]
        if self._needs_handler_checks([request for request, _ in pairs], [exists for _, _, exists in specs]):
            return None
        if not self.has_defaults:
            return [transaction_pb2.TransactionRequest(create_pipeline=request) for request, _ in pairs]
        return [wrapped for _, wrapped in pairs]

    def _effective_requests(self, specs, reprocess: bool):
        """pachd >= 2.8: (effective request, TransactionRequest{create_pipeline_v2}) per spec, as
        CreatePipelineV2 would append it (api_server.go createPipeline): pachd's own effective
        spec, from one CreatePipelineV2(dry_run) per pipeline (sent together, answered in any
        order), so no merge of ours decides what is deployed.

        The effective JSON stored is that dry run's answer, protojson of the effective request;
        pachd itself stores its merge's JSON text. Both parse to the same message, and every reader
        in pachd parses it (RerunPipeline, Set*Defaults regenerate: protojson.Unmarshal and
        proto.Equal); only `pachctl inspect pipeline`'s display of it differs (no explicit zero
        values). None when python-pachyderm's protos lack a field of the effective request
        (parsing it would drop that field): then CreatePipelineV2 carries the JSON itself."""
        import grpc
        load_protobuf()
        from google.protobuf import json_format
        from python_pachyderm.proto.v2.pps import pps_pb2
        from python_pachyderm.proto.v2.transaction import transaction_pb2

        from invoke_pachyderm.backends.pachd_v28 import messages

        m = messages()
        self._join_ahead()
        if self._ahead and self._read_defaults() != self._ahead_defaults:
            self.forget_ahead()  # the defaults changed since: pachd would merge other ones now
        pending = []
        for rendered, body, exists in specs:
            user_json = self._user_json(body)
            # update/reprocess false: the answer is then the effective spec alone (createPipeline
            # copies them into it), fit to store as the effective JSON
            dry_run = m.CreatePipelineV2Request(create_pipeline_request_json=user_json, dry_run=True)
            ahead = self._answer_ahead(rendered.name, user_json)
            if ahead is not None:
                pending.append((rendered.name, user_json, exists, *ahead, dry_run))
                continue
            pending.append((rendered.name, user_json, exists, self._v28_future("CreatePipelineV2", dry_run), {}, None))
        pairs = []
        try:
            for name, user_json, exists, future, added, again in pending:
                try:
                    try:
                        effective_json = future.result().effective_create_pipeline_request_json
                    except grpc.RpcError:
                        if again is None:
                            raise
                        # asked ahead, before apply made something it needs (a preview project): ask now
                        effective_json = self._v28("CreatePipelineV2", again).effective_create_pipeline_request_json
                        added = {}
                except grpc.RpcError as error:
                    raise PachdError(self.describe(error, f"pipeline {name}") + "; nothing was changed") from None
                if added:
                    effective_json = with_annotations(effective_json, added)
                request = pps_pb2.CreatePipelineRequest()
                try:
                    json_format.Parse(effective_json, request)
                except json_format.ParseError:
                    return None
                request.update = exists
                request.reprocess = reprocess and exists
                txn = m.CreatePipelineTransaction(
                    create_pipeline_request=request.SerializeToString(), user_json=user_json,
                    effective_json=effective_json,
                )
                wrapped = transaction_pb2.TransactionRequest()  # field 11, unknown to python-pachyderm 7.6
                wrapped.MergeFromString(m.TransactionRequestV28(create_pipeline_v2=txn.SerializeToString()).SerializeToString())
                pairs.append((request, wrapped))
        finally:
            for _, _, _, future, _, _ in pending:
                future.cancel()
            self.forget_ahead()
        return pairs

    def dry_run_ahead(self, bodies: Mapping[str, Mapping[str, Any]]) -> None:
        """pachd >= 2.8: send now the CreatePipelineV2(dry_run) that apply's batch needs for each
        of `bodies` (name -> spec), so pachd answers while the images build and push. Read-only.

        apply uses an answer only for a spec that differs from the one sent here by annotations
        added and nothing else (a pushed image's digest, unknown until the push): pachd merges the
        defaults and the user's spec as a JSON merge patch (api_server.go makeEffectiveSpec), so
        string members added to the user's metadata.annotations land unchanged in the effective
        spec's. Any other difference sends the dry run again, and so does every spec when the
        cluster or project defaults changed meanwhile (the build can take minutes)."""
        if not self.has_defaults or not bodies:
            return
        try:
            self._ahead_defaults = self.defaults()
        except PachdError:
            return  # e.g. a preview project made only by apply: apply asks then
        # Sent from a thread of its own (grpc makes each call in ~0.3-2 ms of Python, 200 calls
        # would hold up the plan's last checks and the tests); apply waits for it (_join_ahead).
        self._sender = threading.Thread(target=self._send_ahead, args=(dict(bodies),), name="pachd-dry-runs", daemon=True)
        self._sender.start()

    def _send_ahead(self, bodies: dict[str, Mapping[str, Any]]) -> None:
        try:
            from invoke_pachyderm.backends.pachd_v28 import messages

            m = messages()
            for name, body in bodies.items():
                if self._stop_sending.is_set():
                    return
                json_text = self._user_json(body)
                request = m.CreatePipelineV2Request(create_pipeline_request_json=json_text, dry_run=True)
                self._ahead[name] = (json.loads(json_text), self._v28_future("CreatePipelineV2", request))
        except Exception:  # noqa: BLE001 - only a head start: apply sends what is missing
            return

    def _join_ahead(self) -> None:
        if self._sender is not None:
            self._sender.join()
            self._sender = None

    def forget_ahead(self) -> None:
        """Cancel the dry runs sent ahead that no batch used (a deploy that stopped before it)."""
        self._stop_sending.set()
        self._join_ahead()
        self._stop_sending.clear()
        ahead, self._ahead = self._ahead, {}
        for _, future in ahead.values():
            future.cancel()

    def _answer_ahead(self, name: str, user_json: str):
        """(future, annotations to add) of the dry run sent ahead for `name`, when `user_json`
        differs from what it sent by added annotations only; else None."""
        sent = self._ahead.pop(name, None)
        if sent is None:
            return None
        early, future = sent
        added = added_annotations(early, json.loads(user_json))
        if added is None:
            future.cancel()
            return None
        return future, added

    def _needs_handler_checks(self, requests, exists: list[bool]) -> bool:
        """Checks pachd's CreatePipeline(V2) handler makes outside the transaction, which a batch
        skips (api_server.go createPipeline / CreatePipeline): validateSecret (a Kubernetes
        secret named must exist), and up to 2.11 validateEnterpriseChecks (without a licence no
        create once the cluster has 16 pipelines, no constant parallelism over 8). When one could
        refuse, the per-pipeline RPCs run, so pachd decides as it would for pachctl."""
        if any(request.transform.secrets for request in requests):
            return True
        creates = [request for request, known in zip(requests, exists) if not known]
        if not creates or self.version >= ENTERPRISE_LIMITS_GONE:
            return False
        if any(request.parallelism_spec.constant > COMMUNITY_PARALLELISM for request in creates):
            return True
        return self._pipeline_count() >= COMMUNITY_PIPELINES

    def _pipeline_count(self) -> int:
        """Pipelines on the cluster, in every project (as last listed, else listed now)."""
        if self._pipelines_seen is None:
            self._pipelines_seen = len(self.call("ListPipeline", self.client.list_pipeline, details=False))
        return self._pipelines_seen

    def _apply_batch(self, specs, requests, before_finish, before) -> None:
        import grpc
        load_protobuf()
        from python_pachyderm.proto.v2.transaction import transaction_pb2, transaction_pb2_grpc

        try:
            if before_finish is not None:
                before_finish()
            transaction_pb2_grpc.APIStub(self.channel).BatchTransaction(
                transaction_pb2.BatchTransactionRequest(requests=requests), metadata=self._metadata()
            )
        except grpc.RpcError as error:
            what = "the deploy transaction"
            if failed := _failed_request(error, specs):
                what = f"the deploy transaction, at pipeline {failed}"
            if answer_lost(error):
                raise self._lost_transaction(self.describe(error, what), specs, before) from None
            raise PachdError(self.describe(error, what) + "; nothing was changed") from None
        except KeyboardInterrupt:
            # pachd ran the whole batch or none of it; closing the channel cancels the call (no
            # RPC left running at exit) and Progress reads what happened on a fresh channel
            self.channel.close()
            raise
        self._pipelines_seen = None

    def _apply_appending(self, specs, reprocess: bool, before_finish, before) -> None:
        """StartTransaction, one CreatePipeline(V2) per spec inside it, FinishTransaction."""
        import grpc

        transaction = self.call("StartTransaction", self.client.start_transaction)
        if not self.has_defaults:  # CreatePipelineV2 carries the transaction id itself (_create_v2)
            self.client.transaction_id = transaction.id
        current = None
        try:
            for rendered, body, exists in specs:
                current = rendered.name
                if self.has_defaults:
                    self._create_v2(body, update=exists, reprocess=reprocess and exists, transaction_id=transaction.id)
                else:
                    self.client.create_pipeline_from_request(
                        self.request(body, update=exists, reprocess=reprocess and exists)
                    )
            current = None
            self._leave_transaction()
            if before_finish is not None:
                self._checked(before_finish, transaction)
            self.client.finish_transaction(transaction)
        except ConnectionError:
            self._leave_transaction()
            raise PachdError(self.unreachable() + "; the transaction was not finished, so nothing was changed") from None
        except grpc.RpcError as error:
            self._leave_transaction()
            self._abandon(transaction)
            what = f"pipeline {current}" if current else "the deploy transaction"
            if not current and (failed := _failed_request(error, specs)):
                what = f"the deploy transaction, at pipeline {failed}"
            if not current and answer_lost(error):  # FinishTransaction's: pachd may have run it
                raise self._lost_transaction(self.describe(error, what), specs, before) from None
            raise PachdError(self.describe(error, what) + "; nothing was changed") from None
        except KeyboardInterrupt:
            self._leave_transaction()
            self._abandon(transaction)  # an interrupted deploy leaves no open transaction behind
            self.channel.close()  # cancels the interrupted call: no RPC left running at exit
            raise
        finally:
            self._leave_transaction()
        self._pipelines_seen = None

    def _leave_transaction(self) -> None:
        """Back to plain calls; python-pachyderm rebuilds its channel on every set, so only when needed."""
        if self.client.transaction_id is not None:
            self.client.transaction_id = None

    @contextlib.contextmanager
    def _fresh_channel(self) -> Iterator[Any]:
        """A channel, and a connection, of its own for one call (see versions_now), closed afterwards."""
        channel = open_channel(self.target, own_connection=True)
        try:
            yield channel
        finally:
            channel.close()

    def versions_now(self, names: Iterable[str], timeout: float = CONNECT_TIMEOUT) -> dict[str, int]:
        """Current versions, read on a fresh channel with a deadline: after Ctrl-C a channel whose
        call was interrupted can hang (a grpc lock taken when the signal arrived), and saying what
        was applied must not hang too. PachdError when pachd does not answer in time."""
        import grpc
        load_protobuf()
        from python_pachyderm.proto.v2.pfs import pfs_pb2
        from python_pachyderm.proto.v2.pps import pps_pb2, pps_pb2_grpc

        wanted = set(names)
        request = pps_pb2.ListPipelineRequest(projects=[pfs_pb2.Project(name=self.project)])
        try:
            with self._fresh_channel() as channel:
                infos = pps_pb2_grpc.APIStub(channel).ListPipeline(request, timeout=timeout, metadata=self._metadata())
                return {info.pipeline.name: info.version for info in infos if info.pipeline.name in wanted}
        except grpc.RpcError as error:
            raise self.failure(error, "ListPipeline") from None

    def read_back(self, names: Iterable[str]) -> dict[str, int]:
        """versions_now, asked up to READ_BACK_TRIES times: after a lost answer pachd may take a
        moment to be reachable again. The last PachdError when it never answered."""
        names = list(names)
        for attempt in range(READ_BACK_TRIES):
            try:
                return self.versions_now(names, timeout=READ_BACK_TIMEOUT)
            except PachdError as error:
                last = error
            if attempt + 1 < READ_BACK_TRIES:
                time.sleep(READ_BACK_PAUSE * (attempt + 1))
        raise last

    def versions_after_apply(self, names: Iterable[str]) -> dict[str, int]:
        """The versions of `names` once pachd answered that their transaction was applied; read
        back again if the answer to that read was lost (PartlyApplied if pachd does not answer)."""
        names = list(names)
        try:
            return {name: pipeline.version for name, pipeline in self.states(names).items()}
        except ConnectionLost as error:
            lost = error
        applied = "pachd had answered that the transaction was applied (" + ", ".join(names) + ")"
        try:
            now = self.read_back(names)
        except PachdError:
            raise PartlyApplied(
                f"{lost.message}; {applied}, but not with which versions; check with `invoke status`"
            ) from None
        if missing := [name for name in names if name not in now]:
            raise PartlyApplied(f"{lost.message}; {applied}, but read back, {', '.join(missing)} is gone") from None
        return {name: now[name] for name in names}

    def _lost_transaction(self, message: str, specs, before: Mapping[str, int] | None) -> PachydermToolError:
        """The error for a transaction whose answer was lost, from what pachd has now: a
        PachdError (exit 8) only when reading back proves that nothing was applied."""
        from invoke_pachyderm.core.progress import transaction_outcome

        names = [rendered.name for rendered, _, _ in specs]
        known: dict[str, int | None] = {rendered.name: None for rendered, _, exists in specs if not exists}
        known.update({name: version for name, version in (before or {}).items() if name in names})
        try:
            now: dict[str, int] | None = self.read_back(names)
        except PachdError:
            now = None
        nothing, outcome = transaction_outcome(names, known, now)
        return (PachdError if nothing else PartlyApplied)(f"{message}; {outcome}")

    def _checked(self, check: Callable[[], None], transaction) -> None:
        try:
            check()
        except BaseException:
            self._abandon(transaction)
            raise

    def every_pipeline(self) -> list[tuple[str, DeployedPipeline]]:
        """(project, pipeline) for every pipeline pachd lists, in every project."""
        infos = self.call("ListPipeline", self.client.list_pipeline, details=True)
        return [(info.pipeline.project.name or "default", to_deployed(info, self.has_defaults)) for info in infos]

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
        """DeleteTransaction on a fresh channel with a deadline (see versions_now: after Ctrl-C the
        client's channel may be stuck)."""
        import grpc
        load_protobuf()
        from python_pachyderm.proto.v2.transaction import transaction_pb2, transaction_pb2_grpc

        request = transaction_pb2.DeleteTransactionRequest(transaction=transaction)
        try:
            with self._fresh_channel() as channel:
                transaction_pb2_grpc.APIStub(channel).DeleteTransaction(
                    request, timeout=CONNECT_TIMEOUT, metadata=self._metadata()
                )
        except (grpc.RpcError, ConnectionError):
            pass  # already finished, failed or gone: nothing was applied either way

    def _create_v2(self, body: Mapping[str, Any], update: bool, reprocess: bool, transaction_id: str) -> None:
        """CreatePipelineV2 with the user's JSON as written (plus our project) in the transaction."""
        from invoke_pachyderm.backends.pachd_v28 import messages

        request = messages().CreatePipelineV2Request(
            create_pipeline_request_json=self._user_json(body), update=update, reprocess=reprocess
        )
        self._v28("CreatePipelineV2", request, transaction_id)

    def _user_json(self, body: Mapping[str, Any]) -> str:
        """The spec as the user wrote it, plus our project: pachd stores it as the user spec."""
        return json.dumps(self._user_spec(body), sort_keys=True)

    def _user_spec(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """What _user_json writes (a copy of `body` down to its pipeline)."""
        spec = dict(body)
        pipeline = dict(spec.get("pipeline") or {})
        if not (pipeline.get("project") or {}).get("name"):
            pipeline["project"] = {"name": self.project}
        spec["pipeline"] = pipeline
        return spec

    def request(self, body: Mapping[str, Any], update: bool, reprocess: bool):
        load_protobuf()
        from google.protobuf import json_format
        from python_pachyderm.proto.v2.pps import pps_pb2

        request = json_format.ParseDict(dict(body), pps_pb2.CreatePipelineRequest())
        if not request.pipeline.project.name:
            request.pipeline.project.name = self.project
        request.update = update
        request.reprocess = reprocess
        return request

    def normalized(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Two deployed versions' specs, comparable: protobuf round trip, pachd's defaults."""
        from invoke_pachyderm.backends.pachd_forms import drop_cron_starts

        return drop_cron_starts(normalize_spec(self._round_trip(body), self.project, rendered=False))

    @staticmethod
    def _round_trip(body: Mapping[str, Any]) -> dict[str, Any]:
        """Through protobuf, so key forms and int64-as-string do not count."""
        load_protobuf()
        from google.protobuf import json_format
        from python_pachyderm.proto.v2.pps import pps_pb2

        message = json_format.ParseDict(dict(body), pps_pb2.CreatePipelineRequest())
        return json_format.MessageToDict(message, preserving_proto_field_name=True)


def answer_lost(error) -> bool:
    """The call may have reached pachd, but its answer did not come back: the connection dropped
    or the deadline passed. Not when no connection was made ("failed to connect"): nothing was sent."""
    import grpc

    code = error.code() if hasattr(error, "code") else None
    details = (error.details() if hasattr(error, "details") else "") or ""
    lost = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)
    return (code in lost or "Stream removed" in details) and "failed to connect" not in details


def _serialized(request) -> bytes:
    return request if isinstance(request, bytes) else request.SerializeToString()


def _without_volatile(spec: Any) -> Any:
    """A user spec without the provenance annotations a diff ignores (pachd_forms.VOLATILE_ANNOTATIONS);
    copies only what it changes."""
    from invoke_pachyderm.backends.pachd_forms import is_volatile_annotation

    metadata = spec.get("metadata") if isinstance(spec, dict) else None
    if not isinstance(metadata, dict) or not isinstance(metadata.get("annotations"), dict):
        return spec
    kept = {k: v for k, v in metadata["annotations"].items() if not is_volatile_annotation(k)}
    return {**spec, "metadata": {**metadata, "annotations": kept}}


def _defaults_layer(text: str) -> dict[str, Any]:
    """The CreatePipelineRequest inside a ClusterDefaults / ProjectDefaults JSON."""
    wrapper = json.loads(text or "{}")
    layer = wrapper.get("createPipelineRequest", wrapper.get("create_pipeline_request")) or {}
    if not isinstance(layer, dict):
        raise ValueError("defaults JSON without a createPipelineRequest object")
    return layer


def _failed_request(error, specs: list) -> str | None:
    """pachd reports a failed transaction as "error running request I of N: ..." (I from 1)."""
    match = re.search(r"request (\d+) of (\d+)", (error.details() if hasattr(error, "details") else "") or "")
    if match and int(match.group(2)) == len(specs) and 1 <= int(match.group(1)) <= len(specs):
        return specs[int(match.group(1)) - 1][0].name
    return None


def read_deployed(raw: bytes, has_defaults: bool = False) -> tuple[str, DeployedPipeline]:
    """(project name as sent, pipeline) from a PipelineInfo's wire bytes: what to_deployed gives
    for the parsed message, without parsing its Details (see pachd_wire)."""
    from invoke_pachyderm.backends.pachd_wire import read_pipeline_info
    from invoke_pachyderm.backends.pps_table import enum

    try:
        parts = read_pipeline_info(raw)
        state = enum("pps_v2.PipelineState").Name(parts.state)
    except ValueError:  # Unusual bytes, or a state number the table does not name: protobuf decides
        load_protobuf()
        from python_pachyderm.proto.v2.pps import pps_pb2

        info = pps_pb2.PipelineInfo.FromString(raw)
        return info.pipeline.project.name, to_deployed(info, has_defaults)
    specs = {"user_spec_json": parts.user_spec_json, "effective_spec_json": parts.effective_spec_json}
    return parts.project, DeployedPipeline(
        name=parts.name,
        version=parts.version,
        state=state,
        reason=parts.reason or parts.details_reason,
        details=parts.details,
        annotations=parts.annotations,
        **(specs if has_defaults else {}),
    )


def to_deployed(info, has_defaults: bool = False, raw: bytes | None = None) -> DeployedPipeline:
    """`raw`: the PipelineInfo's wire bytes when at hand (fields 13/14 are then read from them,
    not from the message serialized again)."""
    load_protobuf()
    from python_pachyderm.proto.v2.pps import pps_pb2

    annotations = dict(info.details.metadata.annotations) if info.details.HasField("metadata") else {}
    pipeline = DeployedPipeline(
        name=info.pipeline.name,
        version=info.version,
        state=pps_pb2.PipelineState.Name(info.state),
        reason=info.reason or info.details.reason,
        details=info.details,
        annotations=annotations,
        **_spec_jsons(info, has_defaults, raw),
    )
    return pipeline


def spec_of_details(name: str, details) -> dict[str, Any]:
    """A PipelineInfo's details as a CreatePipelineRequest-shaped dict."""
    load_protobuf()
    from google.protobuf import json_format
    from python_pachyderm.proto.v2.pps import pps_pb2

    if isinstance(details, bytes):
        details = pps_pb2.PipelineInfo.Details.FromString(details)
    as_dict = json_format.MessageToDict(details, preserving_proto_field_name=True)
    request_fields = {f.name for f in pps_pb2.CreatePipelineRequest.DESCRIPTOR.fields}
    spec = {k: v for k, v in as_dict.items() if k in request_fields and k not in DETAIL_FIELDS_SKIPPED}
    spec["pipeline"] = {"name": name}
    return spec


def _spec_jsons(info, has_defaults: bool, raw: bytes | None) -> dict[str, str]:
    from invoke_pachyderm.backends.pachd_v28 import specs_in_wire, specs_of

    if not has_defaults:  # field 13 means nothing before 2.8
        return {}
    user, effective = specs_in_wire(raw) if raw is not None else specs_of(info)
    return {"user_spec_json": user, "effective_spec_json": effective}


@contextlib.contextmanager
def interrupt_after_call() -> Iterator[None]:
    """Ctrl-C during a pachd call takes effect when the call returns (a second Ctrl-C at once).

    A KeyboardInterrupt raised inside grpc's streaming call machinery can leave an integrated call
    that no spin thread drains; the channel's close, run later by the garbage collector, then waits
    for it forever (grpc/_channel.py _ChannelCallState.__del__; reproduced in
    tests/test_faults.py::test_ctrl_c_during_pachd_calls_never_hangs). Only the main thread gets
    signals, and only it may set handlers."""
    import signal

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = signal.getsignal(signal.SIGINT)

    def later(signum, frame) -> None:
        if pending:  # asked twice: stop now
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        pending.append(signum)

    signal.signal(signal.SIGINT, later)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def added_annotations(sent: Mapping[str, Any], final: Mapping[str, Any]) -> dict[str, str] | None:
    """The metadata.annotations members `final` has beyond `sent`, when that is their only
    difference (string values, none of `sent`'s changed or gone); else None."""
    def annotations(spec: Mapping[str, Any]) -> Any:
        return (spec.get("metadata") or {}).get("annotations") or {}

    before, after = annotations(sent), annotations(final)
    if not isinstance(before, dict) or not isinstance(after, dict):
        return None
    if any(key not in after or after[key] != value for key, value in before.items()):
        return None
    added = {key: value for key, value in after.items() if key not in before}
    if not all(isinstance(value, str) for value in added.values()):
        return None
    rest = {key: value for key, value in final.items() if key != "metadata"}
    if rest != {key: value for key, value in sent.items() if key != "metadata"}:
        return None
    meta_rest = {k: v for k, v in (final.get("metadata") or {}).items() if k != "annotations"}
    if meta_rest != {k: v for k, v in (sent.get("metadata") or {}).items() if k != "annotations"}:
        return None
    return added


def with_annotations(effective_json: str, added: Mapping[str, str]) -> str:
    """pachd's effective spec (protojson) with `added` merged into metadata.annotations, as pachd's
    merge patch would have put them there had the user's spec carried them."""
    effective = json.loads(effective_json)
    metadata = effective.setdefault("metadata", {})
    metadata.setdefault("annotations", {}).update(added)
    return json.dumps(effective)

