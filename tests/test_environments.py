"""Environments (issue 11): `--env NAME` / INVOKE_PACHYDERM_ENV switch cluster, project, registry
and vars; a pach context's project is honoured. End to end through `invoke`: real Docker Engine,
two registries, two pachd doubles."""
from __future__ import annotations

import json

import python_pachyderm
import pytest

from invoke_pachyderm.testing.pachd_double import PachdDouble
from project_helpers import make_project


@pytest.fixture
def staging():
    with PachdDouble() as double:
        python_pachyderm.Client(host=double.host, port=double.port).create_project("staging")
        double.create_repo("raw", project="staging")
        yield double


@pytest.fixture
def project(tmp_path, services, registry, auth_registry, cluster, staging, unique_repo):
    settings = (
        'vars = {input = "images"}\n'
        "[tool.invoke-pachyderm.environments.staging]\n"
        'pach_context = "staging-cluster"\n'
        f'image = "{auth_registry.host}/{unique_repo}"\n'
        f'registry_username = "{auth_registry.username}"\n'
        'vars = {input = "raw"}\n'
    )
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}", settings)
    project.pipeline("edges", "{{ input }}")
    project.commit("input from vars")
    config = tmp_path / "pach.json"
    contexts = {"staging-cluster": {"pachd_address": f"grpc://{staging.address}", "project": "staging"}}
    config.write_text(json.dumps({"v2": {"active_context": "other", "contexts": {"other": {}, **contexts}}}))
    project.env = {**project.env, "PACH_CONFIG": str(config),
                   "INVOKE_PACHYDERM_REGISTRY_PASSWORD": auth_registry.password}
    return project


def test_env_switches_cluster_project_registry_and_vars(project, cluster, staging, registry, auth_registry, unique_repo):
    base = project.invoke("deploy")
    assert base.code == 0, base.stderr
    assert cluster.pipeline_versions() == {"edges": 1}
    assert cluster.pipeline_spec("edges")["input"]["pfs"]["repo"] == "images"

    result = project.invoke("deploy", "--env", "staging")
    assert result.code == 0, result.stderr
    assert staging.pipeline_versions("staging") == {"edges": 1}
    spec = staging.pipeline_spec("edges", project="staging")
    assert spec["input"]["pfs"]["repo"] == "raw"
    repository, tag = spec["transform"]["image"].rsplit(":", 1)
    assert repository == f"{auth_registry.host}/{unique_repo}"
    # the tag is the commit that last changed the image's inputs (issue 12), a commit git can open
    assert project.git("cat-file", "-t", tag) == "commit"
    assert tag in auth_registry.tags(unique_repo)
    assert auth_registry.password not in result.stdout + result.stderr
    assert cluster.pipeline_versions() == {"edges": 1}  # the base cluster is untouched
    assert staging.pipeline_versions() == {}  # nothing in the staging cluster's default project

    status = project.invoke("status", "--json", env={"INVOKE_PACHYDERM_ENV": "staging"})
    assert status.code == 0, status.stderr
    assert [(r["pipeline"], r["version"]) for r in status.json["pipelines"]] == [("edges", 1)]
    assert project.invoke("render-spec", "--env", "staging").code == 0
    assert json.loads((project.root / "build/pipelines/edges.json").read_text())["input"]["pfs"]["repo"] == "raw"


def test_an_unknown_environment_lists_the_known_ones(project, cluster):
    for args, env in ((("deploy", "--env", "prod"), None), (("status",), {"INVOKE_PACHYDERM_ENV": "prod"})):
        result = project.invoke(*args, env=env)
        assert result.code == 2
        assert len(result.errors) == 1
        assert "unknown environment 'prod'; known environments: staging" in result.errors[0]
    assert cluster.pipeline_versions() == {}


def test_a_typo_in_any_environment_is_reported(project):
    text = (project.root / "pyproject.toml").read_text() + "[tool.invoke-pachyderm.environments.prod]\nprojcet = \"x\"\n"
    project.write("pyproject.toml", text)
    project.commit("typo")
    result = project.invoke("render-spec", "--env", "staging")
    assert result.code == 2
    assert "environments.prod: unknown key 'projcet' (did you mean 'project'?)" in result.stderr


# -- layering, without services ------------------------------------------------------------
def settings_in(tmp_path, pyproject: str, environ=None, flags=None):
    from invoke_pachyderm.core.config import load_settings

    (tmp_path / "pyproject.toml").write_text(pyproject)
    return load_settings(tmp_path, {}, flags, environ or {"HOME": str(tmp_path)})


LAYERED = """
[tool.invoke-pachyderm]
project = "base"
timeout = 60
vars = {a = "1", b = "2"}
[tool.invoke-pachyderm.environments.prod]
project = "prod"
vars = {b = "prod"}
"""


def test_an_environment_layers_over_the_base_and_under_variables_and_flags(tmp_path):
    plain = settings_in(tmp_path, LAYERED)
    assert (plain.project, plain.vars) == ("base", {"a": "1", "b": "2"})
    prod = settings_in(tmp_path, LAYERED, flags={"env": "prod"})
    assert (prod.project, prod.timeout, prod.vars) == ("prod", 60, {"a": "1", "b": "prod"})
    assert "environments.prod" in prod.sources["project"]
    explicit = settings_in(tmp_path, LAYERED, {"HOME": str(tmp_path), "INVOKE_PACHYDERM_ENV": "prod",
                                               "INVOKE_PACHYDERM_PROJECT": "mine"})
    assert (explicit.project, explicit.vars["b"]) == ("mine", "prod")


def test_the_pach_context_project_is_used_when_none_is_set(tmp_path):
    config = tmp_path / "pach.json"
    config.write_text(json.dumps({"v2": {"active_context": "c", "contexts": {"c": {"project": "from-context"}}}}))
    environ = {"HOME": str(tmp_path), "PACH_CONFIG": str(config)}
    assert settings_in(tmp_path, "[tool.invoke-pachyderm]\n", environ).project == "from-context"
    assert settings_in(tmp_path, LAYERED, environ).project == "base"
