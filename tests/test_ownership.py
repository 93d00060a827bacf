"""Own what you deploy (issue 11): the owner annotation, foreign pipelines, prune.
End to end through `invoke` on a real Docker Engine + registry + the pachd double."""
from __future__ import annotations

import pytest
from google.protobuf import json_format
from python_pachyderm.proto.v2.pps import pps_pb2

from project_helpers import make_project

OWNER = "invoke-pachyderm.io/owner"
CHAIN = (("first", "images"), ("second", "first"), ("third", "second"))


def make_pipeline(client, name, input_repo="images", annotations=None, description=""):
    """A pipeline made by someone else (another team's tool, or by hand): created or updated."""
    spec = {
        "pipeline": {"name": name},
        "description": description,
        "transform": {"image": "busybox:1", "cmd": ["true"]},
        "input": {"pfs": {"repo": input_repo, "glob": "/*"}},
    }
    if annotations:
        spec["metadata"] = {"annotations": annotations}
    request = json_format.ParseDict(spec, pps_pb2.CreatePipelineRequest())
    request.update = name in {p.pipeline.name for p in client.list_pipeline()}
    client.create_pipeline_from_request(request)


def annotations(client, name):
    return dict(next(client.inspect_pipeline(name, details=True)).details.metadata.annotations)


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    return make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='owner = "team-edges"\n',
    )


@pytest.fixture
def chain(tmp_path, services, registry, cluster, unique_repo):
    """Images tagged by their inputs, so a commit that only drops templates changes no image."""
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='owner = "team-chain"\ntag = "inputs"\n', pipelines=CHAIN + (("keep", "images"),),
    )
    project.write(".dockerignore", "templates\nbuild\n")
    project.commit("dockerignore")
    return project


def describe(project, name, text):
    path = project.root / f"templates/{name}.json.j2"
    path.write_text(path.read_text().replace('"description": ""', f'"description": "{text}"'))
    project.commit(f"describe {name}")


def test_deployed_pipelines_carry_the_owner(project, client):
    assert project.invoke("deploy").code == 0
    assert annotations(client, "edges")[OWNER] == "team-edges"


def test_default_owner_is_the_git_remote_and_directory(project):
    project.git("remote", "add", "origin", "https://user:secret@git.example.com/org/edges.git")
    project.write("pyproject.toml", (project.root / "pyproject.toml").read_text().replace('owner = "team-edges"\n', ""))
    project.commit("no owner setting")
    result = project.invoke("deploy", "--dry-run", "--json")
    assert result.code == 0, result.stderr
    (change,) = result.json["pipelines"]
    assert f'"{OWNER}": "git.example.com/org/edges"' in change["diff"]
    assert "secret" not in result.stdout


def test_foreign_pipelines_are_untouched_by_deploy_status_rollback_and_prune(project, client, cluster):
    make_pipeline(client, "theirs", annotations={OWNER: "github.com/other/team"})
    make_pipeline(client, "theirs", annotations={OWNER: "github.com/other/team"}, description="v2")
    make_pipeline(client, "handmade")
    assert project.invoke("deploy").code == 0
    describe(project, "edges", "second version")
    assert project.invoke("deploy", "--prune").code == 0
    assert cluster.pipeline_versions() == {"theirs": 2, "handmade": 1, "edges": 2}

    status = project.invoke("status", "--json")
    assert status.code == 0, status.stderr
    assert [row["pipeline"] for row in status.json["pipelines"]] == ["edges"]
    every = project.invoke("status", "--all")
    assert every.code == 0, every.stderr
    lines = {line.split(":")[0]: line for line in every.stdout.splitlines()}
    assert set(lines) == {"edges", "theirs", "handmade"}
    assert "[not ours: owned by github.com/other/team]" in lines["theirs"]
    assert "[not ours: made by hand]" in lines["handmade"]
    assert "not ours" not in lines["edges"]

    rollback = project.invoke("rollback", "--json")
    assert rollback.code == 0, rollback.stderr
    assert [row["pipeline"] for row in rollback.json["restored"]] == ["edges"]
    assert project.invoke("prune").code == 0
    assert cluster.pipeline_versions() == {"theirs": 2, "handmade": 1, "edges": 3}
    assert annotations(client, "theirs") == {OWNER: "github.com/other/team"}


@pytest.mark.parametrize(
    "owner, expected",
    [({OWNER: "github.com/other/team"}, "is owned by github.com/other/team"), (None, "created by hand")],
)
def test_a_name_that_is_not_ours_is_refused_unless_adopted(project, client, cluster, registry, unique_repo,
                                                           owner, expected):
    make_pipeline(client, "edges", annotations=owner)
    result = project.invoke("deploy")
    assert result.code == 10
    assert len(result.errors) == 1 and expected in result.errors[0] and "--adopt" in result.errors[0]
    assert "Traceback" not in result.stderr
    assert registry.tags(unique_repo) == []  # refused before building
    assert cluster.pipeline_versions() == {"edges": 1}

    result = project.invoke("deploy", "--adopt")
    assert result.code == 0, result.stderr
    assert "edges: updated (version 2)" in result.stdout
    assert annotations(client, "edges")[OWNER] == "team-edges"
    assert project.invoke("deploy").code == 0  # ours now


def test_pipelines_deployed_before_owners_existed_stay_ours(project, client, cluster):
    """Earlier releases wrote provenance but no owner: the repository annotation decides."""
    remote = "https://git.example.com/org/edges.git"
    project.git("remote", "add", "origin", remote)
    legacy = {"invoke-pachyderm.io/commit": project.head, "invoke-pachyderm.io/repository": remote}
    make_pipeline(client, "edges", annotations=legacy)
    make_pipeline(client, "elsewhere", annotations={**legacy, "invoke-pachyderm.io/repository": "https://x.org/a.git"})
    result = project.invoke("deploy", "--prune")
    assert result.code == 0, result.stderr
    assert "edges: updated (version 2)" in result.stdout
    assert annotations(client, "edges")[OWNER] == "team-edges"
    assert cluster.pipeline_versions() == {"edges": 2, "elsewhere": 1}  # another repository's: not pruned


def test_prune_deletes_exactly_the_owned_orphans_downstream_first(chain, client, cluster):
    make_pipeline(client, "theirs", annotations={OWNER: "github.com/other/team"})
    assert chain.invoke("deploy").code == 0
    (chain.root / "templates/second.json.j2").unlink()
    (chain.root / "templates/third.json.j2").unlink()
    chain.commit("drop second and third")

    plan = chain.invoke("deploy", "--prune", "--dry-run")
    assert plan.code == 0, plan.stderr
    actions = [line for line in plan.stdout.splitlines() if line.endswith((": delete", ": unchanged", ": update"))]
    assert actions == ["first: unchanged", "keep: unchanged", "third: delete", "second: delete"]
    assert '-  "description": ""' not in plan.stdout and "--- deployed/third" in plan.stdout
    assert cluster.pipeline_versions() == {"first": 1, "second": 1, "third": 1, "keep": 1, "theirs": 1}

    result = chain.invoke("deploy", "--prune", "--json")
    assert result.code == 0, result.stderr
    deleted = [p["name"] for p in result.json["pipelines"] if p["action"] == "delete"]
    assert deleted == ["third", "second"]
    assert result.stderr.index("third: deleted") < result.stderr.index("second: deleted")
    assert cluster.pipeline_versions() == {"first": 1, "keep": 1, "theirs": 1}
    repos = {info.repo.name for info in client.list_repo()}
    assert {"second", "third"}.isdisjoint(repos) and "first" in repos
    assert chain.invoke("prune").stdout.strip() == "nothing to prune"


def test_prune_on_its_own_with_keep_repo(chain, client, cluster):
    assert chain.invoke("deploy").code == 0
    (chain.root / "templates/keep.json.j2").unlink()
    chain.commit("drop keep")
    dry = chain.invoke("prune", "--dry-run")
    assert dry.code == 0 and "keep: delete" in dry.stdout
    assert "keep" in cluster.pipeline_versions()
    result = chain.invoke("prune", "--keep-repo")
    assert result.code == 0, result.stderr
    assert "keep: deleted (was version 1)" in result.stdout
    assert "keep" not in cluster.pipeline_versions()
    assert "keep" in {info.repo.name for info in client.list_repo()}


def test_prune_refuses_while_a_remaining_pipeline_reads_the_orphan(chain, client, cluster):
    assert chain.invoke("deploy").code == 0
    (chain.root / "templates/third.json.j2").unlink()
    chain.commit("drop third")
    make_pipeline(client, "downstream", input_repo="third", annotations={OWNER: "github.com/other/team"})
    for args in (("prune",), ("deploy", "--prune")):
        result = chain.invoke(*args)
        assert result.code == 10, result.stderr
        assert len(result.errors) == 1
        assert "cannot prune pipeline third: pipeline downstream still reads its output repo" in result.errors[0]
    assert cluster.pipeline_versions() == {"first": 1, "second": 1, "third": 1, "keep": 1, "downstream": 1}

    (chain.root / "templates/first.json.j2").unlink()  # second, which stays, reads first
    chain.commit("drop first")
    result = chain.invoke("prune")
    assert result.code == 10 and "pipeline second still reads" in result.stderr
