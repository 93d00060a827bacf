"""`deploy --rollback-on-failure` (issue 13): a deploy whose pipelines do not reach RUNNING puts
the replaced versions back in one transaction, as Helm's --atomic does. End to end: real Docker
Engine and registry, the pachd double (a pipeline whose image is not in the registry CRASHes)."""
from __future__ import annotations

import pytest

from project_helpers import make_project

ANNOTATION = "invoke-pachyderm.io/"


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    """Two pipelines, deployed once (version 1 of each, both running). Images are tagged by their
    inputs, so a commit that changes one spec leaves the other pipeline unchanged."""
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='tag = "inputs"\n', pipelines=(("edges", "images"), ("montage", "edges")),
    )
    project.write(".dockerignore", "templates\nbuild\n")
    project.commit("specs are not part of the image")
    result = project.invoke("deploy", "--wait", "--timeout", "20")
    assert result.code == 0, result.stderr
    return project


def inspect(client, name):
    return next(client.inspect_pipeline(name, details=True))


def break_edges(project) -> str:
    """Point edges at an image nobody pushed: the double then reports it CRASHING."""
    path = project.root / "templates/edges.json.j2"
    path.write_text(path.read_text().replace("{{ image }}", "{{ image_repository }}:never-pushed"))
    return project.commit("edges points at an image nobody pushed")


def only_error(result) -> str:
    assert "Traceback" not in result.stderr
    assert len(result.errors) == 1, result.stderr
    return result.errors[0]


def test_a_crashing_deploy_is_rolled_back_in_one_transaction(project, client, cluster):
    first = project.head
    good_image = inspect(client, "edges").details.transform.image
    break_edges(project)
    before = cluster.calls.count("BatchTransaction")

    result = project.invoke("deploy", "--rollback-on-failure", "--timeout", "20")

    assert result.code == 9
    line = only_error(result)
    assert "pipeline edges (version 2) is CRASHING" in line and "never-pushed" in line
    assert "rolled back in one transaction: edges to version 1 (now version 3)" in line
    info = inspect(client, "edges")
    assert info.version == 3
    assert info.details.transform.image == good_image
    assert dict(info.details.metadata.annotations)[ANNOTATION + "commit"] == first
    assert inspect(client, "montage").version == 1  # unchanged by the deploy, untouched by the rollback
    assert cluster.calls.count("BatchTransaction") - before == 2  # the deploy, then the rollback


def test_without_the_flag_the_broken_version_stays(project, client):
    break_edges(project)
    result = project.invoke("deploy", "--wait", "--timeout", "20")
    assert result.code == 9
    assert "rolled back" not in only_error(result)
    assert inspect(client, "edges").version == 2


def test_a_deploy_that_does_not_run_in_time_is_rolled_back(project, client, cluster):
    project.write("code.txt", "v2\n")
    project.commit("v2")
    cluster.start_delay = 60  # STARTING for a minute: longer than the timeout
    result = project.invoke("deploy", "--rollback-on-failure", "--timeout", "1")
    assert result.code == 9
    line = only_error(result)
    assert "timed out after 1s waiting for pipelines to run: edges STARTING" in line
    assert "rolled back in one transaction: edges to version 1 (now version 3)" in line
    assert inspect(client, "edges").version == 3


def test_a_created_pipeline_has_nothing_to_roll_back_to_and_is_named(project, client):
    project.write(
        "templates/thumbs.json.j2",
        '{"pipeline": {"name": "thumbs"}, "transform": {"image": "{{ image_repository }}:never-pushed", '
        '"cmd": ["/busybox", "true"]}, "input": {"pfs": {"repo": "images", "glob": "/*"}}}\n',
    )
    project.write("code.txt", "v2\n")
    project.commit("a new pipeline that crashes, and new code for the others")
    result = project.invoke("deploy", "--rollback-on-failure", "--timeout", "20")
    assert result.code == 9
    line = only_error(result)
    assert "pipeline thumbs (version 1) is CRASHING" in line
    assert "edges to version 1 (now version 3)" in line and "montage to version 1 (now version 3)" in line
    assert "created by this deploy, so left in place: thumbs" in line
    assert inspect(client, "edges").version == 3 and inspect(client, "montage").version == 3
