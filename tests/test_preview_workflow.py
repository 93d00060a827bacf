"""Previews in CI (issue 11): the scaffolded workflow's `preview` and `teardown` jobs, and the action's
`project-tasks: false`, run step by step as the runner would (test_github_action's harness)."""
from __future__ import annotations

import re

import python_pachyderm
import yaml

from scaffold_helpers import CLI, base_image, clean_env, commit_all, git, home  # noqa: F401  (fixtures)
from scaffold_helpers import run as run_cli
from test_github_action import (  # noqa: F401  (fixtures)
    PACHD_TOKEN,
    WORKFLOW_TEMPLATES,
    action_path,
    github_env,
    pull_request,
    run_action,
    runner_python,
    write_event,
)

SCAFFOLDED = WORKFLOW_TEMPLATES[0]
PR_CODE = """
import os, pathlib
pathlib.Path(os.environ["RAN_MARKER"]).write_text("{what} ran; token: " + os.environ.get("INVOKE_PACHYDERM_TOKEN", "none"))
"""


def test_the_preview_jobs_are_opt_in_same_repository_only_with_preview_secrets():
    workflow = yaml.safe_load(SCAFFOLDED.read_text())
    triggers = workflow.get("on", workflow.get(True))
    assert "closed" in triggers["pull_request"]["types"]
    jobs = workflow["jobs"]
    for name in ("test", "plan"):
        assert "github.event.action != 'closed'" in jobs[name]["if"]
    preview, teardown = jobs["preview"], jobs["teardown"]
    for job in (preview, teardown):
        assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]
        assert "vars.PREVIEW_PACHD_ADDRESS != ''" in job["if"]
        assert job["environment"] == "preview"
        assert job["concurrency"]["group"] == "pachyderm-preview-${{ github.event.pull_request.number }}"
        action = job["steps"][1]["with"]
        assert action["project-tasks"] is False and "extra-packages" not in action
        assert action["pachd-address"] == "${{ vars.PREVIEW_PACHD_ADDRESS }}"
    assert "github.event.action != 'closed'" in preview["if"] and preview["needs"] == "test"
    assert "github.event.action == 'closed'" in teardown["if"]
    assert set(re.findall(r"secrets\.\w+", yaml.safe_dump(preview))) == {
        "secrets.PREVIEW_PACHD_TOKEN", "secrets.PREVIEW_REGISTRY_PASSWORD"}
    assert set(re.findall(r"secrets\.\w+", yaml.safe_dump(teardown))) == {"secrets.PREVIEW_PACHD_TOKEN"}
    tasks = [line for line in preview["steps"][1]["with"]["tasks"].splitlines() if line.strip()]
    number = "${{ github.event.pull_request.number }}"
    assert tasks == [f"deploy --preview {number} --skip-tests", f"status --preview {number}"]
    assert teardown["steps"][1]["with"]["tasks"] == f"teardown --preview {number}"
    assert teardown["steps"][0]["with"]["ref"] == "${{ github.event.pull_request.base.ref }}"


def test_preview_and_teardown_through_the_action_never_run_the_pull_requests_python(
    tmp_path, home, base_image, registry, unique_repo, pachd, services, runner_python, action_path,
):
    workspace = tmp_path / "workspace"
    project = workspace / "word-count"
    project.mkdir(parents=True)
    local = clean_env(home, DOCKER_HOST=services.docker_host)
    run_cli([CLI, "init", project, "--name", "word-count", "--image", f"{registry.host}/{unique_repo}",
             "--input-repo", "words", "--base-image", base_image], tmp_path, local, check=True)
    git(workspace, local, "init", "-q", "-b", "main")
    commit_all(workspace, local, "Scaffold")
    base, _, _ = pull_request(workspace, local)
    # The pull request's Python: its tasks.py, and an invoke.py that `python -m invoke` would import.
    git(workspace, local, "checkout", "-q", "feature/longer-words")
    tasks = project / "tasks.py"
    tasks.write_text(tasks.read_text() + PR_CODE.format(what="tasks.py"))
    (project / "invoke.py").write_text(PR_CODE.format(what="invoke.py"))
    head = commit_all(workspace, local, "Code that wants the token")
    git(workspace, local, "checkout", "-q", "--detach", head)  # the preview job checks out the head
    merge = head
    marker = tmp_path / "pr-code-ran"
    env = github_env(home, runner_python, action_path, workspace, write_event(tmp_path / "event.json", base, head),
                     merge, services)
    env["RAN_MARKER"] = str(marker)
    pachd.tokens = [PACHD_TOKEN]
    pachd.create_repo("words")
    client = python_pachyderm.Client(host="127.0.0.1", port=pachd.port, auth_token=PACHD_TOKEN)
    before = {p.project.name for p in client.list_project()}
    inputs = {
        "project-tasks": "false",
        "pachd-address": f"grpc://127.0.0.1:{pachd.port}",
        "pachd-token": PACHD_TOKEN,
        "working-directory": "word-count",
    }

    run = run_action({**inputs, "tasks": "deploy --preview 7 --skip-tests\nstatus --preview 7"},
                     workspace, env, tmp_path / "runner")
    assert run.returncode == 0, run.log
    assert not marker.exists(), marker.read_text()
    assert "invoke-pachyderm action: python -I -m invoke_pachyderm.adapters.program deploy --preview 7" in run.log
    assert pachd.pipeline_versions("pr-7") == {"word-count": 1}
    assert pachd.pipeline_spec("word-count", project="pr-7")["input"]["pfs"]["project"] == "default"
    assert "| `word-count` | created | 1 |" in run.summary  # the plan, as deployed
    assert "### invoke-pachyderm status: project `pr-7`" in run.summary
    assert re.search(r"\| `word-count` \| 1 \| (STARTING|RUNNING|CRASHING)", run.summary)
    assert PACHD_TOKEN not in run.summary

    down = run_action({**inputs, "tasks": "teardown --preview 7"}, workspace, env, tmp_path / "runner-2")
    assert down.returncode == 0, down.log
    assert "project pr-7 deleted" in down.log
    assert {p.project.name for p in client.list_project()} == before
    assert not marker.exists()

    refused = run_action({**inputs, "tasks": "status", "extra-packages": "-r requirements.txt"},
                         workspace, env, tmp_path / "runner-3")
    assert refused.returncode == 2 and "extra-packages installs the project's own packages" in refused.log
    no_address = run_action({**inputs, "pachd-address": "", "tasks": "status"}, workspace, env, tmp_path / "runner-4")
    assert no_address.returncode == 2 and "a pachd-token needs pachd-address" in no_address.log
