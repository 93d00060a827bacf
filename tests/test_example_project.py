"""The shipped example (examples/edges), deployed the way scripts/quickstart.sh does it: copied into a
fresh git repository, busybox copied in as a generated build input, `invoke deploy --wait` twice."""
from __future__ import annotations

import shutil
from pathlib import Path

from project_helpers import Project, make_project

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "edges"


def test_the_example_project_deploys_and_redeploys_without_a_restart(tmp_path, services, registry, cluster, unique_repo):
    scratch = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    root = tmp_path / "edges"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("busybox", "build", "__pycache__"))
    project = Project(root, {**scratch.env, "INVOKE_PACHYDERM_IMAGE": f"{registry.host}/{unique_repo}"})
    project.git("init", "-q", "-b", "main")
    project.commit("the example")
    shutil.copy("/bin/busybox", root / "busybox")  # git ignores it: a generated build input

    first = project.invoke("deploy", "--wait")
    assert first.code == 0, first.stderr
    assert cluster.pipeline_versions() == {"edges": 1, "montage": 1}
    again = project.invoke("deploy", "--skip-tests")
    assert again.code == 0, again.stderr
    assert cluster.pipeline_versions() == {"edges": 1, "montage": 1}  # nothing rebuilt, nothing restarted
    assert "already in the registry" in again.stderr
