"""Helpers for tests that scaffold a project and run its tasks as a user would (subprocesses).

Imported by test_scaffold, test_hooks, test_github_action and test_nox. Fixtures:
``base_image`` (a busybox image with /bin/sh, built once on the test daemon, standing in for the
python base image a real project uses), ``home`` (an empty HOME), ``project_env``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Mapping

import pytest

from fixtures_services import BUSYBOX, REPO_ROOT

VENV_BIN = Path(sys.executable).parent
INVOKE = VENV_BIN / "invoke"
CLI = VENV_BIN / "invoke-pachyderm"
BASE_IMAGE = "invoke-pachyderm-test/busybox-base:1"
GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Author",
    "GIT_AUTHOR_EMAIL": "author@example.invalid",
    "GIT_COMMITTER_NAME": "Test Committer",
    "GIT_COMMITTER_EMAIL": "committer@example.invalid",
}

__all__ = ["base_image", "home", "local_env", "project_env"]


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """os.environ without CI, GitHub or tool settings; HOME empty; the venv first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GITHUB_", "RUNNER_", "GIT_", "PACH"))
        and k not in ("CI", "DOCKER_CONFIG", "VIRTUAL_ENV")
        and not (k.startswith("INVOKE_PACHYDERM_") and not k.startswith("INVOKE_PACHYDERM_TEST_"))
    }
    env.update(GIT_IDENTITY)
    env["HOME"] = str(home)
    env["GIT_CONFIG_NOSYSTEM"] = "1"
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    env.update(extra)
    return env


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def local_env(home) -> dict[str, str]:
    """Environment for tasks that need neither Docker nor pachd (test, render-spec, hooks)."""
    return clean_env(home)


@pytest.fixture
def project_env(home, services, pachd) -> dict[str, str]:
    """Environment for running tasks: the test daemon, the pachd double, no real ~/.docker or ~/.pachyderm."""
    return clean_env(home, DOCKER_HOST=services.docker_host, PACHD_ADDRESS=f"grpc://127.0.0.1:{pachd.port}")


@pytest.fixture(scope="session")
def base_image(docker_client, tmp_path_factory) -> str:
    """A local image with busybox as /bin/sh, grep...: the scaffolded Dockerfile's RUN works on it."""
    context = tmp_path_factory.mktemp("busybox-base")
    shutil.copy2(BUSYBOX, context / "busybox")
    (context / "Dockerfile").write_text(
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        'CMD ["/bin/sh"]\n'
    )
    docker_client.images.build(path=str(context), tag=BASE_IMAGE, rm=True)
    return BASE_IMAGE


def run(args, cwd: Path, env: Mapping[str, str], timeout: float = 600, input: str | None = None, check: bool = False):
    result = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=dict(env), capture_output=True, text=True, timeout=timeout,
        input=input, stdin=None if input is not None else subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def invoke(project: Path, env: Mapping[str, str], *args, check: bool = True, timeout: float = 600):
    return run([INVOKE, *args], project, env, timeout=timeout, check=check)


def git(project: Path, env: Mapping[str, str], *args, check: bool = True):
    return run(["git", *args], project, env, check=check)


def commit_all(project: Path, env: Mapping[str, str], message: str) -> str:
    git(project, env, "add", "-A")
    git(project, env, "commit", "-q", "-m", message)
    return git(project, env, "rev-parse", "HEAD").stdout.strip()


def scaffold_project(
    directory: Path, env: Mapping[str, str], image: str, base_image: str, name: str = "word-count",
    input_repo: str = "words", *extra: str,
) -> str:
    """`invoke-pachyderm init`, `git init`, commit; returns the commit SHA."""
    run(
        [CLI, "init", directory, "--name", name, "--image", image, "--input-repo", input_repo,
         "--base-image", base_image, *extra],
        directory.parent, env, check=True,
    )
    git(directory, env, "init", "-q", "-b", "main")
    return commit_all(directory, env, "Scaffold")


def json_stdout(result) -> dict:
    """The whole of stdout must be exactly one JSON document."""
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as error:
        raise AssertionError(f"stdout is not one JSON document ({error}):\n{result.stdout}\nstderr:\n{result.stderr}")


__all__ += ["REPO_ROOT"]
