"""Per-pull-request previews (issue 11): `deploy --preview N` into project pr-N, `teardown --preview N`.
End to end through `invoke` on a real Docker Engine + registry + the pachd double."""
from __future__ import annotations

import pytest
from google.protobuf import json_format
from python_pachyderm.proto.v2.pps import pps_pb2

from project_helpers import make_project

OWNER = "invoke-pachyderm.io/owner"
MARKER = "Preview of pull request {n} for team-edges, created by invoke-pachyderm"


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    return make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='owner = "team-edges"\n', pipelines=(("first", "images"), ("second", "first")),
    )


def snapshot(client):
    """Everything a user could see: projects (with descriptions), repos of every type, pipelines."""
    projects = {(p.project.name, p.description) for p in client.list_project()}
    repos = {(r.repo.project.name, r.repo.name, r.repo.type) for r in client.list_repo(type="")}
    pipelines = {(p.pipeline.project.name, p.pipeline.name, p.version) for p in client.list_pipeline()}
    return projects, repos, pipelines


def foreign_pipeline(client, name, project, input_repo="images", input_project="default"):
    spec = {
        "pipeline": {"name": name, "project": {"name": project}},
        "transform": {"image": "busybox:1", "cmd": ["true"]},
        "input": {"pfs": {"repo": input_repo, "project": input_project, "glob": "/*"}},
        "metadata": {"annotations": {OWNER: "github.com/other/team"}},
    }
    client.create_pipeline_from_request(json_format.ParseDict(spec, pps_pb2.CreatePipelineRequest()))


def description(client, project):
    return client.inspect_project(project).description


def test_preview_deploy_and_teardown_leave_the_cluster_as_before(project, cluster, client):
    assert project.invoke("deploy").code == 0  # the base project's own deploy
    before = snapshot(client)

    result = project.invoke("deploy", "--preview", "7", "--json")
    assert result.code == 0, result.stderr
    assert [(p["name"], p["action"]) for p in result.json["pipelines"]] == [("first", "create"), ("second", "create")]
    assert "created project pr-7 for the preview of pull request 7" in result.stderr
    assert description(client, "pr-7").startswith(MARKER.format(n=7))
    assert cluster.pipeline_versions("pr-7") == {"first": 1, "second": 1}
    assert cluster.pipeline_versions() == {"first": 1, "second": 1}  # the base deploy is untouched
    # the preview reads the base project's data, and its own pipelines' outputs
    assert cluster.pipeline_spec("first", project="pr-7")["input"]["pfs"]["project"] == "default"
    assert cluster.pipeline_spec("second", project="pr-7")["input"]["pfs"].get("project", "pr-7") == "pr-7"

    again = project.invoke("deploy", "--preview", "7")
    assert again.code == 0, again.stderr
    assert "first: unchanged (version 1)" in again.stdout and "created project" not in again.stderr
    status = project.invoke("status", "--preview", "7", "--json")
    assert [(r["pipeline"], r["version"]) for r in status.json["pipelines"]] == [("first", 1), ("second", 1)]

    plan = project.invoke("teardown", "--preview", "7", "--dry-run")
    assert plan.code == 0, plan.stderr
    assert "second: would delete (version 1)\nfirst: would delete (version 1)" in plan.stdout
    assert "project pr-7 would be deleted" in plan.stdout and cluster.pipeline_versions("pr-7") == {"first": 1, "second": 1}

    down = project.invoke("teardown", "--preview", "7", "--json")
    assert down.code == 0, down.stderr
    assert down.json["deleted"] == [{"pipeline": "second", "version": 1}, {"pipeline": "first", "version": 1}]
    assert down.json["project_deleted"] is True
    assert down.stderr.index("second: deleted") < down.stderr.index("first: deleted")  # downstream first
    assert snapshot(client) == before

    gone = project.invoke("teardown", "--preview", "7")
    assert gone.code == 0 and "project pr-7 does not exist; nothing to tear down" in gone.stdout


def test_a_preview_dry_run_creates_nothing(project, client):
    before = snapshot(client)
    plan = project.invoke("deploy", "--preview", "5", "--dry-run")
    assert plan.code == 0, plan.stderr
    assert "first: create" in plan.stdout and '"project": "default"' in plan.stdout
    assert snapshot(client) == before


def test_preview_inputs_are_looked_up_in_the_base_project(project, cluster, client):
    project.pipeline("first", "missing")
    project.commit("read a repo that does not exist")
    result = project.invoke("deploy", "--preview", "3")
    assert result.code == 8
    assert result.errors == [
        f"error: pipeline first reads repo 'missing', which does not exist in project 'default' on pachd at "
        f"grpc://{cluster.address}; create it (pachctl create repo missing --project default) or fix the "
        "spec's input; nothing was built or changed"
    ]
    assert "pr-3" not in {p.project.name for p in client.list_project()}


def test_a_project_it_did_not_create_is_neither_deployed_to_nor_torn_down(project, cluster, client, registry, unique_repo):
    client.create_project("pr-8", description="made by the data team")
    before = snapshot(client)
    deploy = project.invoke("deploy", "--preview", "8")
    assert deploy.code == 10, deploy.stderr
    assert deploy.errors == [
        "error: project pr-8 exists but is not a preview project of ours: invoke-pachyderm did not create it for "
        "team-edges and pull request 8 (its description is 'made by the data team'); it may be a production or "
        "another team's project, and a preview writes only into the project it created; nothing was pushed or "
        "changed; run previews on another cluster or environment (--env), or rename that project"
    ]
    assert "Traceback" not in deploy.stderr and registry.tags(unique_repo) == []
    result = project.invoke("teardown", "--preview", "8")
    assert result.code == 10, result.stderr
    assert result.errors == [
        "error: project pr-8 kept and nothing deleted in it: invoke-pachyderm did not create it for team-edges and "
        "pull request 8 (its description is 'made by the data team'); teardown deletes only in a preview project "
        "it created (it may be a production or another team's project); if it is a preview of yours, delete its "
        "pipelines by hand"
    ]
    assert snapshot(client) == before

    # a project created for another pull request (or another owner) is not ours either
    client.create_project("pr-9", description=MARKER.format(n=10))
    assert project.invoke("teardown", "--preview", "9").code == 10
    assert "pr-9" in {p.project.name for p in client.list_project()}


def test_teardown_deletes_only_ours_and_refuses_to_delete_a_project_holding_a_foreign_pipeline(project, cluster, client):
    assert project.invoke("deploy", "--preview", "4").code == 0
    foreign_pipeline(client, "theirs", "pr-4")
    result = project.invoke("teardown", "--preview", "4")
    assert result.code == 10, result.stderr
    assert result.errors == [
        "error: project pr-4 kept: pipeline theirs in it is owned by github.com/other/team; deleted our pipelines "
        "(second, first); delete or move that pipeline, then rerun teardown"
    ]
    assert "Traceback" not in result.stderr
    assert cluster.pipeline_versions("pr-4") == {"theirs": 1}
    assert description(client, "pr-4").startswith(MARKER.format(n=4))

    client.delete_pipeline("theirs", project_name="pr-4")
    result = project.invoke("teardown", "--preview", "4")
    assert result.code == 0, result.stderr
    assert "pr-4" not in {p.project.name for p in client.list_project()}


def test_teardown_deletes_nothing_while_another_owner_reads_our_preview(project, cluster, client):
    assert project.invoke("deploy", "--preview", "6").code == 0
    foreign_pipeline(client, "reader", "default", input_repo="second", input_project="pr-6")
    result = project.invoke("teardown", "--preview", "6")
    assert result.code == 10
    assert len(result.errors) == 1 and "pipeline reader (project 'default'), not ours, reads" in result.errors[0]
    assert cluster.pipeline_versions("pr-6") == {"first": 1, "second": 1}


@pytest.mark.parametrize(
    "args, message",
    [
        (("teardown",), "teardown: which preview? pass --preview N"),
        (("teardown", "--preview", "0"), "teardown --preview: '0' is not a pull request number (1 or more)"),
        (("deploy", "--preview", "x", "--dry-run"), "deploy --preview: 'x' is not a pull request number"),
    ],
)
def test_a_missing_or_bad_pull_request_number_is_a_usage_error(project, client, args, message):
    before = snapshot(client)
    result = project.invoke(*args)
    assert result.code == 64, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert snapshot(client) == before


def test_teardown_keeps_a_project_we_made_while_a_repo_we_did_not_make_is_in_it(project, cluster, client):
    assert project.invoke("deploy", "--preview", "2").code == 0
    cluster.create_repo("raw", project="pr-2")  # test data someone put next to the preview
    result = project.invoke("teardown", "--preview", "2")
    assert result.code == 10, result.stderr
    assert result.errors == [
        "error: project pr-2 kept: repo raw is still in it (no pipeline of ours made it); deleted our pipelines "
        "(second, first); delete the repo, then rerun teardown"
    ]
    assert cluster.pipeline_versions("pr-2") == {}
    assert {r.repo.name for r in client.list_repo(type="") if r.repo.project.name == "pr-2"} == {"raw"}
