"""`deploy --wait`: one line per pipeline state change, and what each pipeline is waiting for.

Only reads pachd (`cluster.states`); the verdicts are the ones `deploy` documents: RUNNING is done,
CRASHING or FAILURE fails at once with pachd's reason, the timeout fails naming who was not running.
"""
from __future__ import annotations

import time
from typing import Callable

from invoke_pachyderm.core.errors import HealthError

RUNNING = "PIPELINE_RUNNING"
FAILED = ("PIPELINE_CRASHING", "PIPELINE_FAILURE")
WAITING_FOR = {
    "PIPELINE_STARTING": "its workers to start (image pull, scheduling)",
    "PIPELINE_RESTARTING": "its workers to restart after an error",
    "PIPELINE_PAUSED": "a start (it is stopped: pachctl start pipeline {name})",
    "PIPELINE_STANDBY": "input data (standby)",
}
HEARTBEAT = 10.0  # seconds between "still waiting" lines when nothing changes


def short(state: str) -> str:
    return state.removeprefix("PIPELINE_")


def describe(name: str, info) -> str:
    line = f"{name}: {short(info.state).lower()} (version {info.version})"
    if info.state in WAITING_FOR:
        line += ", waiting for " + WAITING_FOR[info.state].format(name=name)
    if info.reason and info.state != RUNNING:
        line += f": {info.reason}"
    return line


def wait_running(
    cluster, names: list[str], timeout: float, log: Callable[[str], None], poll: float = 0.5,
    heartbeat: float = HEARTBEAT,
) -> dict:
    began = time.monotonic()
    deadline = began + timeout
    pending = list(names)
    seen: dict = {}
    last: dict[str, tuple[str, int]] = {}
    said = began
    if pending:
        log(f"waiting up to {timeout:.0f}s for {len(pending)} pipeline(s) to run: {', '.join(pending)}")
    while pending:
        for name, info in cluster.states(pending).items():
            seen[name] = info
            if last.get(name) != (info.state, info.version):
                last[name] = (info.state, info.version)
                log(describe(name, info))
                said = time.monotonic()
            if info.state == RUNNING:
                pending.remove(name)
            elif info.state in FAILED:
                raise HealthError(
                    f"pipeline {name} (version {info.version}) is {short(info.state)}: "
                    f"{info.reason or 'no reason given'}"
                )
        now = time.monotonic()
        if pending and now > deadline:
            states = ", ".join(f"{n} {short(seen[n].state)}" for n in pending)
            raise HealthError(f"timed out after {timeout:.0f}s waiting for pipelines to run: {states}")
        if pending and now - said >= heartbeat:
            states = ", ".join(f"{n} {short(seen[n].state)}" for n in pending)
            log(f"still waiting ({now - began:.0f}s of {timeout:.0f}s): {states}")
            said = now
        if pending:
            time.sleep(poll)
    return seen
