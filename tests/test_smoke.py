"""`invoke smoke` (issue 15): each pipeline's transform runs in a local container on the sample files,
with /pfs/<input> and an empty /pfs/out, before anything reaches the cluster. End to end through
`invoke` against a real Docker Engine (no network for the container), registry and the pachd double."""
from __future__ import annotations

import json

from invoke_pachyderm.stages.smoke import LABEL
from project_helpers import make_project

EDGES = {
    "pipeline": {"name": "edges"},
    "transform": {
        "image": "{{ image }}",
        "cmd": ["/busybox", "sh"],
        "stdin": ["/busybox cp /pfs/images/* /pfs/out/", "echo \"$GREETING\" > /pfs/out/greeting.txt"],
        "env": {"GREETING": "hello from the transform"},
    },
    "input": {"pfs": {"repo": "images", "glob": "/*"}},
}
STATS = {
    "pipeline": {"name": "stats"},
    "transform": {"image": "{{ image }}", "cmd": ["/busybox", "sh", "-c", "/busybox wc -c /pfs/edges/* > /pfs/out/sizes.txt"]},
    "input": {"pfs": {"repo": "edges", "glob": "/"}},
}
UNREACHABLE_PACHD = "grpc://127.0.0.1:9"  # `smoke` never talks to pachd


def smoke_project(tmp_path, services, registry, unique_repo, pachd=UNREACHABLE_PACHD, settings="", edges=None):
    project = make_project(tmp_path, services, pachd, f"{registry.host}/{unique_repo}", settings=settings)
    project.write("templates/edges.json.j2", json.dumps(edges or EDGES, indent=2))
    project.write("templates/stats.json.j2", json.dumps(STATS, indent=2))
    project.write("tests/data/images/a.txt", "first sample\n")
    project.write("tests/data/images/b.txt", "second\n")
    project.commit("smoke data")
    return project


def broken(stdin):
    return {**EDGES, "transform": {**EDGES["transform"], "stdin": stdin}}


def leftover_containers(docker_client):
    return docker_client.containers.list(all=True, filters={"label": LABEL})


def test_smoke_runs_each_transform_on_the_sample_files(tmp_path, services, registry, unique_repo, docker_client):
    project = smoke_project(tmp_path, services, registry, unique_repo)
    result = project.invoke("smoke", "--json")
    assert result.code == 0, result.stderr
    runs = {run["pipeline"]: run for run in result.json["smoke"]}
    assert [run["status"] for run in runs.values()] == ["passed", "passed"]
    assert runs["edges"]["outputs"] == [
        {"path": "a.txt", "size": 13},
        {"path": "b.txt", "size": 7},
        {"path": "greeting.txt", "size": len("hello from the transform\n")},  # env and stdin reached it
    ]
    # stats reads the edges repo: no sample folder for it, so it got edges' /pfs/out.
    assert runs["stats"]["outputs"][0]["path"] == "sizes.txt" and runs["stats"]["outputs"][0]["size"] > 0
    assert "stats: running" in result.stderr and "/pfs/edges <- the /pfs/out of edges" in result.stderr
    assert leftover_containers(docker_client) == []

    human = project.invoke("smoke", "--pipeline", "edges")
    assert human.code == 0, human.stderr
    assert human.stdout.splitlines()[:4] == [
        "edges: passed in " + human.stdout.split("edges: passed in ")[1].split("s,")[0] + "s, 3 file(s) in /pfs/out (45 B)",
        "  a.txt  13 B",
        "  b.txt  7 B",
        "  greeting.txt  25 B",
    ]
    assert (project.root / "tests/data/images/a.txt").read_text() == "first sample\n"


def test_a_failing_transform_fails_with_its_last_log_lines(tmp_path, services, registry, unique_repo, docker_client):
    project = smoke_project(tmp_path, services, registry, unique_repo, edges=broken(
        ["echo looking at /pfs/images", "/busybox ls /pfs/images", "echo 'cannot parse b.txt' >&2", "exit 1"]
    ))
    result = project.invoke("smoke")
    assert result.code == 12, result.stderr
    assert result.errors == ["error: smoke: pipeline edges: the transform exited 1; its last 4 log line(s) are above"]
    tail = [line for line in result.stderr.splitlines() if line.startswith("edges | ")]
    # stdout and stderr are separate pipes: their lines may interleave in either order
    assert sorted(tail) == ["edges | a.txt", "edges | b.txt", "edges | cannot parse b.txt", "edges | looking at /pfs/images"]
    assert "Traceback" not in result.stderr
    assert leftover_containers(docker_client) == []


def test_a_transform_writing_nothing_fails(tmp_path, services, registry, unique_repo, docker_client):
    project = smoke_project(tmp_path, services, registry, unique_repo, edges=broken(["echo done, wrote nothing"]))
    result = project.invoke("smoke", "--json")
    assert result.code == 12, result.stderr
    assert result.errors == [
        "error: smoke: pipeline edges: the transform exited 0 but wrote nothing to /pfs/out; its last 1 log line(s) are above"
    ]
    assert "edges | done, wrote nothing" in result.stderr
    assert result.stdout == ""
    assert leftover_containers(docker_client) == []


def test_the_container_has_no_network_and_cannot_change_the_samples(tmp_path, services, registry, unique_repo):
    project = smoke_project(tmp_path, services, registry, unique_repo, edges=broken([
        "/busybox rm /pfs/images/a.txt",
        "/busybox ip -o link | /busybox cut -d: -f2 | /busybox tr -d ' ' > /pfs/out/links.txt",
    ]))
    result = project.invoke("smoke", "--json")
    assert result.code == 0, result.stderr
    assert result.json["smoke"][0]["outputs"] == [{"path": "links.txt", "size": len("lo\n")}]  # loopback only
    assert (project.root / "tests/data/images/a.txt").is_file()


def test_a_missing_sample_folder_stops_before_the_build(tmp_path, services, registry, unique_repo):
    project = smoke_project(tmp_path, services, registry, unique_repo, settings='smoke_data = "samples"\n')
    result = project.invoke("smoke")
    assert result.code == 2
    assert result.errors[0].startswith("error: pyproject.toml [tool.invoke-pachyderm]: key 'smoke_data': 'samples' is not a folder")
    assert "== build" not in result.stderr


def test_smoke_before_deploy_stops_a_broken_transform_before_the_push(
    tmp_path, services, registry, unique_repo, cluster
):
    project = smoke_project(tmp_path, services, registry, unique_repo, pachd=f"grpc://{cluster.address}",
                            settings="smoke_before_deploy = true\n", edges=broken(["exit 3"]))
    result = project.invoke("deploy")
    assert result.code == 12, result.stderr
    assert result.errors == [
        "error: smoke: pipeline edges: the transform exited 3; it logged nothing; "
        "nothing was pushed and no pipeline was changed"
    ]
    assert registry.tags(unique_repo) == []
    assert cluster.pipeline_versions() == {}


def test_smoke_before_deploy_runs_after_the_build_and_before_the_push(tmp_path, services, registry, unique_repo, cluster):
    project = smoke_project(tmp_path, services, registry, unique_repo, pachd=f"grpc://{cluster.address}",
                            settings="smoke_before_deploy = true\n")
    result = project.invoke("deploy")
    assert result.code == 0, result.stderr
    log = result.stderr
    assert log.index("built ") < log.index("== smoke") < log.index("stats: passed") < log.index("built+pushed")
    assert "edges: created (version 1)" in result.stdout and "stats: created (version 1)" in result.stdout
    assert registry.tags(unique_repo) == [project.head]
