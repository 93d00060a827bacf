"""Progress on long work (issue 15): `deploy --wait` says each pipeline's state as it changes and what
it waits for. Real Docker Engine + registry + pachd double (whose pipelines start slowly here)."""
from __future__ import annotations

import pytest
import python_pachyderm
from python_pachyderm.proto.v2.pps import pps_pb2

from invoke_pachyderm.cluster import Cluster
from invoke_pachyderm.config import PachdTarget
from invoke_pachyderm.errors import HealthError
from invoke_pachyderm.pachd_double import PachdDouble
from invoke_pachyderm.watch import wait_running
from project_helpers import make_project


@pytest.fixture
def slow_cluster(registry):
    double = PachdDouble(registry_url=registry.url, start_delay=1.5).start()
    double.create_repo("images")
    yield double
    double.stop()


def test_wait_prints_state_changes_and_what_it_waits_for(tmp_path, services, registry, slow_cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{slow_cluster.address}", f"{registry.host}/{unique_repo}",
                           pipelines=(("edges", "images"), ("stats", "edges")))
    result = project.invoke("deploy", "--wait", "--timeout", "30")
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines()
    wait_lines = lines[lines.index("waiting up to 30s for 2 pipeline(s) to run: edges, stats"):]
    for name in ("edges", "stats"):
        starting = f"{name}: starting (version 1), waiting for its workers to start (image pull, scheduling)"
        assert wait_lines.index(starting) < wait_lines.index(f"{name}: running (version 1)")
        assert sum(line.startswith(f"{name}: ") for line in wait_lines) == 2  # one line per change, no repeats


def test_a_long_wait_says_who_it_still_waits_for_then_times_out(slow_cluster):
    slow_cluster.start_delay = 60  # STARTING for the whole test
    client = python_pachyderm.Client(host="127.0.0.1", port=slow_cluster.port)
    client.create_pipeline(
        "edges", transform=pps_pb2.Transform(image="busybox"),
        input=pps_pb2.Input(pfs=pps_pb2.PFSInput(repo="images", glob="/*")),
    )
    cluster = Cluster(PachdTarget("127.0.0.1", slow_cluster.port, False, None, "test"), "default")
    lines: list[str] = []
    with pytest.raises(HealthError, match=r"timed out after 2s waiting for pipelines to run: edges STARTING"):
        wait_running(cluster, ["edges"], timeout=2.0, log=lines.append, poll=0.2, heartbeat=0.8)
    assert lines[0] == "waiting up to 2s for 1 pipeline(s) to run: edges"
    assert lines[1].startswith("edges: starting (version 1)")
    assert any(line.startswith("still waiting (") and line.endswith("of 2s): edges STARTING") for line in lines[2:])
