"""Owners that cannot collide (issue 25): repositories without a remote are named by their root
commit, and a pipeline deployed before owners existed is no sub-project's to prune or roll back.
End to end through `invoke` on a real Docker Engine + registry + the pachd double."""
from __future__ import annotations

import pytest
from google.protobuf import json_format
from python_pachyderm.proto.v2.pps import pps_pb2

from fixtures_services import write_busybox_context
from project_helpers import Project, make_project
from test_ownership import OWNER, make_pipeline
from test_ownership import annotations as annotations_of

COMMIT = "invoke-pachyderm.io/commit"
REPOSITORY = "invoke-pachyderm.io/repository"
REMOTE = "https://git.example.com/org/mono.git"


def local_project(base, services, registry, cluster, image, pipelines, settings=""):
    """A project without a remote in `<base>/project`: two of them share the folder name."""
    base.mkdir()
    return make_project(base, services, f"grpc://{cluster.address}", f"{registry.host}/{image}",
                        settings=settings, pipelines=pipelines)


def root_of(project: Project) -> str:
    return project.git("rev-list", "--max-parents=0", "HEAD")


def refused(result, *words):
    assert result.code == 10, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.errors) == 1, result.stderr
    for word in words:
        assert word in result.errors[0], result.errors[0]


def test_unrelated_repositories_in_folders_of_one_name_own_apart(tmp_path, services, registry, cluster, client,
                                                                 unique_repo):
    ours = local_project(tmp_path / "a", services, registry, cluster, unique_repo, (("alpha", "images"),))
    theirs = local_project(tmp_path / "b", services, registry, cluster, unique_repo, (("beta", "images"),))
    assert ours.root.name == theirs.root.name == "project" and root_of(ours) != root_of(theirs)

    assert ours.invoke("deploy").code == 0
    assert annotations_of(client, "alpha")[OWNER] == f"local/{root_of(ours)}"
    result = theirs.invoke("deploy", "--prune")
    assert result.code == 0, result.stderr
    assert "alpha" not in result.stdout + result.stderr
    assert annotations_of(client, "beta")[OWNER] == f"local/{root_of(theirs)}"
    assert theirs.invoke("prune").stdout.strip() == "nothing to prune"
    assert cluster.pipeline_versions() == {"alpha": 1, "beta": 1}

    theirs.pipeline("alpha", "images", description="theirs")  # the same name, from the other repository
    theirs.commit("alpha too")
    refused(theirs.invoke("deploy"), f"is owned by local/{root_of(ours)}", "--adopt")
    assert cluster.pipeline_versions() == {"alpha": 1, "beta": 1}
    assert annotations_of(client, "alpha")[OWNER] == f"local/{root_of(ours)}"


def test_merging_an_unrelated_history_keeps_the_owner(tmp_path, services, registry, cluster, client, unique_repo):
    project = local_project(tmp_path / "a", services, registry, cluster, unique_repo, (("alpha", "images"),))
    first = root_of(project)
    assert project.invoke("deploy").code == 0
    project.git("checkout", "-q", "--orphan", "other")
    project.git("rm", "-rq", "--cached", ".")
    project.write("other.txt", "another history\n")
    project.git("add", "other.txt")
    project.git("-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "other root")
    project.git("checkout", "-qf", "main")
    project.git("-c", "user.name=T", "-c", "user.email=t@example.com", "merge", "-q", "--allow-unrelated-histories",
                "-m", "merge", "other")
    assert len(project.git("rev-list", "--max-parents=0", "HEAD").split()) == 2

    result = project.invoke("deploy", "--prune")
    assert result.code == 0, result.stderr
    assert annotations_of(client, "alpha")[OWNER] == f"local/{first}"
    assert set(cluster.pipeline_versions()) == {"alpha"}


def test_a_shallow_clone_without_a_remote_has_no_owner(tmp_path, services, registry, cluster, client, unique_repo):
    project = local_project(tmp_path / "a", services, registry, cluster, unique_repo, (("alpha", "images"),))
    project.commit("second")
    clone = tmp_path / "shallow"
    project.git("clone", "-q", "--depth", "1", f"file://{project.root}", str(clone))
    shallow = Project(clone, project.env)
    shallow.git("remote", "remove", "origin")
    for args in (("deploy",), ("prune",), ("status",)):
        result = shallow.invoke(*args)
        assert result.code == 2, result.stderr
        assert "Traceback" not in result.stderr
        assert len(result.errors) == 1 and "shallow clone" in result.errors[0] and "`owner`" in result.errors[0]
    assert cluster.pipeline_versions() == {}
    assert registry.tags(unique_repo) == []


@pytest.mark.parametrize("fix", ["owner setting", "--adopt"])
def test_a_pipeline_of_the_former_folder_owner_is_refused_with_the_fix(tmp_path, services, registry, cluster, client,
                                                                       unique_repo, fix):
    project = local_project(tmp_path / "a", services, registry, cluster, unique_repo, (("edges", "images"),))
    before = {COMMIT: project.head, OWNER: "local/project"}  # what an earlier release stamped
    make_pipeline(client, "edges", annotations=before)
    make_pipeline(client, "dropped", annotations=before)
    make_pipeline(client, "stranger", annotations={**before, COMMIT: "0" * 40})  # a namesake folder's

    refused(project.invoke("deploy", "--prune"), "is owned by local/project", 'owner = "local/project"', "--adopt",
            f"local/{root_of(project)}")
    assert registry.tags(unique_repo) == []
    assert project.invoke("prune").stdout.strip() == "nothing to prune"
    status = project.invoke("status")
    assert status.code == 0, status.stderr
    lines = status.stdout.splitlines()
    assert sorted(line.split(":")[0] for line in lines) == ["dropped", "edges"]  # not the stranger
    assert all(line.endswith("[not ours: owned by local/project]") for line in lines)
    assert cluster.pipeline_versions() == {"edges": 1, "dropped": 1, "stranger": 1}

    if fix == "owner setting":
        pyproject = project.root / "pyproject.toml"
        pyproject.write_text(pyproject.read_text() + 'owner = "local/project"\n')
        project.commit("keep the old owner")
        result = project.invoke("deploy")
        assert result.code == 0, result.stderr
        assert annotations_of(client, "edges")[OWNER] == "local/project"
    else:
        result = project.invoke("deploy", "--prune", "--adopt")
        assert result.code == 0, result.stderr
        assert annotations_of(client, "edges")[OWNER] == f"local/{root_of(project)}"
    assert "edges: updated (version 2)" in result.stdout
    assert cluster.pipeline_versions() == {"edges": 2, "dropped": 1, "stranger": 1}  # nothing else taken


# -- a monorepo: one remote, several sub-projects ------------------------------------------
def sub_project(mono: Project, path: str, image: str, pipeline: str) -> Project:
    root = mono.root / path
    write_busybox_context(root)
    sub = Project(root, mono.env)
    sub.write("tasks.py", "from invoke_pachyderm import ns  # noqa: F401\n")
    sub.write("pyproject.toml", f'[tool.invoke-pachyderm]\nimage = "{image}"\ntest_command = "true"\n')
    sub.pipeline(pipeline, "images")
    return sub


@pytest.fixture
def mono(tmp_path, services, registry, cluster, unique_repo):
    mono = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    mono.git("remote", "add", "origin", REMOTE)
    a = sub_project(mono, "a", f"{registry.host}/{unique_repo}-a", "alpha")
    b = sub_project(mono, "b", f"{registry.host}/{unique_repo}-b", "beta")
    mono.commit("two sub-projects")
    return mono, a, b


def test_a_legacy_pipeline_is_no_sub_projects_to_prune_or_roll_back(mono, client, cluster):
    _, a, b = mono
    legacy = {COMMIT: a.head, REPOSITORY: REMOTE, "invoke-pachyderm.io/branch": "main"}
    make_pipeline(client, "oldie", annotations=legacy)
    make_pipeline(client, "oldie", annotations=legacy, description="v2")

    for sub in (a, b):
        result = sub.invoke("deploy", "--prune")
        assert result.code == 0, result.stderr
        assert "oldie" not in result.stdout + result.stderr
        assert sub.invoke("prune").stdout.strip() == "nothing to prune"
    assert cluster.pipeline_versions() == {"oldie": 2, "alpha": 1, "beta": 1}

    rollback = b.invoke("rollback")
    assert rollback.code == 8 and "Traceback" not in rollback.stderr  # beta has no version to go back to
    assert len(rollback.errors) == 1 and "nothing changed" in rollback.errors[0]
    assert cluster.pipeline_versions() == {"oldie": 2, "alpha": 1, "beta": 1}

    status = b.invoke("status", "--json")
    assert status.code == 0, status.stderr
    rows = {row["pipeline"]: row for row in status.json["pipelines"]}
    assert set(rows) == {"beta", "oldie"}
    assert rows["oldie"]["legacy"] and not rows["oldie"]["owned"] and rows["beta"]["owned"]
    lines = {line.split(":")[0]: line for line in b.invoke("status").stdout.splitlines()}
    assert "[legacy: no owner annotation" in lines["oldie"] and "[" not in lines["beta"]

    # the sub-project whose templates render it takes it over, and from then on it is that one's alone
    a.pipeline("oldie", "images")
    a.commit("alpha renders oldie")
    result = a.invoke("deploy")
    assert result.code == 0, result.stderr
    assert "oldie: updated (version 3)" in result.stdout
    assert annotations_of(client, "oldie")[OWNER] == "git.example.com/org/mono//a"
    assert b.invoke("prune").stdout.strip() == "nothing to prune"
    (a.root / "templates/oldie.json.j2").unlink()
    a.commit("drop oldie")
    result = a.invoke("prune")
    assert result.code == 0, result.stderr
    assert "oldie: deleted (was version 3)" in result.stdout
    assert cluster.pipeline_versions() == {"alpha": 1, "beta": 1}


def test_teardown_leaves_a_legacy_pipeline_in_the_preview(mono, client, cluster):
    _, _, b = mono
    assert b.invoke("deploy", "--preview", "3").code == 0
    spec = {
        "pipeline": {"name": "oldie", "project": {"name": "pr-3"}},
        "transform": {"image": "busybox:1", "cmd": ["true"]},
        "input": {"pfs": {"repo": "images", "project": "default", "glob": "/*"}},
        "metadata": {"annotations": {COMMIT: b.head, REPOSITORY: REMOTE}},
    }
    client.create_pipeline_from_request(json_format.ParseDict(spec, pps_pb2.CreatePipelineRequest()))
    result = b.invoke("teardown", "--preview", "3")
    assert result.code == 10, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.errors) == 1 and "pipeline oldie" in result.errors[0], result.stderr
    assert cluster.pipeline_versions("pr-3") == {"oldie": 1}
