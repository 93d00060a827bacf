"""One scope per deploy (issue 25): every pipeline a command writes is in the deploy's project, a
preview never writes into a pr-N it did not create, and teardown deletes only its own preview's
pipelines. End to end through `invoke` on a real Docker Engine + registry + the pachd double."""
from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from python_pachyderm.proto.v2.pps import pps_pb2

from invoke_pachyderm.stages.preview import marker
from project_helpers import make_project

OWNER = "invoke-pachyderm.io/owner"
PREVIEW = "invoke-pachyderm.io/preview"
FIX = (
    "remove pipeline.project from the template: the project comes from the `project` setting, --env or "
    "--preview (inputs may still read other projects); nothing was deployed"
)


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='owner = "team-edges"\n[tool.invoke-pachyderm.environments.staging]\nproject = "staging"\n',
        pipelines=(("first", "images"), ("second", "first")),
    )
    project.write("tests/data/images/a.txt", "a sample for `invoke smoke`\n")
    project.commit("smoke sample")
    return project


def snapshot(client):
    """Everything a user could see: projects (with descriptions), repos of every type, pipelines and versions."""
    projects = {(p.project.name, p.description) for p in client.list_project()}
    repos = {(r.repo.project.name, r.repo.name, r.repo.type) for r in client.list_repo(type="")}
    pipelines = {(p.pipeline.project.name, p.pipeline.name, p.version) for p in client.list_pipeline()}
    return projects, repos, pipelines


def make_pipeline(client, name, project, owner="github.com/other/team", input_repo="images", input_project="default",
                  update=False):
    """A pipeline made by another team's deploy (or by ours, without a preview annotation)."""
    spec = {
        "pipeline": {"name": name, "project": {"name": project}},
        "transform": {"image": "busybox:1", "cmd": ["true"]},
        "input": {"pfs": {"repo": input_repo, "project": input_project, "glob": "/*"}},
        "metadata": {"annotations": {OWNER: owner}},
    }
    request = json_format.ParseDict(spec, pps_pb2.CreatePipelineRequest())
    request.update = update
    client.create_pipeline_from_request(request)


def naming(project, name, pipeline_project, input_repo="images", input_project=None):
    """A template whose spec names its own pipeline's project."""
    pfs = {"repo": input_repo, "glob": "/*", **({"project": input_project} if input_project else {})}
    spec = {
        "pipeline": {"name": name, "project": {"name": pipeline_project}},
        "transform": {"image": "{{ image }}", "cmd": ["/busybox", "true"]},
        "input": {"pfs": pfs},
    }
    project.write(f"templates/{name}.json.j2", json.dumps(spec, indent=2))
    project.commit(f"{name} names project {pipeline_project}")


def refused(result, code, line):
    assert result.code == code, result.stderr
    assert result.errors == [f"error: {line}"], result.stderr
    assert "Traceback" not in result.stderr


# -- 1. a spec's own pipeline.project ---------------------------------------------------------
def test_a_spec_naming_another_project_is_refused_by_every_command_and_the_other_team_keeps_its_pipeline(
    project, cluster, client, registry, unique_repo
):
    client.create_project("theirs", description="another team")
    make_pipeline(client, "second", "theirs")
    make_pipeline(client, "second", "theirs", update=True)  # version 2: an overwrite would make it 3
    naming(project, "second", "theirs", input_repo="first")
    before = snapshot(client)
    line = (
        "templates/second.json.j2: $.pipeline.project.name: pipeline 'second' names project 'theirs', but this "
        f"deploy writes only to project 'default' (from no `project` setting); {FIX}"
    )
    for args in (
        ("deploy",), ("deploy", "--dry-run"), ("deploy", "--adopt", "--force"), ("deploy", "--prune"),
        ("render-spec",), ("render-spec", "--check"), ("prune",), ("prune", "--dry-run"), ("graph",), ("smoke",),
    ):
        refused(project.invoke(*args), 3, line)
    assert snapshot(client) == before
    assert cluster.pipeline_versions("theirs") == {"second": 2} and cluster.pipeline_versions() == {}
    assert registry.tags(unique_repo) == []
    assert not (project.root / "build/pipelines").exists()  # render-spec wrote nothing


def test_a_spec_naming_the_deploys_own_project_is_accepted_and_inputs_may_read_other_projects(project, cluster, client):
    client.create_project("theirs", description="another team")
    cluster.create_repo("raw", project="theirs")
    naming(project, "first", "default", input_repo="raw", input_project="theirs")
    result = project.invoke("deploy")
    assert result.code == 0, result.stderr
    assert cluster.pipeline_versions() == {"first": 1, "second": 1}
    assert cluster.pipeline_versions("theirs") == {}
    assert cluster.pipeline_spec("first")["input"]["pfs"]["project"] == "theirs"


def test_under_a_preview_or_an_environment_a_spec_naming_another_project_is_refused(project, client):
    naming(project, "first", "default")
    before = snapshot(client)
    production = (
        "templates/first.json.j2: $.pipeline.project.name: pipeline 'first' names project 'default' (the base "
        "project: a preview never writes there), but this deploy writes only to project 'pr-7' (from task flag: "
        f"preview of pull request 7 (base project 'default')); {FIX}"
    )
    refused(project.invoke("deploy", "--preview", "7"), 3, production)
    refused(project.invoke("deploy", "--preview", "7", "--dry-run"), 3, production)
    refused(project.invoke("render-spec", "--preview", "7", "--check"), 3, production)
    staging = (
        "templates/first.json.j2: $.pipeline.project.name: pipeline 'first' names project 'default', but this "
        "deploy writes only to project 'staging' (from pyproject.toml [tool.invoke-pachyderm]: "
        f"environments.staging); {FIX}"
    )
    refused(project.invoke("render-spec", "--env", "staging", "--check"), 3, staging)
    assert snapshot(client) == before

    naming(project, "first", "pr-7")  # the preview's own project: accepted
    assert project.invoke("render-spec", "--preview", "7", "--check").code == 0


YAML_TWO_SPECS = """\
- pipeline: {name: fine}
  transform: {image: "{{ image }}", cmd: [/busybox, "true"]}
  input: {pfs: {repo: images, glob: /*}}
- pipeline: {name: elsewhere, project: {name: theirs}}
  transform: {image: "{{ image }}", cmd: [/busybox, "true"]}
  input: {pfs: {repo: images, glob: /*}}
"""
JSONNET_SPEC = """\
{
  pipeline: { name: 'elsewhere', project: { name: std.extVar('project') + '-prod' } },
  transform: { image: std.extVar('image'), cmd: ['/busybox', 'true'] },
  input: { pfs: { repo: 'images', glob: '/*' } },
}
"""


@pytest.mark.parametrize(
    "path, text, named", [("other/two.yaml.j2", YAML_TWO_SPECS, "theirs"), ("other/one.jsonnet", JSONNET_SPEC, "default-prod")]
)
def test_yaml_and_jsonnet_specs_naming_another_project_are_refused(project, client, path, text, named):
    project.write(path, text)
    project.commit("another format")
    before = snapshot(client)
    line = (
        f"{path}: $.pipeline.project.name: pipeline 'elsewhere' names project '{named}', but this deploy writes only "
        f"to project 'default' (from no `project` setting); {FIX}"
    )
    for args in (("render-spec", "--check"), ("deploy", "--dry-run")):
        refused(project.invoke(*args, env={"INVOKE_PACHYDERM_SPECS": path}), 3, line)
    assert snapshot(client) == before


# -- 2, 3. a pr-N that is not our preview -----------------------------------------------------------
def test_a_production_project_called_pr_7_is_neither_deployed_to_nor_torn_down(project, cluster, client, registry,
                                                                                unique_repo):
    client.create_project("pr-7", description="production of the data team")
    cluster.create_repo("images", project="pr-7")
    # our own production deploy there, and another team's pipeline next to it
    assert project.invoke("deploy", env={"INVOKE_PACHYDERM_PROJECT": "pr-7"}).code == 0
    make_pipeline(client, "reports", "pr-7", input_repo="images", input_project="pr-7")
    before, tags = snapshot(client), registry.tags(unique_repo)
    why = (
        "invoke-pachyderm did not create it for team-edges and pull request 7 "
        "(its description is 'production of the data team')"
    )
    deploy = (
        f"project pr-7 exists but is not a preview project of ours: {why}; it may be a production or another "
        "team's project, and a preview writes only into the project it created; nothing was pushed or changed; "
        "run previews on another cluster or environment (--env), or rename that project"
    )
    teardown = (
        f"project pr-7 kept and nothing deleted in it: {why}; teardown deletes only in a preview project it "
        "created (it may be a production or another team's project); if it is a preview of yours, delete its "
        "pipelines by hand"
    )
    project.pipeline("first", "images", description="a change the preview would deploy")
    project.commit("change first")
    refused(project.invoke("deploy", "--preview", "7"), 10, deploy)
    refused(project.invoke("deploy", "--preview", "7", "--dry-run"), 10, deploy)
    refused(project.invoke("graph", env={"INVOKE_PACHYDERM_PREVIEW": "7"}), 10, deploy)
    refused(project.invoke("teardown", "--preview", "7"), 10, teardown)
    refused(project.invoke("teardown", "--preview", "7", "--dry-run"), 10, teardown)
    refused(project.invoke("prune", env={"INVOKE_PACHYDERM_PREVIEW": "7"}), 10, deploy)
    refused(project.invoke("rollback", env={"INVOKE_PACHYDERM_PREVIEW": "7"}), 10, deploy)
    assert snapshot(client) == before
    assert cluster.pipeline_versions("pr-7") == {"first": 1, "second": 1, "reports": 1}
    assert client.inspect_project("pr-7").description == "production of the data team"
    assert registry.tags(unique_repo) == tags  # the new commit's image was not pushed


def test_a_preview_project_marked_for_another_owner_is_refused(project, client, registry, unique_repo, docker_client):
    client.create_project("pr-5", description=marker("github.com/other/team", 5))
    make_pipeline(client, "first", "pr-5")
    before = snapshot(client)
    result = project.invoke("deploy", "--preview", "5", "--adopt")
    assert result.code == 10, result.stderr
    assert len(result.errors) == 1 and "Traceback" not in result.stderr
    assert result.errors[0].startswith(
        "error: project pr-5 exists but is not a preview project of ours: invoke-pachyderm did not create it for "
        "team-edges and pull request 5 (its description is 'Preview of pull request 5 for github.com/other/team"
    )
    assert docker_client.images.list(name=f"{registry.host}/{unique_repo}") == []  # nothing was built
    down = project.invoke("teardown", "--preview", "5")
    assert down.code == 10 and len(down.errors) == 1 and "kept and nothing deleted" in down.errors[0]
    assert snapshot(client) == before
    assert registry.tags(unique_repo) == []


def test_teardown_deletes_only_the_pipelines_its_preview_deployed(project, cluster, client):
    assert project.invoke("deploy", "--preview", "4").code == 0
    for name in ("first", "second"):
        annotations = next(client.inspect_pipeline(name, details=True, project_name="pr-4")).details.metadata.annotations
        assert annotations[PREVIEW] == "4"
    # ours by owner, but not made by this preview's deploy (no preview annotation)
    make_pipeline(client, "legacy", "pr-4", owner="team-edges")

    plan = project.invoke("teardown", "--preview", "4", "--dry-run")
    assert plan.code == 0, plan.stderr
    assert plan.stdout.splitlines() == [
        "second: would delete (version 1)", "first: would delete (version 1)",
        "dry run, nothing deleted; project pr-4 would be kept: pipeline legacy in it is ours but was not deployed "
        "by this preview (no invoke-pachyderm.io/preview: '4' annotation)",
    ]
    result = project.invoke("teardown", "--preview", "4")
    refused(
        result, 10,
        "project pr-4 kept: pipeline legacy in it is ours but was not deployed by this preview (no "
        "invoke-pachyderm.io/preview: '4' annotation); deleted our pipelines (second, first); delete or move that "
        "pipeline, then rerun teardown",
    )
    assert "second: deleted" in result.stderr and "first: deleted" in result.stderr
    assert cluster.pipeline_versions("pr-4") == {"legacy": 1}
    assert client.inspect_project("pr-4").description == marker("team-edges", 4)


# -- 4. the preview number ------------------------------------------------------------------------
HUGE = "9" * 56


@pytest.mark.parametrize(
    "value, why",
    [
        (HUGE, "is not a pull request number (at most 9 digits)"),
        ("1000000000", "is not a pull request number (at most 9 digits)"),
        ("+7", "is not a pull request number; e.g. --preview 42"),
        ("1_0", "is not a pull request number; e.g. --preview 42"),
        ("٣", "is not a pull request number; e.g. --preview 42"),
    ],
    ids=["56-digits", "10-digits", "plus", "underscore", "arabic-indic"],
)
def test_a_preview_number_out_of_bounds_is_refused_before_anything_runs(project, client, registry, unique_repo,
                                                                       docker_client, value, why):
    before = snapshot(client)
    for args in (("deploy",), ("deploy", "--dry-run"), ("teardown",), ("render-spec", "--check")):
        refused(project.invoke(*args, "--preview", value), 64, f"{args[0]} --preview: {value!r} {why}")
        refused(
            project.invoke(*args, env={"INVOKE_PACHYDERM_PREVIEW": value}), 64,
            f"environment: INVOKE_PACHYDERM_PREVIEW: {value!r} {why}",
        )
    assert snapshot(client) == before
    assert registry.tags(unique_repo) == []
    assert docker_client.images.list(name=f"{registry.host}/{unique_repo}") == []  # nothing was built


def test_the_largest_preview_number_deploys_and_tears_down(project, cluster, client):
    before = snapshot(client)
    plan = project.invoke("deploy", "--preview", "999999999", "--dry-run")
    assert plan.code == 0, plan.stderr
    assert f'"{PREVIEW}": "999999999"' in plan.stdout and snapshot(client) == before
    result = project.invoke("deploy", "--preview", "999999999")
    assert result.code == 0, result.stderr
    assert cluster.pipeline_versions("pr-999999999") == {"first": 1, "second": 1}
    down = project.invoke("teardown", "--preview", "999999999")
    assert down.code == 0, down.stderr
    assert "project pr-999999999 deleted" in down.stdout
    assert snapshot(client) == before
