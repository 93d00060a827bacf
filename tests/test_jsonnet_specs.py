"""Jsonnet spec templates (issue 15): `*.jsonnet` evaluates like `pachctl create pipeline --jsonnet --arg`
(`vars` as top-level arguments, image/commit/... as external variables) to the same validated spec
as JSON, and deploys like it; errors name the file and the line; imports stay inside the project.
End to end through `invoke` against a real Docker Engine, registry and the pachd double."""
from __future__ import annotations

import json
import sys

import pytest

from invoke_pachyderm.core.errors import ConfigError, TemplateError
from invoke_pachyderm.stages.spec_formats import evaluate_jsonnet
from project_helpers import make_project

LIBRARY = """\
{
  // the parts every pipeline of the project shares
  pipeline(name, input, glob, parallelism):: {
    pipeline: { name: name },
    description: 'made by Jsonnet',
    transform: { image: std.extVar('image'), cmd: ['/busybox', 'true'], env: { DEBUG: '0' } },
    input: { pfs: { repo: input, glob: glob } },
    parallelism_spec: { constant: parallelism },
  },
}
"""

STATS = """\
local lib = import 'lib/pipelines.libsonnet';

function(glob, parallelism)
  assert std.extVar('images').main.ref == std.extVar('image');
  [
    lib.pipeline('stats', 'edges', glob, parallelism),
    lib.pipeline('counts', 'stats', glob, 1),
  ]
"""


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    settings = (
        'specs = ["templates/*.json.j2", "templates/*.jsonnet"]\ntag = "inputs"\n'
        'vars = { glob = "/*", parallelism = 2, unused = "a Jinja template\'s" }\n'
    )
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
                           settings=settings)
    project.write(".dockerignore", "templates\nbuild\n")  # a spec-only commit keeps the image
    project.write("templates/lib/pipelines.libsonnet", LIBRARY)
    project.write("templates/stats.jsonnet", STATS)
    project.commit("Jsonnet specs")
    return project


def test_a_jsonnet_spec_renders_and_deploys_like_the_json_one(project, client):
    rendered = project.invoke("render-spec")
    assert rendered.code == 0, rendered.stderr
    stats = json.loads((project.root / "build/pipelines/stats.json").read_text())
    assert stats["parallelism_spec"] == {"constant": 2}  # a number var arrives as a number (tla_codes)
    assert stats["input"]["pfs"]["glob"] == "/*"  # a string var as a string (tla_vars, pachctl's --arg)

    deployed = project.invoke("deploy")
    assert deployed.code == 0, deployed.stderr
    assert "stats: created (version 1)" in deployed.stdout
    assert "counts: created (version 1)" in deployed.stdout
    info = next(client.inspect_pipeline("stats", details=True))
    assert info.details.input.pfs.repo == "edges" and info.details.parallelism_spec.constant == 2
    assert info.details.transform.image == stats["transform"]["image"]

    # The same specs written as one JSON template are the same pipelines: nothing to update.
    as_json = []
    for name in ("stats", "counts"):
        spec = json.loads((project.root / f"build/pipelines/{name}.json").read_text())
        spec.pop("metadata")
        spec["transform"]["image"] = "{{ image }}"
        as_json.append(spec)
    (project.root / "templates/stats.jsonnet").unlink()
    project.write("templates/stats.json.j2", json.dumps(as_json, indent=2))
    project.commit("stats and counts as JSON")
    plan = project.invoke("deploy", "--dry-run", "--json")
    assert plan.code == 0, plan.stderr
    assert {p["name"]: p["action"] for p in plan.json["pipelines"]} == {
        "edges": "unchanged", "stats": "unchanged", "counts": "unchanged",
    }


def test_a_jsonnet_syntax_error_names_file_and_line(project, cluster):
    project.write("templates/stats.jsonnet", STATS.replace("lib.pipeline('stats', 'edges', glob, parallelism),",
                                                           "lib.pipeline('stats', 'edges', glob, parallelism)"))
    project.commit("a missing comma")
    result = project.invoke("deploy")
    assert result.code == 3, result.stderr
    assert result.errors == [
        "error: templates/stats.jsonnet:7: Jsonnet syntax error: expected a comma before next array element"
    ]
    assert "Traceback" not in result.stderr
    assert cluster.pipeline_versions() == {}


def test_a_runtime_error_in_an_imported_file_names_both_files(project):
    project.write("templates/lib/pipelines.libsonnet", LIBRARY.replace("{ constant: parallelism }",
                                                                       "{ constant: parallelism + error 'no' }"))
    project.commit("an error in the library")
    result = project.invoke("render-spec", "--check")
    assert result.code == 3
    assert result.errors == ["error: templates/stats.jsonnet: templates/lib/pipelines.libsonnet:8: Jsonnet error: no"]


def test_a_schema_violation_names_the_json_path(project):
    project.write("templates/stats.jsonnet", STATS.replace("glob, 1)", "glob, 'one')"))
    project.commit("wrong type")
    result = project.invoke("render-spec", "--check")
    assert result.code == 3
    assert result.errors[0].startswith("error: templates/stats.jsonnet: $[1].parallelism_spec.constant") or \
        result.errors[0].startswith("error: templates/stats.jsonnet: $.parallelism_spec.constant"), result.errors


def test_imports_outside_the_project_are_refused(project, tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("hunter2-the-host-key\n")
    (project.root / "templates/lib/link.txt").symlink_to(secret)
    for line, shown in (
        ("importstr '../../../host-secret.txt'", "outside the project"),
        ("importstr 'lib/link.txt'", f"resolves to {secret}, outside the project"),
        (f"importstr '{secret}'", "is an absolute path"),
    ):
        project.write("templates/stats.jsonnet", STATS.replace("[\n", f"local leak = {line};\n[\n  leak,\n"))
        project.commit("an import leaving the project")
        result = project.invoke("render-spec", "--check")
        assert result.code == 3, result.stderr
        assert len(result.errors) == 1 and shown in result.errors[0], result.errors
        assert result.errors[0].startswith("error: templates/stats.jsonnet:5: Jsonnet error: couldn't open import")
        assert "hunter2" not in result.stdout + result.stderr


# -- the evaluation itself (no services needed) ---------------------------------------------------
def test_vars_pass_as_top_level_arguments_and_builtins_as_external_variables(tmp_path):
    (tmp_path / "t.jsonnet").write_text("function(n, flag, table, word) [n + 1, !flag, table.k, word, std.extVar('commit')]")
    arguments = {"n": 41, "flag": False, "table": {"k": [1]}, "word": "w", "not_declared": "skipped"}
    assert evaluate_jsonnet(tmp_path, "t.jsonnet", {"commit": "abc"}, arguments) == [42, True, [1], "w", "abc"]


def test_a_file_that_is_no_function_ignores_vars(tmp_path):
    (tmp_path / "t.jsonnet").write_text("{ a: std.extVar('image') }")
    assert evaluate_jsonnet(tmp_path, "t.jsonnet", {"image": "r:t"}, {"glob": "/*"}) == {"a": "r:t"}


def test_a_parameter_no_var_fills_names_the_function_line(tmp_path):
    (tmp_path / "t.jsonnet").write_text("local x = 1;\nfunction(glob, n)\n  { a: glob }\n")
    with pytest.raises(TemplateError) as raised:
        evaluate_jsonnet(tmp_path, "t.jsonnet", {}, {"glob": "/*"})
    assert raised.value.message == (
        "t.jsonnet:2: Jsonnet error: function parameter n not bound in call (its parameters are filled from `vars`)"
    )


def test_an_undefined_external_variable_lists_the_known_ones(tmp_path):
    (tmp_path / "t.jsonnet").write_text("{\n  a: std.extVar('glob'),\n}\n")
    with pytest.raises(TemplateError) as raised:
        evaluate_jsonnet(tmp_path, "t.jsonnet", {"image": "r:t", "commit": "c"}, {"glob": "/*"})
    assert raised.value.message.startswith(
        "t.jsonnet:2: Jsonnet error: undefined external variable: glob; external variables: commit, image; "
        "`vars` are top-level arguments"
    )


def test_without_the_jsonnet_package_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    (tmp_path / "t.jsonnet").write_text("{}")
    monkeypatch.setitem(sys.modules, "_jsonnet", None)  # as if the extra were not installed
    with pytest.raises(ConfigError) as raised:
        evaluate_jsonnet(tmp_path, "t.jsonnet", {}, {})
    assert raised.value.exit_code == 2
    assert raised.value.message == (
        "t.jsonnet: Jsonnet templates need the `jsonnet` package, which is not installed; "
        "pip install 'invoke-pachyderm[jsonnet]'"
    )
