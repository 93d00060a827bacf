"""The composite action (action.yml), run step by step as the GitHub runner would, against the real services.

What the harness does like the runner: reads action.yml, fills `${{ inputs.x }}` (defaults from
the file), `${{ github.action_path }}` and `${{ steps.<id>.outputs.x }}`; runs each `run:` step as
`bash --noprofile --norc -eo pipefail <script>` in its `working-directory`, with GITHUB_* variables,
a fresh GITHUB_OUTPUT and GITHUB_STEP_SUMMARY file per step, GITHUB_ENV/GITHUB_PATH carried to
later steps, stdout and stderr in one log (the runner reads workflow commands on both).

What it does not: `uses:` steps are skipped. The only one is actions/setup-python; instead, a fresh
virtualenv's python is first on PATH (what setup-python provides), and the action's own install
step really pip-installs invoke-pachyderm into it from the action's checkout. Expressions other
than the ones above fail the test, so action.yml cannot grow one the harness would silently fake.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import python_pachyderm
import yaml

from scaffold_helpers import (
    CLI,
    REPO_ROOT,
    base_image,  # noqa: F401  (fixture)
    clean_env,
    commit_all,
    git,
    home,  # noqa: F401  (fixture)
)
from scaffold_helpers import run as run_cli

ACTION = yaml.safe_load((REPO_ROOT / "action.yml").read_text())
WORKFLOW_TEMPLATES = sorted((REPO_ROOT / "invoke_pachyderm/scaffold/templates").glob("**/dot-github/workflows/*.yml")) + sorted(
    (REPO_ROOT / ".github/workflows").glob("*.yml")
)
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
REFERENCE = re.compile(r"^(inputs|github|steps)(\.[A-Za-z0-9_-]+)+$")
PACHD_TOKEN = "pachd-token-7f3a9c1e5b"
COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".services", ".nox", ".pytest_cache", "__pycache__", "build", "dist", "*.egg-info"
)


# -- the harness ------------------------------------------------------------------------------
@dataclass
class ActionRun:
    log: str = ""
    returncode: int = 0
    outputs: dict[str, str] = field(default_factory=dict)
    summaries: list[str] = field(default_factory=list)
    step_outputs: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return "\n".join(self.summaries)


def evaluate(text: str, context: dict) -> str:
    def one(match: re.Match[str]) -> str:
        expression = match.group(1)
        if not REFERENCE.match(expression):
            raise AssertionError(f"action.yml uses an expression this harness does not evaluate: {expression}")
        root, *path = expression.split(".")
        node = context[root]
        for part in path:
            if root == "steps":
                node = node.get(part, {}) if isinstance(node, dict) else ""
            elif part not in node:
                raise AssertionError(f"action.yml refers to unknown {expression}")
            else:
                node = node[part]
        return "" if node in ({}, None) else str(node)

    return EXPRESSION.sub(one, text)


def read_output_file(path: Path) -> dict[str, str]:
    """GITHUB_OUTPUT / GITHUB_ENV syntax: name=value, or name<<DELIMITER ... DELIMITER."""
    values: dict[str, str] = {}
    lines = path.read_text().splitlines() if path.exists() else []
    index = 0
    while index < len(lines):
        line = lines[index]
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            name, delimiter = line.split("<<", 1)
            end = lines.index(delimiter, index + 1)
            values[name] = "\n".join(lines[index + 1 : end])
            index = end + 1
        else:
            name, _, value = line.partition("=")
            values[name] = value
            index += 1
    return values


def run_action(inputs: dict[str, str], workspace: Path, env: dict[str, str], tmp: Path) -> ActionRun:
    unknown = set(inputs) - set(ACTION["inputs"])
    assert not unknown, f"inputs the action does not have: {unknown}"
    values = {name: str(spec.get("default", "")) for name, spec in ACTION["inputs"].items()}
    values.update(inputs)
    context = {"inputs": values, "github": {"action_path": env["GITHUB_ACTION_PATH"], "workspace": str(workspace)}, "steps": {}}
    env = dict(env)
    result = ActionRun()
    tmp.mkdir(parents=True, exist_ok=True)
    for index, step in enumerate(ACTION["runs"]["steps"]):
        if "uses" in step:
            # actions/setup-python: skipped here; the test's fresh virtualenv is first on PATH instead.
            assert step["uses"].startswith("actions/setup-python@"), step["uses"]
            continue
        assert step.get("shell") == "bash", f"step {step.get('name')}: composite run steps need shell: bash"
        files = {name: tmp / f"step{index}-{name}" for name in ("output", "summary", "env", "path")}
        for path in files.values():
            path.write_text("")
        step_env = {
            **env,
            "GITHUB_OUTPUT": str(files["output"]),
            "GITHUB_STEP_SUMMARY": str(files["summary"]),
            "GITHUB_ENV": str(files["env"]),
            "GITHUB_PATH": str(files["path"]),
        }
        step_env.update({key: evaluate(str(value), context) for key, value in (step.get("env") or {}).items()})
        script = tmp / f"step{index}.sh"
        script.write_text(evaluate(step["run"], context))
        cwd = (workspace / evaluate(str(step.get("working-directory", ".")), context)).resolve()
        process = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=cwd, env=step_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=900,
        )
        result.log += process.stdout
        outputs = read_output_file(files["output"])
        if step.get("id"):
            context["steps"][step["id"]] = {"outputs": outputs}
            result.step_outputs[step["id"]] = outputs
        env.update(read_output_file(files["env"]))
        for directory in reversed(files["path"].read_text().splitlines()):
            env["PATH"] = directory + os.pathsep + env["PATH"]
        if files["summary"].read_text():
            result.summaries.append(files["summary"].read_text())
        if process.returncode != 0:
            result.returncode = process.returncode
            return result
    result.outputs = {name: evaluate(spec["value"], context) for name, spec in ACTION["outputs"].items()}
    return result


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runner_python(tmp_path_factory) -> Path:
    """What actions/setup-python would give: a Python of its own, without invoke-pachyderm yet."""
    venv = tmp_path_factory.mktemp("runner") / "python"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    return venv / "bin"


@pytest.fixture(scope="module")
def action_path(tmp_path_factory) -> Path:
    """The action's checkout, as the runner makes it for `uses: owner/invoke-pachyderm@ref`."""
    path = tmp_path_factory.mktemp("actions") / "invoke-pachyderm"
    shutil.copytree(REPO_ROOT, path, ignore=COPY_IGNORE)
    return path


def github_env(home: Path, runner_python: Path, action_path: Path, workspace: Path, event: Path, sha: str, services) -> dict:
    env = clean_env(home)
    venv_bin = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([str(runner_python)] + [p for p in env["PATH"].split(os.pathsep) if p != venv_bin])
    env.update(
        CI="true",
        GITHUB_ACTIONS="true",
        GITHUB_WORKSPACE=str(workspace),
        GITHUB_ACTION_PATH=str(action_path),
        GITHUB_EVENT_NAME="pull_request",
        GITHUB_EVENT_PATH=str(event),
        GITHUB_SHA=sha,
        GITHUB_REF="refs/pull/7/merge",
        GITHUB_REF_NAME="7/merge",
        GITHUB_HEAD_REF="feature/longer-words",
        GITHUB_BASE_REF="main",
        GITHUB_REPOSITORY="acme/word-count",
        GITHUB_RUN_ID="4242",
        GITHUB_SERVER_URL="https://github.com",
        RUNNER_OS="Linux",
        RUNNER_TEMP=str(home / "runner-temp"),
        DOCKER_HOST=services.docker_host,
        PIP_DISABLE_PIP_VERSION_CHECK="1",
    )
    (home / "runner-temp").mkdir(exist_ok=True)  # the runner's RUNNER_TEMP always exists
    return env


def pull_request(workspace: Path, env: dict) -> tuple[str, str, str]:
    """A feature branch with one commit, and GitHub's merge commit of it into main, checked out
    detached (what actions/checkout does by default on pull_request). Returns (base, head, merge)."""
    base = git(workspace, env, "rev-parse", "HEAD").stdout.strip()
    git(workspace, env, "checkout", "-q", "-b", "feature/longer-words")
    transform = workspace / "word-count/src/word_count/transform.py"
    transform.write_text(transform.read_text() + "\n# longer words next\n")
    head = commit_all(workspace, env, "Prepare longer words")
    git(workspace, env, "checkout", "-q", "--detach", "main")
    git(workspace, env, "merge", "-q", "--no-ff", "-m", "Merge pull request #7", "feature/longer-words")
    merge = git(workspace, env, "rev-parse", "HEAD").stdout.strip()
    return base, head, merge


def write_event(path: Path, base: str, head: str) -> Path:
    path.write_text(json.dumps({
        "action": "synchronize",
        "number": 7,
        "pull_request": {
            "number": 7,
            "head": {"sha": head, "ref": "feature/longer-words"},
            "base": {"sha": base, "ref": "main"},
        },
    }))
    return path


# -- the tests --------------------------------------------------------------------------------
def test_action_on_a_pull_request_masks_tags_with_the_head_sha_outputs_and_summarizes(
    tmp_path, home, base_image, auth_registry, unique_repo, pachd, services, runner_python, action_path,
):
    workspace = tmp_path / "workspace"
    project = workspace / "word-count"
    project.mkdir(parents=True)
    local = clean_env(home, DOCKER_HOST=services.docker_host)
    image = f"{auth_registry.host}/{unique_repo}"
    run_cli([CLI, "init", project, "--name", "word-count", "--image", image, "--input-repo", "words",
             "--base-image", base_image], tmp_path, local, check=True)
    # A test command that prints the token: on GitHub only the mask, registered first, hides it.
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        'test_command = "python -m pytest -q"',
        'test_command = "python -m pytest -q -p no:cacheprovider && echo pachd token seen by the tests: $INVOKE_PACHYDERM_TOKEN"',
    ))
    git(workspace, local, "init", "-q", "-b", "main")
    commit_all(workspace, local, "Scaffold")
    base, head, merge = pull_request(workspace, local)
    event = write_event(tmp_path / "event.json", base, head)
    env = github_env(home, runner_python, action_path, workspace, event, merge, services)

    pachd.tokens = [PACHD_TOKEN]
    pachd.create_repo("words")
    secrets = {PACHD_TOKEN: "pachd-token", auth_registry.password: "registry-password"}
    run = run_action(
        {
            "tasks": "test\nrender-spec --check\ndeploy\n",
            "pachd-address": f"grpc://127.0.0.1:{pachd.port}",
            "pachd-token": PACHD_TOKEN,
            "registry": auth_registry.host,
            "registry-username": auth_registry.username,
            "registry-password": auth_registry.password,
            "working-directory": "word-count",
            "extra-packages": "pytest -r requirements.txt",
        },
        workspace, env, tmp_path / "runner",
    )
    assert run.returncode == 0, run.log

    # Masks come before anything else could show a secret; elsewhere a secret appears only where
    # a subprocess printed it after its mask (the test command above), never from the tool.
    lines = run.log.splitlines()
    for secret in secrets:
        first = next(i for i, line in enumerate(lines) if secret in line)
        assert lines[first] == f"::add-mask::{secret}", lines[first]
        others = [line for line in lines if secret in line and not line.startswith("::add-mask::")]
        assert all(line.startswith("pachd token seen by the tests:") for line in others), others
    assert any(line.startswith("pachd token seen by the tests:") for line in lines)
    assert "Login Succeeded" in run.log
    assert "::group::test: python -m pytest" in run.log and "::group::build and push" in run.log
    assert run.log.count("::group::") == run.log.count("::endgroup::")

    # Tagged with the pull request's head, not GITHUB_SHA (the merge commit checked out).
    assert head != merge
    assert head in auth_registry.tags(unique_repo) and merge not in auth_registry.tags(unique_repo)
    digest = auth_registry.manifest_digest(unique_repo, head)
    assert run.outputs["commit"] == head
    assert run.outputs["image"] == f"{image}:{head}"
    assert run.outputs["tag"] == head
    assert run.outputs["digest"] == digest
    assert json.loads(run.outputs["images"]) == {"main": {"ref": f"{image}:{head}", "digest": digest}}
    assert run.outputs["pipelines-changed"] == "word-count"
    assert json.loads(run.outputs["pipelines"]) == [
        {"name": "word-count", "action": "create", "version": 1, "previous_version": None}
    ]
    assert run.outputs["dry-run"] == "false"

    assert "### invoke-pachyderm deploy" in run.summary
    assert f"Commit `{head}` on `feature/longer-words`" in run.summary
    assert f"| `{image}:{head}` | `{digest}` | pushed |" in run.summary
    assert "| `word-count` | created | 1 |" in run.summary
    assert "### invoke-pachyderm render-spec" in run.summary  # render-spec --check wrote its own
    for secret in secrets:
        assert secret not in run.summary and secret not in json.dumps(run.outputs)

    client = python_pachyderm.Client(host="127.0.0.1", port=pachd.port, auth_token=PACHD_TOKEN)
    (info,) = list(client.inspect_pipeline("word-count", details=True))
    assert info.details.transform.image == f"{image}:{head}"
    annotations = dict(info.details.metadata.annotations)
    assert annotations["invoke-pachyderm.io/commit"] == head
    assert annotations["invoke-pachyderm.io/ci-run"] == "https://github.com/acme/word-count/actions/runs/4242"

    # The next push to the pull request, with dry-run: the plan goes to the summary, nothing changes.
    git(workspace, local, "checkout", "-q", "feature/longer-words")
    template = project / "templates/pipeline.json.j2"
    template.write_text(template.read_text().replace('"glob": "/*"', '"glob": "/"'))
    head2 = commit_all(workspace, local, "Glob the whole repo")
    git(workspace, local, "checkout", "-q", "--detach", "main")
    git(workspace, local, "merge", "-q", "--no-ff", "-m", "Merge pull request #7", "feature/longer-words")
    env["GITHUB_SHA"] = git(workspace, local, "rev-parse", "HEAD").stdout.strip()
    write_event(event, base, head2)
    planned = run_action(
        {"tasks": "deploy", "dry-run": "true", "pachd-address": f"grpc://127.0.0.1:{pachd.port}",
         "pachd-token": PACHD_TOKEN, "working-directory": "word-count"},
        workspace, env, tmp_path / "runner-2",
    )
    assert planned.returncode == 0, planned.log
    assert "invoke-pachyderm action: invoke deploy --dry-run" in planned.log
    assert planned.outputs["dry-run"] == "true"
    assert planned.outputs["commit"] == head2
    assert planned.outputs["pipelines-changed"] == "word-count"
    assert "### invoke-pachyderm deploy (dry run: nothing changed)" in planned.summary
    assert "| `word-count` | would update | 1 (deployed) |" in planned.summary
    assert "```diff" in planned.summary and '"glob": "/"' in planned.summary
    assert head2 not in auth_registry.tags(unique_repo)  # a dry run builds nothing
    (info,) = list(client.inspect_pipeline("word-count"))
    assert info.version == 1


def test_action_fails_on_the_first_failing_task_with_its_exit_code(tmp_path, home, runner_python, action_path, services):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    local = clean_env(home)
    git(workspace, local, "init", "-q", "-b", "main")
    (workspace / "tasks.py").write_text("from invoke_pachyderm import ns\n")
    (workspace / "pyproject.toml").write_text('[tool.invoke-pachyderm]\nimage = "localhost:5000/x"\ntest_command = "exit 3"\n')
    head = commit_all(workspace, local, "Broken tests")
    event = write_event(tmp_path / "event.json", head, head)
    env = github_env(home, runner_python, action_path, workspace, event, head, services)
    run = run_action({"tasks": "test\ndeploy", "python-version": ""}, workspace, env, tmp_path / "runner")
    assert run.returncode == 5  # TestsFailed
    assert "::error::tests failed: `exit 3` exited 3; nothing was pushed or deployed" in run.log
    assert "invoke deploy" not in run.log

    bad = run_action({"tasks": "test", "dry-run": "maybe"}, workspace, env, tmp_path / "runner-2")
    assert bad.returncode == 2 and "::error::dry-run must be true or false, not 'maybe'" in bad.log


def test_action_logs_out_on_failure_and_masks_a_multi_line_secret_line_by_line(
    tmp_path, home, runner_python, action_path, services, auth_registry,
):
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    local = clean_env(home)
    git(workspace, local, "init", "-q", "-b", "main")
    (workspace / "tasks.py").write_text("from invoke_pachyderm import ns\n")
    (workspace / "pyproject.toml").write_text('[tool.invoke-pachyderm]\nimage = "localhost:5000/x"\ntest_command = "exit 3"\n')
    head = commit_all(workspace, local, "Broken tests")
    env = github_env(home, runner_python, action_path, workspace, write_event(tmp_path / "event.json", head, head),
                     head, services)
    key = '{\n  "type": "service_account",\n  "private_key_id": "k3y-1d-0123456789"\n}\n'
    run = run_action(
        {"tasks": "test", "python-version": "", "pachd-token": key, "registry": auth_registry.host,
         "registry-username": auth_registry.username, "registry-password": auth_registry.password},
        workspace, env, tmp_path / "runner",
    )
    # A multi-line pachd token is refused as a setting (exit 2, the value never shown); the masks,
    # the login and the logout on failure are what this test is about.
    assert run.returncode == 2, run.log
    assert "key 'token' contains whitespace or a control character" in run.log
    assert "Login Succeeded" in run.log
    assert f"invoke-pachyderm action: logged out of {auth_registry.host}" in run.log
    assert not list((home / "runner-temp").iterdir())  # the run's DOCKER_CONFIG is gone
    docker_config = home / ".docker" / "config.json"
    assert not docker_config.exists() or auth_registry.host not in docker_config.read_text()
    masks = {line.removeprefix("::add-mask::") for line in run.log.splitlines() if line.startswith("::add-mask::")}
    assert masks == {'"type": "service_account",', '"private_key_id": "k3y-1d-0123456789"', auth_registry.password}
    for line in run.log.splitlines():
        assert line.startswith("::add-mask::") or not any(
            part in line for part in ("service_account", "k3y-1d-0123456789", auth_registry.password)), line


def test_workflows_parse_and_use_only_inputs_and_outputs_the_action_has():
    from invoke_pachyderm.tasks import ns

    assert WORKFLOW_TEMPLATES, "no workflow templates found"
    task_names = set(ns.task_names)
    for path in WORKFLOW_TEMPLATES:
        workflow = yaml.safe_load(path.read_text())
        triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
        assert {"push", "pull_request", "workflow_dispatch"} <= set(triggers), path
        assert triggers["push"]["branches"] == ["main"]
        uses_action = 0
        for job_name, job in workflow["jobs"].items():
            step_ids = {}
            for step in job["steps"]:
                if "invoke-pachyderm@" not in step.get("uses", ""):
                    continue
                uses_action += 1
                # the documented placeholder, pinned by commit SHA like every action
                assert step["uses"] == "your-org/invoke-pachyderm@" + "0" * 40
                given = set(step.get("with", {}))
                assert given <= set(ACTION["inputs"]), f"{path} job {job_name}: {given - set(ACTION['inputs'])}"
                for line in str(step["with"].get("tasks", "deploy")).splitlines():
                    if line.strip():
                        assert line.split()[0] in task_names, line
                if step.get("id"):
                    step_ids[step["id"]] = step
            text = yaml.safe_dump(job)
            for step_id, name in re.findall(r"steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_-]+)", text):
                assert step_id in step_ids and name in ACTION["outputs"], f"{path}: steps.{step_id}.outputs.{name}"
        assert uses_action >= 2, path
    jobs = yaml.safe_load(WORKFLOW_TEMPLATES[0].read_text())["jobs"]
    pr_tasks = jobs["test"]["steps"][1]["with"]["tasks"].split("\n")
    assert [t for t in pr_tasks if t] == ["test", "render-spec --check"]
    assert jobs["plan"]["steps"][1]["with"]["tasks"] == "deploy --dry-run"
