"""Issue 10: the diff and the deploy follow pachd, cluster and project defaults included.

End to end through `invoke deploy` (real Docker, real registry) against the double in pachd 2.7
and 2.12 mode, with specs that exercise what pachd rewrites: a cross of a named and an unnamed pfs
input (pps.SortInput), a glob "*" (pfsfile.CleanPath), a trigger input (trigger branches) and an
explicit `"autoscaling": false` (which only CreatePipelineV2 keeps against a project default)."""
from __future__ import annotations

import json

import grpc
import pytest
from project_helpers import make_project
from python_pachyderm.proto.v2.pps import pps_pb2
from test_pachd_wire import same_reading

CROSS = """{
  "pipeline": {"name": "crossed"},
  "transform": {"image": "{{ image }}", "cmd": ["/busybox", "true"]},
  "input": {"cross": [{"pfs": {"repo": "images", "glob": "*", "name": "zeta"}},
                      {"pfs": {"repo": "images", "glob": "/"}}]},
  "autoscaling": false
}
"""
TRIGGERED = """{
  "pipeline": {"name": "triggered"},
  "description": "",
  "transform": {"image": "{{ image }}", "cmd": ["/busybox", "true"]},
  "input": {"pfs": {"repo": "images", "glob": "/*/", "trigger": {"size": "1M"}}}
}
"""


@pytest.fixture(autouse=True)
def every_pipeline_reads_as_protobuf_reads_it(cluster):
    """After each test, every version of every pipeline the double lists (as deployed() and
    states() ask: with and without details) reads from the wire as protobuf parses it."""
    yield
    with grpc.insecure_channel(cluster.address) as channel:
        stream = channel.unary_stream("/pps_v2.API/ListPipeline",
                                      request_serializer=pps_pb2.ListPipelineRequest.SerializeToString)
        raws = [raw for details in (True, False)
                for raw in stream(pps_pb2.ListPipelineRequest(details=details, history=-1))]
    assert len(raws) >= 4  # each test deploys two pipelines
    for raw in raws:
        same_reading(raw)


def fidelity_project(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
                           settings='tag = "inputs"\n', pipelines=())
    project.write("templates/crossed.json.j2", CROSS)
    project.write("templates/triggered.json.j2", TRIGGERED)
    project.write(".dockerignore", "templates\nbuild\n")
    project.commit("specs pachd rewrites")
    return project


def set_defaults(cluster):
    if cluster.has_defaults:
        cluster.set_project_defaults('{"createPipelineRequest": {"autoscaling": true}}')


def test_unchanged_redeploys_bump_nothing_and_one_change_bumps_one(tmp_path, services, registry, cluster, unique_repo):
    set_defaults(cluster)
    project = fidelity_project(tmp_path, services, registry, cluster, unique_repo)
    first = project.invoke("deploy")
    assert first.code == 0, first.stderr
    assert cluster.pipeline_versions() == {"crossed": 1, "triggered": 1}
    info = cluster.pipeline_info("crossed")["details"]
    assert [c["pfs"]["name"] for c in info["input"]["cross"]] == ["images", "zeta"]  # sorted as pachd does
    assert info.get("autoscaling", False) is False  # the explicit false survived the project default
    assert cluster.pipeline_info("triggered")["details"]["input"]["pfs"]["branch"] == "triggered-trigger-1"

    for _ in range(2):
        again = project.invoke("deploy", "--json")
        assert again.code == 0, again.stderr
        assert {p["name"]: p["action"] for p in again.json["pipelines"]} == {
            "crossed": "unchanged", "triggered": "unchanged"}
    assert cluster.pipeline_versions() == {"crossed": 1, "triggered": 1}

    path = project.root / "templates/triggered.json.j2"
    path.write_text(path.read_text().replace('"description": ""', '"description": "now described"'))
    project.commit("describe one")
    changed = project.invoke("deploy")
    assert changed.code == 0, changed.stderr
    assert cluster.pipeline_versions() == {"crossed": 1, "triggered": 2}


def test_new_cluster_defaults_are_a_note_not_a_user_change(tmp_path, services, registry, cluster, unique_repo):
    set_defaults(cluster)
    project = fidelity_project(tmp_path, services, registry, cluster, unique_repo)
    assert project.invoke("deploy").code == 0
    if not cluster.has_defaults:
        # pachd 2.7 has no defaults: nothing can drift, a dry run plans nothing
        plan = project.invoke("deploy", "--dry-run", "--json")
        assert {p["action"] for p in plan.json["pipelines"]} == {"unchanged"}
        return
    cluster.set_cluster_defaults('{"createPipelineRequest": {"datumTries": 7}}', regenerate=False)
    plan = project.invoke("deploy", "--dry-run")
    assert plan.code == 0, plan.stderr
    assert "crossed: unchanged" in plan.stdout and "triggered: unchanged" in plan.stdout
    assert "crossed: note: cluster or project defaults changed since version 1; deploy --regenerate" in plan.stdout
    as_json = project.invoke("deploy", "--dry-run", "--json").json
    assert all(p["defaults_changed"] and p["action"] == "unchanged" and not p["diff"] for p in as_json["pipelines"])
    # a plain deploy leaves them alone (no restart); --regenerate applies the new defaults
    assert project.invoke("deploy").code == 0
    assert cluster.pipeline_versions() == {"crossed": 1, "triggered": 1}
    regenerated = project.invoke("deploy", "--regenerate")
    assert regenerated.code == 0, regenerated.stderr
    assert cluster.pipeline_versions() == {"crossed": 2, "triggered": 2}
    assert json.loads(cluster.user_spec_json("crossed")[1])["datumTries"] == "7" or \
        json.loads(cluster.user_spec_json("crossed")[1])["datumTries"] == 7
    settled = project.invoke("deploy", "--dry-run", "--json").json
    assert not any(p["defaults_changed"] for p in settled["pipelines"])


def test_rollback_restores_the_user_spec_not_the_effective_one(tmp_path, services, registry, cluster, unique_repo):
    set_defaults(cluster)
    project = fidelity_project(tmp_path, services, registry, cluster, unique_repo)
    assert project.invoke("deploy").code == 0
    path = project.root / "templates/triggered.json.j2"
    path.write_text(path.read_text().replace('"description": ""', '"description": "v2"'))
    project.commit("describe")
    assert project.invoke("deploy").code == 0
    rolled = project.invoke("rollback", "--json")
    assert rolled.code == 0, rolled.stderr
    assert [row["pipeline"] for row in rolled.json["restored"]] == ["triggered"] or \
        [row["pipeline"] for row in rolled.json] == ["triggered"]
    assert cluster.pipeline_versions() == {"crossed": 1, "triggered": 3}
    assert cluster.pipeline_info("triggered")["details"].get("description", "") == ""
    if cluster.has_defaults:
        user = json.loads(cluster.user_spec_json("triggered")[0])
        assert "resourceRequests" not in user and "resource_requests" not in user  # defaults not pinned
        # and the next deploy of the rolled-back commit's successor sees the user change again
        plan = project.invoke("deploy", "--dry-run", "--json").json
        assert {p["name"]: p["action"] for p in plan["pipelines"]} == {"crossed": "unchanged", "triggered": "update"}
