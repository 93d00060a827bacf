"""GitLab CI (issue 15): `invoke-pachyderm init --ci gitlab` writes a .gitlab-ci.yml whose jobs'
commands pass when run as a GitLab runner would: detached checkout, GitLab's predefined variables,
the job's script lines in order under `sh -e`. Real Docker Engine, registry and pachd double."""
from __future__ import annotations

import re
import subprocess

import python_pachyderm
import pytest
import yaml

from scaffold_helpers import base_image, home, project_env  # noqa: F401  (fixtures)
from scaffold_helpers import git, invoke, json_stdout, scaffold_project

JOB_URL = "https://gitlab.example.com/team/word-count/-/jobs/4242"
SECRET = "glpat-not-for-logs-8b1f"


@pytest.fixture
def project(tmp_path, project_env, base_image, registry, unique_repo, pachd):
    directory = tmp_path / "word-count"
    scaffold_project(directory, project_env, f"{registry.host}/{unique_repo}", base_image, "word-count", "words",
                     "--ci", "gitlab")
    pachd.registry_url = registry.url
    pachd.create_repo("words")
    return directory


def gitlab_ci(directory):
    return yaml.safe_load((directory / ".gitlab-ci.yml").read_text())


def run_job(directory, env, job: str, predefined: dict[str, str]):
    """The job as a runner runs it: global then job variables over GitLab's, script lines under sh -e.
    The default before_script only pip installs what this test's virtualenv already has."""
    config = gitlab_ci(directory)
    before = config["default"]["before_script"]
    assert all(line.startswith("python -m pip install") for line in before)
    variables = {name: value["value"] if isinstance(value, dict) else value
                 for name, value in config.get("variables", {}).items()}
    variables.update(config[job].get("variables", {}))
    full_env = {**env, "CI": "true", "GITLAB_CI": "true", **variables, **predefined}
    return subprocess.run(["sh", "-e", "-c", "\n".join(config[job]["script"])], cwd=directory, env=full_env,
                          capture_output=True, text=True, timeout=600)


def test_init_writes_the_gitlab_file_instead_of_the_github_workflow(project):
    assert (project / ".gitlab-ci.yml").is_file()
    assert not (project / ".github").exists()
    config = gitlab_ci(project)
    assert config["stages"] == ["check", "deploy"]
    assert [rule["if"] for rule in config["check"]["rules"]] == ['$CI_PIPELINE_SOURCE == "merge_request_event"']
    assert config["check"]["script"][1:3] == ["invoke test", "invoke render-spec --check"]
    assert "invoke deploy --dry-run > build/plan.txt" in config["check"]["script"]
    assert config["check"]["artifacts"]["paths"] == ["build/plan.txt", "build/plan.mmd"]
    assert config["deploy"]["rules"] == [{"if": '$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH && $CI_PIPELINE_SOURCE == "push"'}]
    assert config["deploy"]["script"] == ["invoke deploy"]
    assert config["deploy-manual"]["rules"][0]["when"] == "manual"
    assert config[".deploy"]["resource_group"]
    # Secrets come only from GitLab's own (masked, protected) variables; the file never maps them.
    mapped = set(config["variables"]) | {name for job in config.values() if isinstance(job, dict)
                                         for name in job.get("variables", {}) or {}}
    assert not mapped & {"INVOKE_PACHYDERM_TOKEN", "INVOKE_PACHYDERM_REGISTRY_PASSWORD"}


def test_merge_request_job_plans_the_source_branch_head(project, project_env, registry, unique_repo, pachd):
    git(project, project_env, "checkout", "-q", "-b", "feature")
    git(project, project_env, "commit", "-q", "--allow-empty", "-m", "feature work")
    head = git(project, project_env, "rev-parse", "HEAD").stdout.strip()
    # A merged-results pipeline: GitLab checks out a merge commit of feature into main, detached.
    git(project, project_env, "checkout", "-q", "--detach", "main")
    git(project, project_env, "merge", "-q", "--no-ff", "-m", "merge result", "feature")
    merge = git(project, project_env, "rev-parse", "HEAD").stdout.strip()
    predefined = {
        "CI_PIPELINE_SOURCE": "merge_request_event", "CI_COMMIT_SHA": merge, "CI_COMMIT_REF_NAME": "feature",
        "CI_MERGE_REQUEST_IID": "7", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature",
        "CI_MERGE_REQUEST_SOURCE_BRANCH_SHA": head, "CI_MERGE_REQUEST_TARGET_BRANCH_NAME": "main",
        "CI_JOB_URL": JOB_URL, "CI_DEFAULT_BRANCH": "main",
    }
    result = run_job(project, project_env, "check", predefined)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "tests passed" in result.stdout
    assert (project / "build/plan.txt").read_text().startswith("word-count: create\n")
    assert re.search(r'\["word-count<br/>create"\]:::create', (project / "build/plan.mmd").read_text())
    assert registry.tags(unique_repo) == [] and pachd.pipeline_versions() == {}  # a plan changes nothing

    described = json_stdout(invoke(project, {**project_env, "GITLAB_CI": "true", **predefined}, "render-spec", "--json"))
    assert (described["commit"], described["branch"]) == (head, "feature")


def test_default_branch_deploy_records_branch_and_job_url_and_hides_the_token(project, project_env, pachd):
    sha = git(project, project_env, "rev-parse", "HEAD").stdout.strip()
    git(project, project_env, "checkout", "-q", "--detach")  # what git then calls the branch: HEAD
    predefined = {
        "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_SHA": sha, "CI_COMMIT_REF_NAME": "main",
        "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main", "CI_JOB_URL": JOB_URL,
        "INVOKE_PACHYDERM_TOKEN": SECRET,  # a masked CI/CD variable; the double has no auth
    }
    result = run_job(project, project_env, "deploy", predefined)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "word-count: created" in result.stdout
    assert "word-count: running" in result.stderr  # CI=true: deploy waits by default
    assert SECRET not in result.stdout + result.stderr

    client = python_pachyderm.Client(host="127.0.0.1", port=pachd.port)
    (info,) = list(client.inspect_pipeline("word-count", details=True))
    annotations = dict(info.details.metadata.annotations)
    assert annotations["invoke-pachyderm.io/branch"] == "main"
    assert annotations["invoke-pachyderm.io/commit"] == sha
    assert annotations["invoke-pachyderm.io/ci-run"] == JOB_URL

    manual = run_job(project, project_env, "deploy-manual", {**predefined, "PACHYDERM_DRY_RUN": "true"})
    assert manual.returncode == 0, manual.stdout + manual.stderr
    plan, timings = manual.stdout.strip().splitlines()
    assert plan == "word-count: unchanged" and timings.startswith("tag ")  # then the stage timings
