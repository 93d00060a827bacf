"""What a user or a packager gets from the built distributions: the wheel in a fresh virtualenv
(no pytest in it), the printed next steps of `invoke-pachyderm init`, and the sdist's contents.

The distributions are built from a copy of the checkout with `python -m build`, as a release would be."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from scaffold_helpers import REPO_ROOT, clean_env, home, run  # noqa: F401  (home: fixture)

COPY_IGNORE = shutil.ignore_patterns(
    ".git", ".venv", ".services", ".nox", ".pytest_cache", "__pycache__", "build", "dist", "*.egg-info"
)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    source = tmp_path_factory.mktemp("checkout") / "invoke-pachyderm"
    shutil.copytree(REPO_ROOT, source, ignore=COPY_IGNORE)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--wheel", "-o", str(out), str(source)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    return out


@pytest.fixture(scope="module")
def fresh_venv(dist, tmp_path_factory) -> Path:
    """A new virtualenv with only the wheel and its dependencies: what `pip install invoke-pachyderm` gives."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    (wheel,) = dist.glob("invoke_pachyderm-*.whl")
    subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", str(wheel)], check=True, timeout=600)
    return venv


def test_the_wheel_is_licensed_typed_and_described(dist):
    (wheel,) = dist.glob("invoke_pachyderm-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        license_text = archive.read(next(n for n in names if n.endswith(".dist-info/licenses/LICENSE"))).decode()
    assert "invoke_pachyderm/py.typed" in names
    assert "License-Expression: Apache-2.0" in metadata.splitlines()
    assert "Apache License" in license_text and "Version 2.0, January 2004" in license_text
    assert license_text == (REPO_ROOT / "LICENSE").read_text()
    assert "Classifier: Typing :: Typed" in metadata
    urls = [line for line in metadata.splitlines() if line.startswith("Project-URL: ")]
    assert {u.split(",")[0] for u in urls} >= {"Project-URL: Source", "Project-URL: Documentation"}
    assert not any(name.startswith("tests/") for name in names)


def test_the_sdist_builds_the_package_and_ships_no_tests_it_could_not_run(dist):
    (sdist,) = dist.glob("invoke_pachyderm-*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "pyproject.toml", "README.md", "invoke_pachyderm/py.typed", "invoke_pachyderm/commands.py"} <= names
    assert "invoke_pachyderm/scaffold/templates/project/pyproject.toml" in names and "docs/ci-and-scaffolding.md" in names
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/"))]
    assert not [n for n in names if Path(n).name.startswith("test_") and n.endswith(".py")]


def test_the_readme_links_work_off_github():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "](docs/" not in readme and "](examples/" not in readme
    assert "/blob/main/docs/ci-and-scaffolding.md)" in readme and "/tree/main/examples/edges)" in readme


def test_a_scaffolded_project_passes_invoke_test_after_the_printed_next_steps(fresh_venv, tmp_path, home):
    bin_dir = fresh_venv / "bin"
    env = clean_env(home)
    env["PATH"] = f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"  # the fresh venv only: no pytest on PATH
    env["HOME"] = str(Path.home())  # pip's configuration and cache
    assert run([bin_dir / "python", "-c", "import pytest"], tmp_path, env).returncode == 1

    init = run([bin_dir / "invoke-pachyderm", "init", "word-count", "--json"], tmp_path, env, check=True)
    steps = json.loads(init.stdout)["next_steps"]
    project = tmp_path / "word-count"
    assert (project / "pyproject.toml").read_text().startswith("[build-system]")

    before = run([bin_dir / "invoke", "test"], project, env)
    assert before.returncode == 5 and "No module named pytest" in before.stderr  # what a user met before

    upto_test = steps[: next(i for i, step in enumerate(steps) if step.startswith("invoke test")) + 1]
    script = "set -e\n" + "\n".join(upto_test) + "\n"
    followed = run(["bash", "-c", script], tmp_path, env, timeout=600)
    assert followed.returncode == 0, (upto_test, followed.stdout, followed.stderr)
    assert "tests passed" in followed.stdout and "build/pipelines/word-count.json (word-count)" in followed.stdout
    assert run([bin_dir / "invoke", "test"], project, env).returncode == 0
