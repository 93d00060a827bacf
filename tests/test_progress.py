"""Progress on long work (issue 15): `deploy --wait` says each pipeline's state as it changes and what
it waits for. Real Docker Engine + registry + pachd double (whose pipelines start slowly here)."""
from __future__ import annotations

import os
import pty
import re
import select
import subprocess

import pytest
import python_pachyderm
from python_pachyderm.proto.v2.pps import pps_pb2

from invoke_pachyderm.backends.pachd import Cluster
from invoke_pachyderm.core.config import PachdTarget
from invoke_pachyderm.core.errors import HealthError
from invoke_pachyderm.testing.pachd_double import PachdDouble
from invoke_pachyderm.stages.watch import wait_running
from project_helpers import VENV_BIN, make_project


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


@pytest.fixture
def big_image_project(tmp_path, services, registry, cluster, unique_repo):
    """A project whose image has an 8 MB layer of random bytes, built but not pushed."""
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    (project.root / "blob.bin").write_bytes(os.urandom(8_000_000))
    dockerfile = project.root / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("ENTRYPOINT", "COPY blob.bin /blob.bin\nENTRYPOINT"))
    project.commit("a big layer")
    built = project.invoke("build")
    assert built.code == 0, built.stderr
    return project


def test_push_progress_is_line_oriented_off_a_terminal(big_image_project):
    result = big_image_project.invoke("push")
    assert result.code == 0, result.stderr
    summary = re.search(r"^push: 2 layers \((\d) already there\), ([\d.]+) (kB|MB) uploaded in [\d.]+s$",
                        result.stderr, re.M)
    assert summary, result.stderr
    assert summary[3] == "MB" and float(summary[2]) >= 8.0  # the random layer went up
    assert "\r" not in result.stderr and "\x1b[" not in result.stderr


def test_push_progress_is_drawn_in_place_on_a_terminal(big_image_project):
    master, slave = pty.openpty()
    process = subprocess.Popen(
        [str(VENV_BIN / "invoke"), "push"], cwd=big_image_project.root, env=big_image_project.env,
        stdout=subprocess.PIPE, stderr=slave,
    )
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 120)
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        seen += data
    os.close(master)
    assert process.wait(timeout=120) == 0, seen.decode(errors="replace")
    text = seen.decode(errors="replace")
    assert re.search(r"\r\x1b\[Kpush: \d/2 layers, [\d.]+ (kB|MB) of [\d.]+ MB\r\x1b\[K", text), repr(text)  # drawn, then cleared
    lines = text.replace("\r\n", "\n").split("\n")
    assert all(re.fullmatch(r"(\r\x1b\[Kpush: \d/\d layers[^\r]*)*(\r\x1b\[K)?[^\r\x1b]*", line) for line in lines), repr(text)
    assert any(re.match(r"(\r\x1b\[K)?push: 2 layers \(\d already there\), [\d.]+ MB uploaded", line) for line in lines), text
