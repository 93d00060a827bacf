"""Deletes are planned, shown and bounded (issue 25): an empty rendering deletes nothing unless
--allow-empty says so; with --wait the prune comes only after the health check passed, so a failed
(or rolled-back) deploy has deleted nothing; a plain rollback after an automatic one never brings
back the version that was rolled back for failing. End to end through `invoke` on a real Docker
Engine and registry and the pachd double (both versions), read back through python-pachyderm."""
from __future__ import annotations

import pytest

from project_helpers import make_project

PIPELINES = (("first", "images"), ("second", "first"), ("keep", "images"))


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    """Three pipelines deployed and running; images tagged by their inputs (templates are not)."""
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='owner = "team-safe"\ntag = "inputs"\nspecs = ["templates/*.json.j2", "templates/*.yaml", '
        '"templates/*.jsonnet"]\n',
        pipelines=PIPELINES,
    )
    project.write(".dockerignore", "templates\nbuild\n")
    project.commit("templates are not part of the image")
    result = project.invoke("deploy", "--wait", "--timeout", "20")
    assert result.code == 0, result.stderr
    return project


def pipelines(client) -> dict[str, int]:
    return {info.pipeline.name: info.version for info in client.list_pipeline()}


def repos(client) -> set[str]:
    return {info.repo.name for info in client.list_repo()}


def only_error(result) -> str:
    assert "Traceback" not in result.stderr
    assert len(result.errors) == 1, result.stderr
    return result.errors[0]


def remove_templates(project) -> None:
    for path in (project.root / "templates").iterdir():
        path.unlink()


EMPTY = {
    "templates/none.json.j2": "[]\n",
    "templates/none.yaml": "[]\n",
    "templates/none.jsonnet": "[]\n",
    "templates/none.json.j2 (a loop over an emptied list)": None,
}


@pytest.mark.parametrize("template", list(EMPTY))
def test_templates_that_render_no_pipeline_delete_nothing(project, client, template):
    before_pipelines, before_repos = pipelines(client), repos(client)
    remove_templates(project)
    if EMPTY[template] is None:
        project.write("templates/none.json.j2", '[{% for name in names %}{"pipeline": {"name": "{{ name }}"}}'
                      '{% endfor %}]\n')
        text = (project.root / "pyproject.toml").read_text()
        project.write("pyproject.toml", text + "\n[tool.invoke-pachyderm.vars]\nnames = []\n")
    else:
        project.write(template, EMPTY[template])
    project.commit("every template renders an empty list")

    for args in (("deploy", "--prune"), ("deploy", "--prune", "--dry-run"), ("prune",), ("prune", "--dry-run"),
                 ("deploy",)):
        result = project.invoke(*args)
        assert result.code == 10, (args, result.stderr)
        line = only_error(result)
        assert "render no pipeline" in line and "--allow-empty" in line and "nothing was changed" in line, line
        if "--prune" in args or args[0] == "prune":
            assert "first, keep, second" in line or "second, first, keep" in line or "deletes" in line, line
    assert pipelines(client) == before_pipelines
    assert repos(client) == before_repos


def test_allow_empty_deletes_everything_the_plan_printed(project, client):
    remove_templates(project)
    project.write("templates/none.json.j2", "[]\n")
    project.commit("retire every pipeline")

    dry = project.invoke("prune", "--allow-empty", "--dry-run")
    assert dry.code == 0, dry.stderr
    planned = [line.split(":")[0] for line in dry.stdout.splitlines() if line.endswith(": delete")]
    assert sorted(planned) == ["first", "keep", "second"]
    assert planned.index("second") < planned.index("first")  # downstream first

    result = project.invoke("prune", "--allow-empty")
    assert result.code == 0, result.stderr
    shown = result.stderr.index("the plan deletes 3 pipeline(s): " + ", ".join(f"{n} (version 1)" for n in planned))
    assert shown < min(result.stderr.index(f"{name}: deleted") for name in planned)
    assert pipelines(client) == {}
    assert not {"first", "second", "keep"} & repos(client)


def test_a_template_emptied_by_a_variable_is_refused_when_the_prune_would_delete(project, client):
    """One template of several renders nothing: the prune it causes is refused; without --prune it is a no-op."""
    before = pipelines(client)
    project.write("templates/second.json.j2", '[{% for n in seconds %}{"pipeline": {"name": "second"}}{% endfor %}]\n')
    text = (project.root / "pyproject.toml").read_text()
    project.write("pyproject.toml", text + "\n[tool.invoke-pachyderm.vars]\nseconds = []\n")
    project.commit("a variable empties second's loop")

    result = project.invoke("deploy", "--prune")
    assert result.code == 10
    line = only_error(result)
    assert line.startswith("error: templates/second.json.j2: renders no pipeline, and --prune would delete second")
    assert "--allow-empty" in line
    assert pipelines(client) == before

    plain = project.invoke("deploy")
    assert plain.code == 0, plain.stderr  # nothing would be deleted: the other templates still render
    assert set(pipelines(client)) == set(before)  # (pyproject.toml is an image input: the others update)
    assert pipelines(client)["second"] == before["second"]


def break_first(project) -> None:
    """first's image is one nobody pushed (the double reports it CRASHING); keep's template is gone."""
    path = project.root / "templates/first.json.j2"
    path.write_text(path.read_text().replace("{{ image }}", "{{ image_repository }}:never-pushed"))
    (project.root / "templates/keep.json.j2").unlink()
    project.commit("first breaks; keep retires")


@pytest.mark.parametrize("rollback", [True, False], ids=["rollback-on-failure", "wait"])
def test_a_deploy_failing_its_health_check_prunes_nothing(project, client, rollback):
    break_first(project)
    flags = ("--rollback-on-failure",) if rollback else ("--wait",)
    result = project.invoke("deploy", "--prune", *flags, "--timeout", "20")

    assert result.code == 9
    line = only_error(result)
    assert "first" in line and "CRASHING" in line
    assert line.endswith("; not pruned (the deploy did not pass its health check): keep"), line
    assert "keep" in pipelines(client) and "keep" in repos(client)
    assert pipelines(client)["keep"] == 1
    if rollback:
        assert "rolled back in one transaction: first to version 1 (now version 3)" in line


def test_a_healthy_deploy_prunes_after_the_wait(project, client, cluster):
    (project.root / "templates/keep.json.j2").unlink()
    project.commit("keep retires")
    result = project.invoke("deploy", "--prune", "--rollback-on-failure", "--timeout", "20")
    assert result.code == 0, result.stderr
    assert "after the transaction and the health check: keep (version 1)" in result.stderr
    assert result.stderr.index("wait for pipelines to run") < result.stderr.index("keep: deleted")
    assert "keep" not in pipelines(client)


def test_a_plain_rollback_never_restores_the_version_rolled_back_for_failing(project, client):
    project.write("templates/first.json.j2",
                  (project.root / "templates/first.json.j2").read_text().replace('"description": ""',
                                                                                  '"description": "v2"'))
    project.commit("first v2")
    assert project.invoke("deploy", "--wait", "--timeout", "20").code == 0  # first version 2, healthy
    path = project.root / "templates/first.json.j2"
    path.write_text(path.read_text().replace("{{ image }}", "{{ image_repository }}:never-pushed"))
    project.commit("first v3 breaks")
    failed = project.invoke("deploy", "--rollback-on-failure", "--timeout", "20")
    assert failed.code == 9 and "first to version 2 (now version 4)" in only_error(failed)

    result = project.invoke("rollback", "--json")
    assert result.code == 0, result.stderr
    (row,) = [r for r in result.json["restored"] if r["pipeline"] == "first"]
    assert row["restored_version"] == 1  # not 3, which was rolled back for CRASHING
    info = next(client.inspect_pipeline("first", details=True))
    assert info.version == 5
    assert "never-pushed" not in info.details.transform.image
    assert info.details.description == ""
