"""`invoke build` and `invoke push` on the real Docker Engine and registry."""
from __future__ import annotations

import pytest

from project_helpers import make_project


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    return make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")


def test_build_tags_with_the_commit_and_sets_oci_labels(project, docker_client, registry, unique_repo):
    project.git("remote", "add", "origin", "https://someone:s3cret@git.example.com/team/edges.git")
    result = project.invoke("build")
    assert result.code == 0, result.stderr
    ref = f"{registry.host}/{unique_repo}:{project.head}"
    assert ref in result.stdout
    labels = docker_client.images.get(ref).labels
    assert labels["org.opencontainers.image.revision"] == project.head
    assert labels["org.opencontainers.image.source"] == "https://git.example.com/team/edges.git"
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert registry.tags(unique_repo) == []  # build alone pushes nothing


def test_push_prints_the_digest_the_registry_has(project, registry, unique_repo):
    assert project.invoke("build").code == 0
    result = project.invoke("push", "--json")
    assert result.code == 0, result.stderr
    pushed = result.json["images"]["main"]
    assert pushed["digest"] == registry.manifest_digest(unique_repo, project.head)
    assert pushed["pushed"] is True


def test_push_of_an_image_never_built_says_so(project, registry, unique_repo):
    result = project.invoke("push")
    assert result.code == 6
    assert "invoke build" in result.stderr and project.head in result.stderr
    assert registry.tags(unique_repo) == []


def test_a_failing_build_is_one_line_naming_the_image(project, registry, unique_repo, cluster):
    dockerfile = project.root / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + 'RUN ["/busybox", "false"]\n')
    project.commit("broken build")
    result = project.invoke("deploy")
    assert result.code == 6
    (error,) = result.errors
    assert project.head in error and "build failed" in error
    assert "Traceback" not in result.stderr
    assert registry.tags(unique_repo) == []
    assert cluster.pipeline_versions() == {}
