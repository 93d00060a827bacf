"""CI hardening (issue 13): the action and the scaffolded workflow, checked by zizmor and by reading them.

The scaffolded workflow is the one `invoke-pachyderm init` writes (run as a user would); zizmor
runs offline, as in .ci/run.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

from scaffold_helpers import CLI, REPO_ROOT, clean_env, home  # noqa: F401  (fixture)
from scaffold_helpers import run as run_cli

ZIZMOR = REPO_ROOT / ".venv" / "bin" / "zizmor"
PINNED = re.compile(r"^\s*(?:-\s+)?uses:\s+[\w.-]+/[\w./-]+@[0-9a-f]{40}\s+#\s+v\d")
CHECKOUT = "actions/checkout@08c6903cd8c0fde910a37f88322edcfb5dd907a8"  # v5.0.0, node24
SETUP_PYTHON = "actions/setup-python@e797f83bcb11b83ae66e0230d6156d7c80228e7c"  # v6.0.0, node24

needs_zizmor = pytest.mark.skipif(not ZIZMOR.exists(), reason="zizmor is installed by scripts/setup.sh")


@pytest.fixture
def scaffolded(tmp_path, home) -> Path:
    project = tmp_path / "word-count"
    run_cli([CLI, "init", project, "--name", "word-count", "--input-repo", "words"], tmp_path,
            clean_env(home), check=True)
    return project / ".github" / "workflows" / "pachyderm.yml"


def zizmor(*files: Path | str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(REPO_ROOT / "scripts" / "zizmor.sh"), *map(str, files)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


@needs_zizmor
def test_zizmor_finds_nothing_at_medium_or_above_in_the_action_and_the_scaffolded_workflow():
    result = zizmor()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No findings to report" in result.stdout


@needs_zizmor
def test_zizmor_in_ci_fails_on_a_tag_pinned_checkout_that_keeps_its_credentials(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\npermissions: {}\njobs:\n  build:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - uses: actions/checkout@v4\n"
    )
    result = zizmor(bad)
    assert result.returncode != 0
    assert "unpinned-uses" in result.stdout and "artipacked" in result.stdout


def uses_lines(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if re.match(r"^\s*(-\s+)?uses:", line)]


def test_every_action_is_pinned_by_commit_sha_with_its_version_in_a_comment(scaffolded):
    for path in (REPO_ROOT / "action.yml", scaffolded):
        lines = uses_lines(path)
        assert lines, path
        for line in lines:
            assert PINNED.match(line), f"{path.name}: {line.strip()}"
    assert SETUP_PYTHON in (REPO_ROOT / "action.yml").read_text()
    assert all(CHECKOUT in line for line in uses_lines(scaffolded) if "actions/checkout" in line)


def test_the_scaffolded_workflow_keeps_secrets_from_pull_request_code(scaffolded):
    workflow = yaml.safe_load(scaffolded.read_text())
    jobs = workflow["jobs"]
    assert workflow["permissions"] == {"contents": "read"}
    for name, job in jobs.items():
        for step in job["steps"]:
            if "actions/checkout@" in step.get("uses", ""):
                assert step["with"]["persist-credentials"] is False, name
    # Pull requests: the tests run in a job given no secret; the plan in another, with a read-only token.
    assert "secrets." not in yaml.safe_dump(jobs["test"])
    assert "pull_request" in jobs["test"]["if"] and "pull_request" in jobs["plan"]["if"]
    assert re.findall(r"secrets\.\w+", yaml.safe_dump(jobs["plan"])) == ["secrets.PACHD_READONLY_TOKEN"]
    assert jobs["plan"]["needs"] == "test"
    # Deploys: pushes to main, and manual runs only from the default branch, in a GitHub environment.
    deploy = jobs["deploy"]
    assert "github.event.repository.default_branch" in deploy["if"] and "workflow_dispatch" in deploy["if"]
    assert "pull_request" not in deploy["if"]
    assert deploy["environment"] == "pachyderm"
    assert set(re.findall(r"secrets\.\w+", yaml.safe_dump(deploy))) == {"secrets.PACHD_TOKEN", "secrets.REGISTRY_PASSWORD"}
