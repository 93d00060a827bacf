"""pre-commit (issue 15): the repository's .pre-commit-hooks.yaml validates, and its hooks run from a
project's .pre-commit-config.yaml through the real `pre-commit` (which installs this repository into
an environment of its own, as it would from GitHub)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from project_helpers import VENV_BIN, make_project

REPO_ROOT = Path(__file__).resolve().parents[1]
MANIFEST = REPO_ROOT / ".pre-commit-hooks.yaml"
PRE_COMMIT = [sys.executable, "-m", "pre_commit"]


def run(args, cwd, env, check=False):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=check)


def committed_rev() -> str:
    """The hooks as pre-commit sees them: the manifest of a commit, not of the working tree."""
    rev = run(["git", "rev-parse", "HEAD"], REPO_ROOT, None, check=True).stdout.strip()
    if run(["git", "cat-file", "-e", f"{rev}:.pre-commit-hooks.yaml"], REPO_ROOT, None).returncode:
        pytest.fail(".pre-commit-hooks.yaml is not committed: pre-commit reads hooks from a commit")
    return rev


@pytest.fixture
def project(tmp_path, services, registry, unique_repo):
    project = make_project(tmp_path, services, "grpc://127.0.0.1:1", f"{registry.host}/{unique_repo}")
    project.env["PRE_COMMIT_HOME"] = str(tmp_path / "pre-commit-home")
    project.env["GIT_AUTHOR_NAME"] = project.env["GIT_COMMITTER_NAME"] = "Test"
    project.env["GIT_AUTHOR_EMAIL"] = project.env["GIT_COMMITTER_EMAIL"] = "test@example.com"
    return project


def test_manifest_validates_and_names_the_tasks():
    result = run([*PRE_COMMIT, "validate-manifest", str(MANIFEST)], REPO_ROOT, None)
    assert result.returncode == 0, result.stdout + result.stderr
    hooks = {hook["id"]: hook for hook in yaml.safe_load(MANIFEST.read_text())}
    assert hooks["pachyderm-render-check"]["entry"] == "invoke render-spec --check"
    assert hooks["pachyderm-test"]["entry"] == "invoke test"
    assert all(hook["pass_filenames"] is False for hook in hooks.values())


def test_render_check_hook_blocks_a_commit_with_a_broken_template(project):
    project.write(
        ".pre-commit-config.yaml",
        yaml.safe_dump({"repos": [{"repo": str(REPO_ROOT), "rev": committed_rev(),
                                   "hooks": [{"id": "pachyderm-render-check"}]}]}),
    )
    project.commit("pre-commit config")
    installed = run([*PRE_COMMIT, "install"], project.root, project.env)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    template = project.root / "templates/edges.json.j2"
    template.write_text(template.read_text().replace("{{ image }}", "{{ imagee }}"))
    project.git("add", "-A")
    refused = run(["git", "commit", "-m", "typo"], project.root, project.env)
    assert refused.returncode != 0
    output = refused.stdout + refused.stderr  # git sends the hook's output to stderr
    assert "error: templates/edges.json.j2:4: 'imagee' is undefined" in output
    assert "pachyderm specs render and validate" in output and "Failed" in output

    template.write_text(template.read_text().replace("{{ imagee }}", "{{ image }}"))
    project.git("add", "-A")
    accepted = run(["git", "commit", "-m", "fixed", "--allow-empty"], project.root, project.env)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "Passed" in accepted.stdout + accepted.stderr


def test_test_hook_runs_the_projects_tests_with_their_exit_code(project):
    project.write("pyproject.toml", (project.root / "pyproject.toml").read_text().replace(
        'test_command = "true"', 'test_command = "echo the-project-tests-ran; exit 3"'))
    project.commit("failing tests")
    hook = [*PRE_COMMIT, "try-repo", str(REPO_ROOT), "pachyderm-test", "--all-files", "--verbose",
            "--hook-stage", "pre-push"]
    env = {**project.env, "PATH": f"{VENV_BIN}:{project.env['PATH']}"}
    failed = run(hook, project.root, env)
    assert failed.returncode == 1
    assert "the-project-tests-ran" in failed.stdout
    assert "error: tests failed: `echo the-project-tests-ran; exit 3` exited 3" in failed.stdout
    assert "- exit code: 5" in failed.stdout  # README: 5 = the tests failed

    project.write("pyproject.toml", (project.root / "pyproject.toml").read_text().replace(
        "exit 3", "exit 0"))
    project.commit("passing tests")
    passed = run(hook, project.root, env)
    assert passed.returncode == 0, passed.stdout + passed.stderr
