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
