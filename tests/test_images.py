"""`invoke build` and `invoke push` on the real Docker Engine and registry."""
from __future__ import annotations

import re
import time
from datetime import datetime, timezone

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


LABEL_STEP = re.compile(r"Step \d+/\d+ : LABEL ")
OCI = "org.opencontainers.image."


def test_labels_are_one_build_step_and_a_rebuild_of_the_commit_is_the_same_image(project, docker_client, registry, unique_repo):
    project.git("remote", "add", "origin", "https://git.example.com/team/edges.git")
    dockerfile = project.root / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "COPY . /app\n")
    project.commit("copy the context")
    assert project.invoke("render-spec").code == 0  # out_dir now has files
    result = project.invoke("build")
    assert result.code == 0, result.stderr
    assert len(LABEL_STEP.findall(result.stderr)) == 1
    ref = f"{registry.host}/{unique_repo}:{project.head}"
    image = docker_client.images.get(ref)
    commit_time = int(project.git("log", "-1", "--format=%ct"))
    assert image.labels == {
        OCI + "revision": project.head,
        OCI + "version": project.head,
        OCI + "ref.name": ref,
        OCI + "source": "https://git.example.com/team/edges.git",
        OCI + "created": datetime.fromtimestamp(commit_time, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    # Sent and copied: the context, but not .git, out_dir, spec templates or our Dockerfile.
    copied = docker_client.containers.run(ref, ["find", "/app"], remove=True).decode().split()
    assert "/app/busybox" in copied and "/app/pyproject.toml" in copied and "/app/Dockerfile" in copied
    assert not [p for p in copied if p.startswith(("/app/.git/", "/app/build/", "/app/templates/", "/app/.docker"))]

    time.sleep(1.1)  # a label taken from the clock would now differ
    again = project.invoke("build")
    assert again.code == 0, again.stderr
    # The daemon's build cache reuses every step, the LABEL included: the same image.
    assert docker_client.images.get(ref).id == image.id


def test_with_a_target_the_labels_land_in_the_target_stage(project, docker_client, registry, unique_repo):
    project.write("Dockerfile", "FROM scratch AS base\nCOPY busybox /busybox\n"
                  "FROM base AS app\nENTRYPOINT [\"/busybox\"]\n"
                  "FROM base AS after\nRUN [\"/busybox\", \"false\"]\n")
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + 'target = "app"\n')
    project.commit("multi-stage")
    result = project.invoke("build")
    assert result.code == 0, result.stderr  # the failing stage after the target was not built
    assert len(LABEL_STEP.findall(result.stderr)) == 1
    labels = docker_client.images.get(f"{registry.host}/{unique_repo}:{project.head}").labels
    assert labels[OCI + "revision"] == project.head
