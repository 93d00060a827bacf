"""Nox sessions from `invoke_pachyderm.nox`: the scaffolded noxfile.py, run with the real `nox`."""
from __future__ import annotations

import json
from pathlib import Path

from scaffold_helpers import (
    VENV_BIN,
    base_image,  # noqa: F401  (fixture)
    commit_all,
    home,  # noqa: F401  (fixture)
    json_stdout,
    local_env,  # noqa: F401  (fixture)
    invoke,
    project_env,  # noqa: F401  (fixture)
    run,
    scaffold_project,
)

NOX = VENV_BIN / "nox"


def nox(project: Path, env, *args, check: bool = True):
    return run([NOX, "-f", "noxfile.py", *args], project, env, check=check)


def test_render_spec_session(tmp_path, local_env):
    project = tmp_path / "word-count"
    sha = scaffold_project(project, local_env, "localhost:5000/word-count", "python:3.12-slim")
    assert (project / "noxfile.py").read_text().count("register()") == 1

    listed = nox(project, local_env, "-l").stdout.splitlines()
    marks = {line.split()[1]: line[0] for line in listed if " -> " in line}
    # `nox` alone runs the checks; build, push, deploy, status and rollback only when named.
    # (status and rollback: Nox has every task of the Invoke collection but init and hooks.)
    assert marks == {
        "test": "*", "build": "-", "push": "-", "render_spec": "*", "deploy": "-", "status": "-", "rollback": "-", "prune": "-", "graph": "-", "teardown": "-", "smoke": "-",
    }

    rendered = nox(project, local_env, "-s", "render_spec")
    spec = json.loads((project / "build/pipelines/word-count.json").read_text())
    assert spec["transform"]["image"] == f"localhost:5000/word-count:{sha}"
    assert "wrote " in rendered.stdout and "Session render_spec was successful" in rendered.stderr

    checked = json_stdout(nox(project, local_env, "-s", "render_spec", "--", "--check", "--json"))
    assert checked["commit"] == sha and checked["specs"][0]["path"] is None
    assert json_stdout(nox(project, local_env, "-s", "test", "--", "--json")) == {"tests": "passed"}

    # A failing stage fails the session with the task's one-line message.
    template = project / "templates/pipeline.json.j2"
    template.write_text(template.read_text().replace("{{ image }}", "{{ image }"))
    commit_all(project, local_env, "Break the template")
    failed = nox(project, local_env, "-s", "render_spec", check=False)
    assert failed.returncode == 1
    assert "templates/pipeline.json.j2:5: template syntax error" in failed.stderr
    bad_flag = nox(project, local_env, "-s", "render_spec", "--", "--chek", check=False)
    assert bad_flag.returncode == 1 and "unrecognized arguments: --chek" in bad_flag.stderr


def test_deploy_session_ships_like_the_task(tmp_path, project_env, base_image, registry, unique_repo, pachd):
    project = tmp_path / "word-count"
    image = f"{registry.host}/{unique_repo}"
    sha = scaffold_project(project, project_env, image, base_image)
    pachd.create_repo("words")
    deployed = json_stdout(nox(project, project_env, "-s", "deploy", "--", "--json"))
    assert [(p["name"], p["action"]) for p in deployed["pipelines"]] == [("word-count", "create")]
    assert deployed["images"]["main"]["ref"] == f"{image}:{sha}"
    assert sha in registry.tags(unique_repo)
    assert pachd.pipeline_spec("word-count")["transform"]["image"] == f"{image}:{sha}"

    # The same summary as the task (they once differed), and every task is a session.
    def plan_lines(output: str) -> list[str]:
        lines = output.splitlines()
        assert lines[-1].startswith("tag "), output  # the stage timings, which differ run to run
        return lines[:-1]

    planned = plan_lines(nox(project, project_env, "-s", "deploy", "--", "--dry-run").stdout)
    assert planned == plan_lines(invoke(project, project_env, "deploy", "--dry-run").stdout) == ["word-count: unchanged"]
    status = json_stdout(nox(project, project_env, "-s", "status", "--", "--json"))
    assert status == json_stdout(invoke(project, project_env, "status", "--json"))
    assert [(p["pipeline"], p["version"], p["commit"]) for p in status["pipelines"]] == [("word-count", 1, sha)]

    source = next(project.glob("src/*/transform.py"))
    source.write_text(source.read_text() + "\n# a second version\n")
    second = commit_all(project, project_env, "Second version")
    nox(project, project_env, "-s", "deploy", "--", "--skip-tests", "--no-wait")
    assert pachd.pipeline_spec("word-count")["transform"]["image"] == f"{image}:{second}"
    restored = json_stdout(nox(project, project_env, "-s", "rollback", "--", "--json"))
    assert [(r["pipeline"], r["restored_commit"]) for r in restored["restored"]] == [("word-count", sha)]
    assert pachd.pipeline_spec("word-count")["transform"]["image"] == f"{image}:{sha}"
