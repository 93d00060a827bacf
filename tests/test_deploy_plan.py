"""Deploys a team can trust (issue 4): plan, only what changed, atomic and ordered, provenance,
health, no going backwards, rollback, digest pinning. Real Docker Engine + registry + pachd double."""
from __future__ import annotations

import grpc
import pytest
from python_pachyderm.proto.v2.pps import pps_pb2

from project_helpers import make_project

ANNOTATION = "invoke-pachyderm.io/"
CHAIN = (("first", "images"), ("second", "first"), ("third", "second"))


@pytest.fixture
def chain(tmp_path, services, registry, cluster, unique_repo):
    """Three chained pipelines, images tagged by their inputs, so a spec-only commit keeps the image."""
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='tag = "inputs"\n', pipelines=CHAIN[::-1],
    )
    project.write(".dockerignore", "templates\nbuild\n")  # specs are not part of the image
    project.commit("dockerignore")
    return project


def create_rpc(cluster) -> str:
    """The RPC a deploy creates and updates pipelines with: one BatchTransaction for them all."""
    return "BatchTransaction"


def describe(project, text, *names):
    """Commit a change of the given pipelines' description: a spec-only change."""
    for name in names:
        path = project.root / f"templates/{name}.json.j2"
        path.write_text(path.read_text().replace('"description": ""', f'"description": "{text}"'))
    project.commit(f"describe {', '.join(names)}")


def annotations(client, name):
    return dict(next(client.inspect_pipeline(name, details=True)).details.metadata.annotations)


def test_dry_run_builds_pushes_and_changes_nothing(chain, cluster, registry, unique_repo):
    result = chain.invoke("deploy", "--dry-run")
    assert result.code == 0, result.stderr
    assert [line for line in result.stdout.splitlines() if line.endswith(": create")] == [
        "first: create", "second: create", "third: create"
    ]
    assert '+    "image": "' in result.stdout  # the diff of the rendered spec
    assert registry.tags(unique_repo) == []
    assert cluster.pipeline_versions() == {}
    assert create_rpc(cluster) not in cluster.calls

    assert chain.invoke("deploy").code == 0
    describe(chain, "now documented", "second")
    result = chain.invoke("--dry", "deploy", "--json")  # invoke's global --dry counts too
    assert result.code == 0, result.stderr
    plan = {p["name"]: p for p in result.json["pipelines"]}
    assert {name: p["action"] for name, p in plan.items()} == {
        "first": "unchanged", "second": "update", "third": "unchanged"
    }
    assert '+  "description": "now documented"' in plan["second"]["diff"]
    assert cluster.pipeline_versions() == {"first": 1, "second": 1, "third": 1}


def test_only_changed_pipelines_are_updated_in_dependency_order(chain, cluster, client):
    result = chain.invoke("deploy")
    assert result.code == 0, result.stderr
    creates = [c for c in cluster.calls if c == create_rpc(cluster)]
    assert len(creates) == 1 and cluster.pipeline_versions() == {"first": 1, "second": 1, "third": 1}
    # In one transaction the double, like pachd, needs an input repo to exist when a pipeline is
    # created, so `second` before `first` would have failed: success shows the order.
    order = [line.split(":")[0] for line in result.stdout.splitlines()[:-1]]  # then the timings line
    assert order == ["first", "second", "third"]  # templates were written in reverse order

    again = chain.invoke("deploy")
    assert again.code == 0, again.stderr
    assert cluster.pipeline_versions() == {"first": 1, "second": 1, "third": 1}

    describe(chain, "changed", "second")
    result = chain.invoke("deploy")
    assert result.code == 0, result.stderr
    assert cluster.pipeline_versions() == {"first": 1, "second": 2, "third": 1}
    assert "second: updated (version 2)" in result.stdout
    assert "first: unchanged (version 1)" in result.stdout

    forced = chain.invoke("deploy", "--force")
    assert forced.code == 0, forced.stderr
    assert cluster.pipeline_versions() == {"first": 2, "second": 3, "third": 2}


def test_a_failure_in_the_transaction_applies_nothing(chain, cluster):
    assert chain.invoke("deploy").code == 0
    describe(chain, "v2", "first", "third")
    cluster.fail_next("BatchTransaction", grpc.StatusCode.INTERNAL, message="etcd lost its leader")
    result = chain.invoke("deploy")
    assert result.code == 8
    assert "etcd lost its leader" in result.stderr and "nothing was changed" in result.stderr
    assert cluster.pipeline_versions() == {"first": 1, "second": 1, "third": 1}
    assert cluster.pipeline_spec("first").get("description", "") == ""


def test_a_rejected_pipeline_names_itself_and_applies_nothing(chain, cluster):
    assert chain.invoke("deploy").code == 0
    describe(chain, "v2", "first", "third")
    # pachd authorizes each create inside the transaction (CreatePipelineInTransaction) and
    # names the request that failed
    cluster.fail_next(create_rpc(cluster), grpc.StatusCode.PERMISSION_DENIED, count=1,
                      message="error running request 1 of 2: not allowed")
    result = chain.invoke("deploy")
    assert result.code == 8
    assert "pipeline first" in result.stderr and "not allowed" in result.stderr
    assert cluster.pipeline_versions() == {"first": 1, "second": 1, "third": 1}


def test_provenance_annotations_name_the_commit(chain, client, registry, unique_repo):
    result = chain.invoke("deploy", env={"GITHUB_ACTIONS": "", "CI_JOB_URL": "https://ci.example/jobs/7"})
    assert result.code == 0, result.stderr
    found = annotations(client, "first")
    assert found[ANNOTATION + "commit"] == chain.head
    assert found[ANNOTATION + "branch"] == "main"
    assert found[ANNOTATION + "image"].startswith(f"{registry.host}/{unique_repo}:inputs-")
    assert found[ANNOTATION + "digest"].startswith("sha256:")
    assert found[ANNOTATION + "ci-run"] == "https://ci.example/jobs/7"
    assert ANNOTATION + "tool-version" in found


def test_wait_fails_with_the_reason_when_the_image_is_missing(chain, cluster):
    path = chain.root / "templates/third.json.j2"
    path.write_text(path.read_text().replace("{{ image }}", "{{ image_repository }}:never-pushed"))
    chain.commit("third points at an image nobody pushed")
    result = chain.invoke("deploy", "--wait", "--timeout", "20")
    assert result.code == 9
    assert "third" in result.stderr and "CRASHING" in result.stderr and "never-pushed" in result.stderr
    assert "Traceback" not in result.stderr


def test_wait_succeeds_when_pipelines_run(chain, client):
    result = chain.invoke("deploy", "--wait", "--timeout", "20")
    assert result.code == 0, result.stderr
    assert "third: running" in result.stderr
    assert next(client.inspect_pipeline("third")).state == pps_pb2.PipelineState.PIPELINE_RUNNING


def test_an_older_commit_finishing_late_is_refused(tmp_path, services, registry, cluster, unique_repo, client):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    older = project.head
    project.write("code.txt", "newer\n")
    newer = project.commit("newer")
    assert project.invoke("deploy").code == 0
    project.git("checkout", "-q", older)
    result = project.invoke("deploy")
    assert result.code == 10
    assert "--allow-older" in result.stderr and newer[:12] in result.stderr
    assert annotations(client, "edges")[ANNOTATION + "commit"] == newer
    result = project.invoke("deploy", "--allow-older")
    assert result.code == 0, result.stderr
    assert annotations(client, "edges")[ANNOTATION + "commit"] == older


def test_rollback_restores_the_previous_spec(tmp_path, services, registry, cluster, unique_repo, client):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    first = project.head
    assert project.invoke("deploy").code == 0
    project.write("code.txt", "v2\n")
    second = project.commit("v2")
    assert project.invoke("deploy").code == 0
    assert annotations(client, "edges")[ANNOTATION + "commit"] == second

    result = project.invoke("rollback")
    assert result.code == 0, result.stderr
    info = next(client.inspect_pipeline("edges", details=True))
    assert info.version == 3
    assert info.details.transform.image.endswith(":" + first)
    assert dict(info.details.metadata.annotations)[ANNOTATION + "commit"] == first
    assert "edges: restored version 1" in result.stdout

    result = project.invoke("rollback", "--to", second[:10])
    assert result.code == 0, result.stderr
    assert next(client.inspect_pipeline("edges", details=True)).details.transform.image.endswith(":" + second)

    result = project.invoke("rollback", "--to", "deadbeef")
    assert result.code == 8 and "nothing changed" in result.stderr


def test_status_lists_commit_image_version_and_behind(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    deployed = project.head
    assert project.invoke("deploy").code == 0
    project.write("code.txt", "later\n")
    project.commit("not deployed yet")
    result = project.invoke("status", "--json")
    assert result.code == 0, result.stderr
    (row,) = result.json["pipelines"]
    assert row["pipeline"] == "edges" and row["version"] == 1
    assert row["commit"] == deployed and row["behind_head"] is True
    assert row["image"] == f"{registry.host}/{unique_repo}:{deployed}"


def test_pin_digest_renders_the_pushed_digest(tmp_path, services, registry, cluster, unique_repo, client):
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings="pin_digest = true\n",
    )
    assert project.invoke("deploy").code == 0
    digest = registry.manifest_digest(unique_repo, project.head)
    image = next(client.inspect_pipeline("edges", details=True)).details.transform.image
    assert image == f"{registry.host}/{unique_repo}:{project.head}@{digest}"
    plan = project.invoke("deploy", "--dry-run", "--json")
    assert plan.code == 0, plan.stderr
    assert [p["action"] for p in plan.json["pipelines"]] == ["unchanged"]


def test_a_cycle_is_an_error_naming_the_pipelines(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        pipelines=(("left", "right"), ("right", "left")),
    )
    result = project.invoke("deploy")
    assert result.code == 3
    assert "cycle" in result.stderr and "left" in result.stderr and "right" in result.stderr
    assert cluster.pipeline_versions() == {}
