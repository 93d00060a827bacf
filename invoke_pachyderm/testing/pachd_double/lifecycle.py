"""A pipeline's state, computed when it is looked at.

A created, updated or restarted pipeline is PIPELINE_STARTING for
``start_delay`` seconds, then PIPELINE_RUNNING if the registry has its image
(or no registry is configured), else PIPELINE_CRASHING with the pull error as
reason, rechecked on every look (as a kubelet retries the pull).  A stopped
pipeline is PIPELINE_PAUSED.  Older versions keep the state last seen.
"""
from __future__ import annotations

from python_pachyderm.proto.v2.pps import pps_pb2

from .images import RegistryChecker
from .state import PipelineVersion


def observe(version: PipelineVersion, start_delay: float, checker: RegistryChecker, now: float):
    """(state, reason) of the current version; remembered on the version."""
    state, reason = _current_state(version, start_delay, checker, now)
    version.last_state, version.last_reason = state, reason
    return state, reason


def _current_state(version, start_delay, checker, now):
    if version.info.stopped:
        return pps_pb2.PIPELINE_PAUSED, ""
    if now - version.started_at < start_delay:
        return pps_pb2.PIPELINE_STARTING, ""
    if version.image_ok:
        return pps_pb2.PIPELINE_RUNNING, ""
    pull = checker.check(version.info.details.transform.image)
    if pull.present:
        version.image_ok = True
        return pps_pb2.PIPELINE_RUNNING, ""
    return pps_pb2.PIPELINE_CRASHING, pull.reason


def present(version: PipelineVersion, state: int, reason: str, details: bool) -> pps_pb2.PipelineInfo:
    """The PipelineInfo a client sees: state filled in, details only on request."""
    info = pps_pb2.PipelineInfo()
    info.CopyFrom(version.info)
    info.state = state
    info.reason = reason
    if not details:
        info.ClearField("details")
    return info


class WireCache:
    """Each stored PipelineInfo serialized once, for ListPipeline's answers.

    A pipeline version's info never changes once stored (pps_ops replaces it), so its bytes are
    kept, without state and reason, and those two are spliced in where protobuf writes them
    (fields in number order: after 1-4, before 7-). The bytes are present()'s serialization,
    without copying and serializing ~3 KB of pure-Python message per pipeline per call, a cost
    real pachd (Go, stored protos) does not have."""

    LIMIT = 20_000

    def __init__(self):
        self._entries: dict[int, tuple[pps_pb2.PipelineInfo, bytes, int]] = {}

    def present(self, version: PipelineVersion, state: int, reason: str) -> bytes:
        info = version.info
        entry = self._entries.get(id(info))
        if entry is None or entry[0] is not info:
            entry = self._entries[id(info)] = (info, *self._split(info))
            if len(self._entries) > self.LIMIT:
                self._entries = {id(info): entry}
        _, raw, split = entry
        middle = pps_pb2.PipelineInfo(state=state, reason=reason).SerializeToString()
        return raw[:split] + middle + raw[split:]

    @staticmethod
    def _split(info: pps_pb2.PipelineInfo) -> tuple[bytes, int]:
        """(info's bytes without fields 5 and 6, where they go): one serialization, then a walk of
        the top-level fields (known fields come in number order, unknown ones after them)."""
        from invoke_pachyderm.backends.pachd_wire import fields  # protobuf's wire format, nothing of pachd's

        raw = info.SerializeToString()
        kept: list[bytes] = []
        split: int | None = None
        start = 0
        for number, _, _, end in fields(raw):
            if split is None and number >= 5:
                split = sum(len(part) for part in kept)
            if number not in (5, 6):
                kept.append(raw[start:end])
            start = end
        return b"".join(kept), len(raw) if split is None else split

