"""A throwaway user project: a git repo with a busybox image, spec templates and tasks.py,
driven by running `invoke` as the user would (a subprocess, in the project directory)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from fixtures_services import write_busybox_context

VENV_BIN = Path(sys.executable).parent

PIPELINE_TEMPLATE = """{
  "pipeline": {"name": "%(name)s"},
  "description": "%(description)s",
  "transform": {"image": "{{ %(image_var)s }}", "cmd": ["/busybox", "true"]},
  "input": {"pfs": {"repo": "%(input)s", "glob": "/*"}}
}
"""


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)

    @property
    def errors(self) -> list[str]:
        """The `error: ...` lines a task printed for the user."""
        return [line for line in self.stderr.splitlines() if line.startswith("error: ")]


class Project:
    def __init__(self, root: Path, env: dict[str, str]):
        self.root = root
        self.env = env

    # -- files and git ---------------------------------------------------------------
    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def pipeline(self, name: str, input_repo: str, description: str = "", image_var: str = "image") -> None:
        self.write(
            f"templates/{name}.json.j2",
            PIPELINE_TEMPLATE % {"name": name, "input": input_repo, "description": description, "image_var": image_var},
        )

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args],
            cwd=self.root, check=True, capture_output=True, text=True,
        ).stdout.strip()

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head

    @property
    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    # -- running -----------------------------------------------------------------------
    def invoke(self, *args: str, env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        completed = subprocess.run(
            [str(VENV_BIN / "invoke"), *args],
            cwd=self.root, env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)


def make_project(
    tmp_path: Path,
    services,
    pachd_address: str,
    image: str,
    settings: str = "",
    pipelines: tuple[tuple[str, str], ...] = (("edges", "images"),),
) -> Project:
    """A committed project with one image and the given (pipeline, input repo) templates."""
    root = tmp_path / "project"
    write_busybox_context(root)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_PACHYDERM_", "PACH", "GITHUB_"))},
        "HOME": str(home),  # no real ~/.pachyderm or ~/.docker config
        "DOCKER_HOST": services.docker_host,
        "PACHD_ADDRESS": pachd_address,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "CI": "",
    }
    env.pop("CI")
    project = Project(root, env)
    project.write("tasks.py", "from invoke_pachyderm import ns  # noqa: F401\n")
    project.write(".gitignore", "build/\n")
    project.write(
        "pyproject.toml",
        f'[tool.invoke-pachyderm]\nimage = "{image}"\ntest_command = "true"\n{settings}',
    )
    for name, input_repo in pipelines:
        project.pipeline(name, input_repo)
    project.git("init", "-q", "-b", "main")
    project.commit("initial")
    return project
