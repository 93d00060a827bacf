"""A deploy's first reads of pachd, sent before python_pachyderm is imported.

Importing python_pachyderm takes ~0.1-0.2 s (its package imports every generated module); grpc
alone is a fraction of that. So GetVersion and ListPipeline(details=True) go out on a plain grpc
channel, hand-encoded (two constant requests), and pachd works on them while python_pachyderm
loads. The stream is drained by a thread of its own: pachd sends a long list only as fast as it
is read (HTTP/2 flow control). Cluster then takes the channel and the answers (see Cluster.__init__).
"""
from __future__ import annotations

import threading
from typing import Any

from invoke_pachyderm.core.config import PachdTarget

CONNECT_TIMEOUT = 10.0
LIST_PIPELINE_WITH_DETAILS = b"\x18\x01"  # pps.proto ListPipelineRequest{details: true} (field 3)
_EMPTY = b""  # google.protobuf.Empty


_protobuf_lock = threading.Lock()
_protobuf_loaded = False
_protobuf_after: threading.Event | None = None
#: The longest load_protobuf waits for load_protobuf_after's event.
PROTOBUF_WAIT = 2.0


def load_protobuf_after(event: threading.Event) -> None:
    """Let load_protobuf import only once `event` is set (or PROTOBUF_WAIT has passed): a deploy's
    builds set it when docker is imported and the daemon reached. What is left of a build is the
    daemon's work, so importing docker first and python_pachyderm meanwhile puts the two imports
    (~0.1 and ~0.25 s of CPU) end to end, instead of sharing the GIL and delaying the build."""
    global _protobuf_after
    _protobuf_after = event


def load_protobuf() -> None:
    """Import python_pachyderm (the whole package: its __init__ imports every generated module) and
    protobuf's json_format, in one thread at a time. Every import of either in backends/ comes
    after this call: the connection thread may import them while the main thread needs them, and
    two threads importing python_pachyderm's circular modules from different ends can each get
    the other's half-initialised module (AttributeError: ... most likely due to a circular import)."""
    global _protobuf_loaded
    if _protobuf_loaded:
        return
    if _protobuf_after is not None:
        _protobuf_after.wait(timeout=PROTOBUF_WAIT)
    with _protobuf_lock:
        if not _protobuf_loaded:
            import python_pachyderm  # noqa: F401
            from google.protobuf import json_format  # noqa: F401

            _protobuf_loaded = True


def _identity(raw: bytes) -> bytes:
    return raw


def open_channel(target: PachdTarget, own_connection: bool = False):
    """`own_connection`: a TCP connection of its own, not one grpc shares with the other channels
    to the same address (which may be the one whose answer is lost)."""
    import grpc

    address = f"{target.host}:{target.port}"
    options = [("grpc.use_local_subchannel_pool", 1)] if own_connection else None
    if target.tls:
        credentials = grpc.ssl_channel_credentials(root_certificates=target.root_certs)
        return grpc.secure_channel(address, credentials, options=options)
    return grpc.insecure_channel(address, options=options)


def metadata(target: PachdTarget, transaction_id: str | None = None) -> list[tuple[str, str]]:
    found = []
    if target.token:
        found.append(("authn-token", target.token))
    if transaction_id:
        found.append(("pach-transaction", transaction_id))
    return found


class EarlyReads:
    """GetVersion and ListPipeline(details=True) in flight on `channel`."""

    def __init__(self, target: PachdTarget):
        self.channel = open_channel(target)
        get_version = self.channel.unary_unary(
            "/versionpb_v2.API/GetVersion", request_serializer=_identity, response_deserializer=_identity
        )
        self._version = get_version.future(_EMPTY, timeout=CONNECT_TIMEOUT, metadata=metadata(target))
        list_pipeline = self.channel.unary_stream(
            "/pps_v2.API/ListPipeline", request_serializer=_identity, response_deserializer=_identity
        )
        self._listing: list[bytes] = []
        self._list_error: Any = None
        stream = list_pipeline(LIST_PIPELINE_WITH_DETAILS, metadata=metadata(target))
        self._drain = threading.Thread(target=self._read_all, args=(stream,), name="pachd-list", daemon=True)
        self._drain.start()

    def _read_all(self, stream) -> None:
        try:
            self._listing.extend(stream)
        except BaseException as error:  # grpc.RpcError mostly; raised by listing()
            self._list_error = error

    def version(self) -> tuple[int, int]:
        """(major, minor) from GetVersion; grpc.RpcError as the call raises it."""
        from invoke_pachyderm.backends.pachd_wire import Unusual, fields, varint_at

        raw = self._version.result()
        found = {1: 0, 2: 0}  # version.proto Version: major 1, minor 2 (uint32)
        try:
            for number, wire_type, start, _ in fields(raw):
                if number in found:
                    if wire_type != 0:
                        raise Unusual("a version number with another wire type")
                    found[number] = varint_at(raw, start)[0] & 0xFFFFFFFF
        except Unusual:
            load_protobuf()
            from python_pachyderm.proto.v2.version.versionpb import version_pb2

            version = version_pb2.Version.FromString(raw)
            return version.major, version.minor
        return found[1], found[2]

    def listing(self) -> list[bytes]:
        """Every PipelineInfo's wire bytes; grpc.RpcError as the stream raised it."""
        self._drain.join()
        if self._list_error is not None:
            raise self._list_error
        return self._listing


class DefaultsReads:
    """GetClusterDefaults and GetProjectDefaults (pachd >= 2.8), hand-encoded and sent together:
    pps.proto GetProjectDefaultsRequest{project: Project{name}}; the answers' JSON strings are
    GetClusterDefaultsResponse field 2 and GetProjectDefaultsResponse field 1."""

    def __init__(self, channel, target: PachdTarget, project: str, timeout: float):
        from invoke_pachyderm.backends.pachd_wire import length_delimited

        calls = {
            name: channel.unary_unary(f"/pps_v2.API/{name}", request_serializer=_identity, response_deserializer=_identity)
            for name in ("GetClusterDefaults", "GetProjectDefaults")
        }
        project_request = length_delimited(1, length_delimited(1, project.encode("utf-8")))
        self.futures = {
            "GetClusterDefaults": calls["GetClusterDefaults"].future(_EMPTY, timeout=timeout, metadata=metadata(target)),
            "GetProjectDefaults": calls["GetProjectDefaults"].future(
                project_request, timeout=timeout, metadata=metadata(target)
            ),
        }

    def json(self, name: str) -> str:
        """The defaults JSON pachd answered to `name`; grpc.RpcError as the call raises it."""
        from invoke_pachyderm.backends.pachd_wire import Unusual, string_field

        raw = self.futures[name].result()
        number = 2 if name == "GetClusterDefaults" else 1
        try:
            return string_field(raw, number)
        except Unusual:
            from invoke_pachyderm.backends.pachd_v28 import messages

            response = getattr(messages(), f"{name}Response").FromString(raw)
            return response.cluster_defaults_json if number == 2 else response.project_defaults_json
