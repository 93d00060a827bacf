"""The Invoke adapters as a user meets them: `invoke --list`, `--help`, configuration layers, exit codes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent
TEMPLATE = """{"pipeline": {"name": "p"}, "transform": {"image": "{{ image }}", "cmd": ["{{ greeting }}"]},
 "parallelism_spec": {"constant": {{ workers }}}}
"""


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "templates").mkdir(parents=True)
    (root / "tasks.py").write_text("from invoke_pachyderm import ns  # noqa: F401\n")
    (root / "templates" / "p.json.j2").write_text(TEMPLATE)
    (root / "pyproject.toml").write_text(
        '[tool.invoke-pachyderm]\nimage = "reg.example/p"\nvars = { greeting = "from-pyproject", workers = 1 }\n'
    )
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=root, check=True)
    return root


def invoke(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("INVOKE_PACHYDERM_", "PACH"))}
    clean["HOME"] = str(root.parent)
    return subprocess.run(
        [str(VENV_BIN / "invoke"), *args], cwd=root, env={**clean, **env}, capture_output=True, text=True
    )


def rendered(root: Path) -> dict:
    return json.loads((root / "build/pipelines/p.json").read_text())


def test_list_shows_every_task_with_a_help_line(project):
    result = invoke(project, "--list")
    assert result.returncode == 0
    for name in ("test", "build", "push", "render-spec", "deploy", "status", "rollback"):
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(name + " "))
        assert len(line.split()) > 1, f"{name} has no help line"


@pytest.mark.parametrize(
    "task", ["test", "build", "push", "render-spec", "deploy", "status", "rollback", "prune", "init", "hooks.install", "hooks.uninstall"]
)
def test_every_flag_has_help(project, task):
    result = invoke(project, "--help", task)
    assert result.returncode == 0
    options = result.stdout.split("Options:")[1]
    flags = [line for line in options.splitlines() if line.startswith("  -")]  # not wrapped help text
    assert flags
    for line in flags:
        # invoke prints the help text in a column to the right of the flag; without help, nothing
        assert "   " in line.strip(), f"no help for {line.strip()}"


def test_configuration_layers_in_order(project):
    assert invoke(project, "render-spec").returncode == 0
    assert rendered(project)["transform"]["cmd"] == ["from-pyproject"]

    (project / "invoke.yaml").write_text("pachyderm:\n  vars:\n    greeting: from-invoke-yaml\n    workers: 2\n")
    assert invoke(project, "render-spec").returncode == 0
    assert rendered(project)["transform"]["cmd"] == ["from-invoke-yaml"]

    env_vars = json.dumps({"greeting": "from-env", "workers": 3})
    assert invoke(project, "render-spec", INVOKE_PACHYDERM_VARS=env_vars).returncode == 0
    assert rendered(project)["transform"]["cmd"] == ["from-env"]
    assert rendered(project)["parallelism_spec"] == {"constant": 3}

    result = invoke(project, "render-spec", "--out-dir", "elsewhere", INVOKE_PACHYDERM_VARS=env_vars)
    assert result.returncode == 0
    assert (project / "elsewhere/p.json").is_file()


def test_render_spec_check_writes_nothing(project):
    result = invoke(project, "render-spec", "--check")
    assert result.returncode == 0, result.stderr
    assert not (project / "build").exists()


def test_an_unknown_key_in_invoke_yaml_is_named(project):
    (project / "invoke.yaml").write_text("pachyderm:\n  imgae: x\n")
    result = invoke(project, "render-spec")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: invoke config 'pachyderm': unknown key 'imgae' (did you mean 'image'?)"


def test_a_wrong_type_in_the_environment_is_named(project):
    result = invoke(project, "render-spec", INVOKE_PACHYDERM_PIN_DIGEST="maybe")
    assert result.returncode == 2
    assert "INVOKE_PACHYDERM_PIN_DIGEST" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_flag_is_invokes_parse_error(project):
    result = invoke(project, "deploy", "--no-such-flag")
    assert result.returncode == 1
    assert "no-such-flag" in result.stderr


def test_debug_shows_the_traceback_of_a_user_error(project):
    (project / "templates" / "p.json.j2").write_text('{"pipeline": {{ nope }}}')
    quiet = invoke(project, "render-spec")
    assert quiet.returncode == 3 and "Traceback" not in quiet.stderr
    loud = invoke(project, "--debug", "render-spec")
    assert "Traceback" in loud.stderr and "TemplateError" in loud.stderr


def test_list_imports_neither_docker_nor_python_pachyderm(project):
    code = (
        "import sys; from invoke.main import program\n"
        "sys.argv = ['invoke', '--list']\n"
        "try:\n    program.run()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('docker', 'python_pachyderm', 'jinja2', 'jsonschema') if m in sys.modules]\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True)
    assert "HEAVY []" in result.stderr, result.stderr


def test_a_bad_timeout_is_a_usage_error(project):
    result = invoke(project, "deploy", "--timeout", "soon")
    assert result.returncode == 64
    assert "--timeout" in result.stderr and "Traceback" not in result.stderr


def test_render_spec_without_an_image_says_to_configure_one(project):
    (project / "pyproject.toml").write_text('[tool.invoke-pachyderm]\nvars = { greeting = "x", workers = 1 }\n')
    result = invoke(project, "render-spec")
    assert result.returncode == 3
    assert "templates/p.json.j2:1" in result.stderr and "set `image`" in result.stderr


def test_a_pachyderm_section_that_is_not_a_mapping(project):
    (project / "invoke.yaml").write_text("pachyderm: just-a-string\n")
    result = invoke(project, "render-spec")
    assert result.returncode == 2
    assert "invoke config 'pachyderm' must be a mapping" in result.stderr


def test_an_invalid_pipeline_name_is_caught_before_the_cluster(project):
    template = project / "templates" / "p.json.j2"
    template.write_text(template.read_text().replace('"name": "p"', '"name": "my.pipeline"'))
    result = invoke(project, "render-spec")
    assert result.returncode == 3
    assert "$.pipeline.name" in result.stderr and "my.pipeline" in result.stderr
