"""Two deploys at once (issue 11): the one whose plan went stale changes nothing and exits 11.

Two clones of one project at different commits, two `invoke deploy` processes. The test command
is a gate: the first deploy has planned (plans come before the tests) and waits at the gate
while the other deploys to the end; then the gate opens. Real Docker Engine, registry, pachd double.
"""
from __future__ import annotations

import os
import subprocess
import time

import pytest

from project_helpers import VENV_BIN, Project, Result, make_project

GATE = "test_command = 'touch \"$READY\"; while [ ! -e \"$GATE\" ]; do sleep 0.05; done'\n" 'owner = "team-edges"'


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('test_command = "true"', GATE))
    project.commit("the test command waits at a gate")
    return project


def clone(project: Project, tmp_path, name: str) -> Project:
    root = tmp_path / name
    subprocess.run(["git", "clone", "-q", str(project.root), str(root)], check=True)
    return Project(root, project.env)


def gates(tmp_path, name: str) -> dict[str, str]:
    return {"READY": str(tmp_path / f"{name}.ready"), "GATE": str(tmp_path / f"{name}.gate")}


def open_gate(env: dict[str, str]) -> None:
    open(env["GATE"], "w").close()


def start(project: Project, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [str(VENV_BIN / "invoke"), "deploy"], cwd=project.root, env={**project.env, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def held_at_the_gate(process: subprocess.Popen, env: dict[str, str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.exists(env["READY"]):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the first deploy never reached its tests"
        time.sleep(0.05)


def finish(process: subprocess.Popen) -> Result:
    stdout, stderr = process.communicate(timeout=300)
    return Result(process.returncode, stdout, stderr)


def race(slow: Project, fast: Project, tmp_path) -> tuple[Result, Result]:
    """`slow` plans, then `fast` deploys start to end, then `slow` goes on."""
    slow_env, fast_env = gates(tmp_path, "slow"), gates(tmp_path, "fast")
    open_gate(fast_env)
    process = start(slow, slow_env)
    held_at_the_gate(process, slow_env)
    fast_result = fast.invoke("deploy", env=fast_env)
    open_gate(slow_env)
    return finish(process), fast_result


def test_two_creates_at_once_the_second_changes_nothing(project, tmp_path, cluster, client):
    newer = clone(project, tmp_path, "newer")
    newer.write("transform.txt", "newer code\n")
    newer_commit = newer.commit("newer")

    loser, winner = race(project, newer, tmp_path)
    assert winner.code == 0, winner.stderr
    assert loser.code == 11, loser.stderr
    assert loser.errors == [
        "error: pipeline edges was created (version 1) during this deploy; nothing was changed; rerun to plan again"
    ]
    assert cluster.pipeline_versions() == {"edges": 1}
    assert cluster.pipeline_spec("edges")["transform"]["image"].endswith(":" + newer_commit)
    assert not list(client.list_transaction())  # the loser's transaction is not left open


def test_an_older_commit_finishing_late_does_not_overwrite_the_newer(project, tmp_path, cluster, client):
    everything_open = gates(tmp_path, "first")
    open_gate(everything_open)
    assert project.invoke("deploy", env=everything_open).code == 0
    project.write("transform.txt", "older code\n")
    older_commit = project.commit("older")
    newer = clone(project, tmp_path, "newer")
    newer.write("transform.txt", "newer code\n")
    newer_commit = newer.commit("newer, a child of older")
    project.git("fetch", "-q", str(newer.root), "main")  # so this clone can tell the newer commit is newer

    loser, winner = race(project, newer, tmp_path)
    assert winner.code == 0, winner.stderr
    assert "edges: updated (version 2)" in winner.stdout
    assert loser.code == 11, loser.stderr
    assert loser.errors == [
        f"error: pipeline edges moved from version 1 to 2 during this deploy; it now runs commit "
        f"{newer_commit[:12]}, newer than this deploy's {older_commit[:12]}; nothing was changed; rerun to plan again"
    ]
    assert cluster.pipeline_versions() == {"edges": 2}
    spec = cluster.pipeline_spec("edges")
    assert spec["transform"]["image"].endswith(":" + newer_commit)
    assert spec["metadata"]["annotations"]["invoke-pachyderm.io/commit"] == newer_commit
    assert not list(client.list_transaction())

    rerun = project.invoke("deploy", env=gates(tmp_path, "fast"))  # planning again: the guard refuses it
    assert rerun.code == 10 and "newer than" in rerun.stderr
