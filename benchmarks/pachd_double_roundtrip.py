"""Round-trip cost of the pachd double through python-pachyderm.

Starts a double in-process, then times N create_pipeline(update=True) and N
inspect_pipeline calls; prints milliseconds per call.

    .venv/bin/python benchmarks/pachd_double_roundtrip.py [N]
"""
from __future__ import annotations

import sys
import time

import python_pachyderm
from python_pachyderm.proto.v2.pps import pps_pb2

from invoke_pachyderm.testing.pachd_double import PachdDouble


def time_calls(count: int, call) -> float:
    """Milliseconds per call."""
    began = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - began) * 1000 / count


def main(count: int = 100) -> None:
    began = time.perf_counter()
    with PachdDouble(start_delay=0) as double:
        started_ms = (time.perf_counter() - began) * 1000
        client = python_pachyderm.Client(host=double.host, port=double.port)
        client.create_repo("images")
        transform = pps_pb2.Transform(image="team/edges:1.0", cmd=["python3", "/edges.py"])
        pipe_input = pps_pb2.Input(pfs=pps_pb2.PFSInput(repo="images", glob="/*"))

        def update():
            client.create_pipeline("edges", transform=transform, input=pipe_input, update=True)

        def inspect():
            next(client.inspect_pipeline("edges", details=True))

        update()  # warm the channel
        create_ms = time_calls(count, update)
        inspect_ms = time_calls(count, inspect)
        version = double.pipeline_versions()["edges"]
    print(f"double start: {started_ms:.1f} ms")
    print(f"create_pipeline(update=True): {create_ms:.2f} ms/call over {count} (now version {version})")
    print(f"inspect_pipeline(details=True): {inspect_ms:.2f} ms/call over {count}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100)
