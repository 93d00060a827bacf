"""`invoke deploy` end to end: real Docker Engine, real registry, the pachd double over real gRPC."""
from __future__ import annotations

import grpc
import pytest
import python_pachyderm

from invoke_pachyderm.testing.pachd_double import PachdDouble
from project_helpers import make_project

ANNOTATION = "invoke-pachyderm.io/"


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    return make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")


def spec_of(client, name):
    return next(client.inspect_pipeline(name, details=True))


def test_deploy_builds_pushes_and_creates_then_updates(project, registry, client, unique_repo):
    first = project.head
    result = project.invoke("deploy")
    assert result.code == 0, result.stderr
    assert "edges: created (version 1)" in result.stdout
    assert first in registry.tags(unique_repo)
    info = spec_of(client, "edges")
    assert info.details.transform.image == f"{registry.host}/{unique_repo}:{first}"
    assert info.details.metadata.annotations[ANNOTATION + "commit"] == first

    project.write("transform.txt", "new code\n")
    second = project.commit("second")
    result = project.invoke("deploy")
    assert result.code == 0, result.stderr
    assert "edges: updated (version 2)" in result.stdout
    assert set(registry.tags(unique_repo)) >= {first, second}
    info = spec_of(client, "edges")
    assert info.version == 2
    assert info.details.transform.image == f"{registry.host}/{unique_repo}:{second}"


def test_redeploy_of_the_same_commit_changes_nothing(project, cluster):
    assert project.invoke("deploy").code == 0
    before = cluster.pipeline_versions()
    result = project.invoke("deploy")
    assert result.code == 0, result.stderr
    assert "edges: unchanged (version 1)" in result.stdout
    assert "already in the registry" in result.stderr  # no second build or push
    assert cluster.pipeline_versions() == before == {"edges": 1}


def test_missing_input_repo_stops_before_building(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        pipelines=(("edges", "no-such-repo"),),
    )
    result = project.invoke("deploy")
    assert result.code == 8
    assert "reads repo 'no-such-repo', which does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert registry.tags(unique_repo) == []
    assert cluster.pipeline_versions() == {}


def test_failing_tests_build_nothing(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}"
    )
    project.write("pyproject.toml", project.root.joinpath("pyproject.toml").read_text().replace(
        'test_command = "true"', 'test_command = "exit 3"'))
    project.commit("failing tests")
    result = project.invoke("deploy")
    assert result.code == 5
    assert "tests failed" in result.stderr
    assert registry.tags(unique_repo) == []
    assert cluster.pipeline_versions() == {}


def test_unreachable_pachd_is_one_clear_line(project, registry, unique_repo):
    result = project.invoke("deploy", env={"PACHD_ADDRESS": "grpc://127.0.0.1:1"})
    assert result.code == 8
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0]
    assert registry.tags(unique_repo) == []


def test_dirty_tree_is_refused_unless_allowed(project, registry, unique_repo, client):
    project.write("untracked.txt", "work in progress\n")
    result = project.invoke("deploy")
    assert result.code == 4
    assert "--allow-dirty" in result.stderr
    result = project.invoke("deploy", "--allow-dirty")
    assert result.code == 0, result.stderr
    (tag,) = registry.tags(unique_repo)
    assert tag.startswith("dirty-") and tag != project.head
    assert spec_of(client, "edges").details.transform.image.endswith(":" + tag)


def test_push_to_a_registry_that_wants_credentials(tmp_path, services, auth_registry, cluster, unique_repo):
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{auth_registry.host}/{unique_repo}"
    )
    result = project.invoke("deploy")
    assert result.code == 7
    assert "credentials" in result.stderr
    assert cluster.pipeline_versions() == {}
    credentials = {
        "INVOKE_PACHYDERM_REGISTRY_USERNAME": auth_registry.username,
        "INVOKE_PACHYDERM_REGISTRY_PASSWORD": auth_registry.password,
    }
    result = project.invoke("deploy", env=credentials)
    assert result.code == 0, result.stderr
    assert auth_registry.password not in result.stdout + result.stderr
    assert project.head in auth_registry.tags(unique_repo)
    for path in (project.root / "build").rglob("*"):
        if path.is_file():
            assert auth_registry.password not in path.read_text()


def test_json_output_is_one_document(project, registry, unique_repo):
    result = project.invoke("deploy", "--json")
    assert result.code == 0, result.stderr
    document = result.json
    assert document["commit"] == project.head
    assert document["images"]["main"]["digest"].startswith("sha256:")
    assert document["pipelines"] == [
        {"name": "edges", "action": "create", "diff": document["pipelines"][0]["diff"],
         "version": 1, "previous_version": None, "defaults_changed": False, "defaults_note": ""}
    ]


def test_auth_token_is_sent_and_never_printed(tmp_path, services, registry, unique_repo):
    token = "s3cret-token-value"
    with PachdDouble(tokens=[token]) as double:
        double.create_repo("images")
        project = make_project(tmp_path, services, f"grpc://{double.address}", f"{registry.host}/{unique_repo}")
        refused = project.invoke("deploy")
        assert refused.code == 8 and "UNAUTHENTICATED" in refused.stderr
        result = project.invoke("deploy", env={"INVOKE_PACHYDERM_TOKEN": token})
        assert result.code == 0, result.stderr
        assert token not in result.stdout + result.stderr
        client = python_pachyderm.Client(host="127.0.0.1", port=double.port, auth_token=token)
        assert next(client.inspect_pipeline("edges")).version == 1
        with pytest.raises(grpc.RpcError):
            next(python_pachyderm.Client(host="127.0.0.1", port=double.port).inspect_pipeline("edges"))
