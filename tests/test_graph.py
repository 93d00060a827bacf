"""The plan as a picture (issue 15): `invoke graph` and the Mermaid graph in the GitHub job summary.
Real Docker Engine + registry + pachd double, `invoke` as a subprocess."""
from __future__ import annotations

import re

import pytest
from python_pachyderm.proto.v2.pps import pps_pb2

from project_helpers import make_project

CHAIN = (("first", "images"), ("second", "first"), ("third", "second"))
REMOTE = "https://git.example.com/team/chain.git"


@pytest.fixture
def chain(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='tag = "inputs"\n', pipelines=CHAIN,
    )
    project.git("remote", "add", "origin", REMOTE)
    project.write(".dockerignore", "templates\nbuild\n")
    project.commit("dockerignore")
    return project


def describe(project, text, name):
    path = project.root / f"templates/{name}.json.j2"
    path.write_text(path.read_text().replace('"description": ""', f'"description": "{text}"'))
    project.commit(f"describe {name}")


def mermaid_nodes(text: str) -> dict[str, tuple[str, str]]:
    """Mermaid node id -> (name, action class) of every pipeline node."""
    return {
        match["id"]: (match["name"], match["action"])
        for match in re.finditer(r'^  (?P<id>p\d+)\["(?P<name>[^<]+)<br/>[^"]*"\]:::(?P<action>\w+)$', text, re.M)
    }


def mermaid_edges(text: str, nodes: dict[str, tuple[str, str]]) -> set[tuple[str, str]]:
    repos = {m[1]: m[2] for m in re.finditer(r'^  (r\d+)\[\("([^"]+)"\)\]$', text, re.M)}
    names = {**repos, **{node_id: name for node_id, (name, _) in nodes.items()}}
    return {(names[a], names[b]) for a, b in re.findall(r"^  (\w+) -\.?-> (\w+)$", text, re.M)}


def test_graph_marks_the_one_changed_pipeline_of_three(chain, cluster):
    assert chain.invoke("deploy").code == 0
    describe(chain, "now documented", "second")

    result = chain.invoke("graph")
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("flowchart LR\n")
    nodes = mermaid_nodes(result.stdout)
    assert sorted(nodes.values()) == [("first", "unchanged"), ("second", "update"), ("third", "unchanged")]
    assert mermaid_edges(result.stdout, nodes) == {("images", "first"), ("first", "second"), ("second", "third")}
    assert "classDef update" in result.stdout
    assert cluster.pipeline_versions() == {"first": 1, "second": 1, "third": 1}  # drawing changes nothing

    dot = chain.invoke("graph", "--format", "dot")
    assert dot.code == 0, dot.stderr
    assert dot.stdout.startswith("digraph pipelines {")
    assert re.search(r'label="second\\nupdate", class="update"', dot.stdout)
    assert re.search(r'label="first\\nunchanged", class="unchanged"', dot.stdout)
    assert re.search(r"r0 \[shape=cylinder, label=\"images\"\]", dot.stdout)

    as_json = chain.invoke("graph", "--json").json
    assert {p["name"]: p["action"] for p in as_json["pipelines"]} == {
        "first": "unchanged", "second": "update", "third": "unchanged"
    }
    assert as_json["repos"] == ["images"]
    assert as_json["mermaid"] == result.stdout


def test_graph_shows_created_and_deleted_pipelines(chain, cluster):
    chain.pipeline("extra", "first")
    chain.commit("extra")
    assert chain.invoke("deploy").code == 0
    (chain.root / "templates/extra.json.j2").unlink()
    chain.pipeline("fourth", "third")
    chain.commit("extra out, fourth in")

    result = chain.invoke("graph", "--json")
    assert result.code == 0, result.stderr
    actions = {p["name"]: p["action"] for p in result.json["pipelines"]}
    assert actions == {"first": "unchanged", "second": "unchanged", "third": "unchanged",
                       "fourth": "create", "extra": "delete"}
    assert {"from": "first", "to": "extra"} in result.json["edges"]
    nodes = mermaid_nodes(result.json["mermaid"])
    extra = next(node_id for node_id, (name, _) in nodes.items() if name == "extra")
    assert re.search(rf"^  p0 -\.-> {extra}$", result.json["mermaid"], re.M)  # dashed: not deployed by us any more


def test_graph_claims_no_pipeline_it_does_not_own_as_deleted(chain, cluster, client):
    """Only pipelines with our owner annotation (ownership.py) can be "deleted from templates"."""
    assert chain.invoke("deploy").code == 0
    client.create_pipeline(
        "handmade", transform=pps_pb2.Transform(image="busybox", cmd=["true"]),
        input=pps_pb2.Input(pfs=pps_pb2.PFSInput(repo="images", glob="/*")),
    )
    result = chain.invoke("graph", "--json")
    assert result.code == 0, result.stderr
    assert "handmade" not in {p["name"] for p in result.json["pipelines"]}
    assert not [p for p in result.json["pipelines"] if p["action"] == "delete"]


def test_pull_request_summary_embeds_the_graph_above_the_diff(chain, tmp_path):
    assert chain.invoke("deploy").code == 0
    describe(chain, "reviewed in a PR", "third")
    summary = tmp_path / "summary.md"

    result = chain.invoke("deploy", "--dry-run", env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert result.code == 0, result.stderr
    text = summary.read_text()
    block = re.search(r"```mermaid\n(.*?)```", text, re.S)
    assert block, text
    assert sorted(mermaid_nodes(block[1]).values()) == [
        ("first", "unchanged"), ("second", "unchanged"), ("third", "update")
    ]
    assert text.index("```mermaid") < text.index("<details><summary><code>third</code>")


def test_graph_refuses_an_unknown_format_and_reports_template_errors(chain):
    result = chain.invoke("graph", "--format", "png")
    assert result.code == 64  # a usage error (errors.UsageError)
    assert result.errors == ["error: graph --format: 'png' is not one of mermaid, dot"]

    chain.write("templates/first.json.j2", '{"pipeline": {"name": "first"}, "transform": {"image": "{{ imag }}"}}')
    chain.commit("typo")
    result = chain.invoke("graph")
    assert result.code == 3
    assert result.errors[0].startswith("error: templates/first.json.j2:1: 'imag' is undefined")
    assert result.stdout == ""
