"""YAML spec templates (issue 15): `*.yaml.j2` renders to the same validated spec as JSON and deploys
like it; a YAML error names the file and the line. Real Docker Engine, registry, pachd double."""
from __future__ import annotations

import json

import pytest

from project_helpers import make_project

YAML_TEMPLATE = """\
# the same pipeline as a JSON template would give
pipeline:
  name: stats
description: counts
transform:
  image: "{{ image }}"
  cmd: [/busybox, "true"]
  env:
    DEBUG: "0"
input:
  pfs:
    repo: edges
    glob: /*
parallelism_spec:
  constant: 2
"""


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
                           settings='specs = ["templates/*.json.j2", "templates/*.yaml.j2"]\ntag = "inputs"\n')
    project.write(".dockerignore", "templates\nbuild\n")  # a spec-only commit keeps the image
    project.write("templates/stats.yaml.j2", YAML_TEMPLATE)
    project.commit("a YAML spec")
    return project


def test_a_yaml_spec_renders_and_deploys_like_the_json_one(project, client):
    rendered = project.invoke("render-spec")
    assert rendered.code == 0, rendered.stderr
    spec = json.loads((project.root / "build/pipelines/stats.json").read_text())
    assert spec["transform"]["cmd"] == ["/busybox", "true"] and spec["parallelism_spec"] == {"constant": 2}

    deployed = project.invoke("deploy")
    assert deployed.code == 0, deployed.stderr
    assert "stats: created (version 1)" in deployed.stdout
    info = next(client.inspect_pipeline("stats", details=True))
    assert info.details.input.pfs.repo == "edges" and info.details.parallelism_spec.constant == 2

    # The same spec written as JSON is the same pipeline: nothing to update.
    as_json = {k: v for k, v in spec.items() if k != "metadata"}
    as_json["transform"]["image"] = "{{ image }}"
    (project.root / "templates/stats.yaml.j2").unlink()
    project.write("templates/stats.json.j2", json.dumps(as_json, indent=2))
    project.commit("stats as JSON")
    plan = project.invoke("deploy", "--dry-run", "--json")
    assert plan.code == 0, plan.stderr
    assert {p["name"]: p["action"] for p in plan.json["pipelines"]} == {"edges": "unchanged", "stats": "unchanged"}


def test_a_yaml_syntax_error_names_file_and_line(project, cluster):
    project.write("templates/stats.yaml.j2", YAML_TEMPLATE.replace("  cmd: [/busybox", "   cmd: [/busybox"))
    project.commit("bad indentation")
    result = project.invoke("deploy")
    assert result.code == 3
    assert result.errors == [
        "error: templates/stats.yaml.j2: rendered output is not valid YAML at line 7, column 4: "
        "while parsing a block mapping expected <block end>, but found '<block mapping start>' (near 'cmd: [/busybox, \"true\"]')"
    ]
    assert cluster.pipeline_versions() == {}


def test_a_yaml_schema_violation_names_the_json_path(project):
    project.write("templates/stats.yaml.j2", YAML_TEMPLATE.replace("constant: 2", "constant: two"))
    project.commit("wrong type")
    result = project.invoke("render-spec", "--check")
    assert result.code == 3
    assert result.errors[0].startswith("error: templates/stats.yaml.j2: $.parallelism_spec.constant")
