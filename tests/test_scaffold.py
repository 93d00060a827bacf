"""`invoke-pachyderm init` / `invoke init`: a scaffolded project works end to end, as a user runs it.

Real Docker Engine, registry and pachd double; invoke, git and pip run as subprocesses.
"""
from __future__ import annotations

import json
import sys
import zipfile
from pathlib import Path

import python_pachyderm
from python_pachyderm.proto.v2.pps import pps_pb2

from scaffold_helpers import (
    CLI,
    REPO_ROOT,
    base_image,  # noqa: F401  (fixture)
    commit_all,
    git,
    home,  # noqa: F401  (fixture)
    invoke,
    json_stdout,
    local_env,  # noqa: F401  (fixture)
    project_env,  # noqa: F401  (fixture)
    run,
    scaffold_project,
)

EXPECTED_FILES = {
    ".dockerignore",
    ".github/workflows/pachyderm.yml",
    ".gitignore",
    "Dockerfile",
    "README.md",
    "noxfile.py",
    "pyproject.toml",
    "requirements.txt",
    "src/word_count/__init__.py",
    "src/word_count/transform.py",
    "tasks.py",
    "templates/pipeline.json.j2",
    "tests/test_transform.py",
}


def files_of(directory: Path) -> set[str]:
    return {
        p.relative_to(directory).as_posix()
        for p in directory.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(directory).parts[:1]
    }


def test_scaffolded_project_tests_renders_and_deploys(tmp_path, project_env, base_image, registry, unique_repo, pachd):
    project = tmp_path / "word-count"
    image = f"{registry.host}/{unique_repo}"
    sha = scaffold_project(project, project_env, image, base_image)
    assert files_of(project) == EXPECTED_FILES

    # The transformation's unit tests run with plain pytest, and through the task.
    run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], project, project_env, check=True)
    assert "tests passed" in invoke(project, project_env, "test").stdout

    rendered = invoke(project, project_env, "render-spec")
    spec = json.loads((project / "build/pipelines/word-count.json").read_text())
    assert spec["transform"]["image"] == f"{image}:{sha}"
    assert spec["input"]["pfs"]["repo"] == "words"
    assert "word-count.json" in rendered.stdout
    assert git(project, project_env, "status", "--porcelain").stdout == ""  # build/ and caches are ignored

    pachd.registry_url = registry.url  # RUNNING only if the pushed image is really in the registry
    pachd.create_repo("words")
    deployed = invoke(project, project_env, "deploy", "--wait")
    assert "word-count: created" in deployed.stdout, deployed.stdout + deployed.stderr

    assert sha in registry.tags(unique_repo)
    client = python_pachyderm.Client(host="127.0.0.1", port=pachd.port)
    (info,) = list(client.inspect_pipeline("word-count", details=True))
    assert info.details.transform.image == f"{image}:{sha}"
    assert list(info.details.transform.cmd) == ["python", "-m", "word_count.transform", "/pfs/words", "/pfs/out"]
    assert pps_pb2.PipelineState.Name(info.state) == "PIPELINE_RUNNING"


def test_every_task_prints_exactly_one_json_document(tmp_path, project_env, base_image, registry, unique_repo, pachd):
    project = tmp_path / "word-count"
    image = f"{registry.host}/{unique_repo}"
    sha = scaffold_project(project, project_env, image, base_image)
    pachd.create_repo("words")

    def as_json(*args, runner=invoke):
        return json_stdout(runner(project, project_env, *args, "--json"))

    assert as_json("test") == {"tests": "passed"}
    assert as_json("render-spec", "--check")["commit"] == sha
    assert as_json("render-spec")["specs"][0]["name"] == "word-count"
    assert as_json("build")["images"]["main"]["built"] is True
    pushed = as_json("push")["images"]["main"]
    assert pushed["digest"] == registry.manifest_digest(unique_repo, sha)
    plan = as_json("deploy", "--dry-run")
    assert plan["dry_run"] is True and plan["pipelines"][0]["action"] == "create"
    first = as_json("deploy")
    assert [(p["name"], p["action"]) for p in first["pipelines"]] == [("word-count", "create")]
    status = as_json("status")
    assert status["pipelines"][0]["commit"] == sha

    # A second commit, deployed, then rolled back.
    template = project / "templates/pipeline.json.j2"
    template.write_text(template.read_text().replace('"glob": "/*"', '"glob": "/"'))
    second = commit_all(project, project_env, "Glob the whole repo")
    assert as_json("deploy")["pipelines"][0]["action"] == "update"
    restored = as_json("rollback")["restored"]
    assert restored[0]["restored_commit"] == sha and restored[0]["from_commit"] == second

    installed = as_json("hooks.install")
    assert [h["hook"] for h in installed["hooks"]] == ["pre-push"]
    assert [h["action"] for h in as_json("hooks.uninstall")["hooks"]] == ["removed", "absent"]
    again = as_json("init", "--input-repo", "words", "--base-image", base_image)
    assert again["name"] == "word-count" and again["image"] == image  # read from pyproject.toml
    assert again["skipped"] == ["templates/pipeline.json.j2"]  # edited above: kept
    cli = json_stdout(run([CLI, "init", project, "--json"], tmp_path, project_env, check=True))
    assert {f["path"] for f in cli["files"]} == EXPECTED_FILES


def test_init_never_overwrites_without_force(tmp_path, local_env):
    project = tmp_path / "proj"
    project.mkdir()
    (project / "Dockerfile").write_text("FROM mine\n")
    (project / ".gitignore").write_text("secrets/\n")
    (project / "pyproject.toml").write_text('[project]\nname = "proj"\nversion = "3.0"\n\n[tool.black]\nline-length = 99\n')

    first = run([CLI, "init", project, "--image", "localhost:5000/proj"], tmp_path, local_env, check=True)
    lines = [line.split(None, 2) for line in first.stdout.splitlines()]
    assert ["skipped", "Dockerfile", "(exists; --force to overwrite)"] in lines
    assert ["created", "tasks.py"] in lines
    assert ["merged", "pyproject.toml", "(appended [tool.pytest.ini_options]; appended [tool.invoke-pachyderm])"] in lines
    assert (project / "Dockerfile").read_text() == "FROM mine\n"
    gitignore = (project / ".gitignore").read_text()
    assert gitignore.startswith("secrets/\n") and "build/" in gitignore.splitlines()
    pyproject = (project / "pyproject.toml").read_text()
    assert pyproject.startswith('[project]\nname = "proj"\nversion = "3.0"\n\n[tool.black]\nline-length = 99\n')
    assert '[tool.invoke-pachyderm]\n' in pyproject and 'image = "localhost:5000/proj"' in pyproject

    # Nothing changed, so nothing is written; the user's edits stay.
    (project / "tests/test_transform.py").write_text("# mine\n")
    (project / "pyproject.toml").write_text(pyproject.replace('image = "localhost:5000/proj"', 'image = "localhost:5000/other"'))
    second = json_stdout(run([CLI, "init", project, "--json"], tmp_path, local_env, check=True))
    actions = {f["path"]: f["action"] for f in second["files"]}
    assert actions["tests/test_transform.py"] == "skipped"
    assert actions["Dockerfile"] == "skipped"
    assert actions["pyproject.toml"] == "unchanged"  # the image it has became the default
    assert set(second["skipped"]) == {"Dockerfile", "README.md", "tests/test_transform.py"}  # README names the image

    forced = json_stdout(
        run([CLI, "init", project, "--image", "localhost:5000/proj", "--force", "--json"], tmp_path, local_env, check=True)
    )
    actions = {f["path"]: f["action"] for f in forced["files"]}
    assert actions["Dockerfile"] == actions["tests/test_transform.py"] == "overwritten"
    assert actions["pyproject.toml"] == "merged"
    assert (project / "Dockerfile").read_text().startswith("# The image the pipeline runs")
    pyproject = (project / "pyproject.toml").read_text()
    assert 'image = "localhost:5000/proj"' in pyproject and "line-length = 99" in pyproject
    assert pyproject.count("[tool.invoke-pachyderm]") == 1


def test_init_task_and_bad_values(tmp_path, local_env):
    project = tmp_path / "here"
    project.mkdir()
    (project / "tasks.py").write_text("from invoke_pachyderm import ns\n")
    result = invoke(project, local_env, "init", "--name", "demo", "--input-repo", "raw", check=False)
    assert result.returncode == 0, result.stderr
    assert ["skipped", "tasks.py"] in [line.split()[:2] for line in result.stdout.splitlines()]  # the user's own
    assert (project / "tasks.py").read_text() == "from invoke_pachyderm import ns\n"
    assert (project / "src/demo/transform.py").is_file()
    assert '"repo": "raw"' in (project / "templates/pipeline.json.j2").read_text()

    tagged = run([CLI, "init", tmp_path / "x", "--image", "localhost:5000/x:latest"], tmp_path, local_env)
    assert tagged.returncode == 2 and tagged.stdout == ""
    assert tagged.stderr.strip().splitlines() == [
        "error: image 'localhost:5000/x:latest' has a tag or digest; give the repository only "
        "(every build is tagged with its git commit)"
    ]
    same = run([CLI, "init", tmp_path / "y", "--name", "data"], tmp_path, local_env)
    assert same.returncode == 2 and "input repo 'data' has the pipeline's name" in same.stderr
    assert run([CLI, "--help"], tmp_path, local_env).returncode == 0
    helped = run([CLI, "init", "--help"], tmp_path, local_env)
    assert helped.returncode == 0 and "--base-image" in helped.stdout


def test_wheel_ships_the_templates_and_scaffolds_from_them(tmp_path, local_env):
    wheels = tmp_path / "wheels"
    run([sys.executable, "-m", "pip", "wheel", REPO_ROOT, "--no-deps", "-q", "-w", wheels], tmp_path, {**local_env, "HOME": str(Path.home())}, check=True)
    (wheel,) = wheels.glob("invoke_pachyderm-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "unpacked")
    for template in (
        "project/dot-gitignore",
        "project/dot-dockerignore",
        "project/dot-github/workflows/pachyderm.yml",
        "project/templates/pipeline.json.j2",
        "project/src/__module__/transform.py.tmpl",
        "project/tests/test_transform.py.tmpl",
        "project/tasks.py",
        "project/pyproject.toml",
        "project/Dockerfile",
    ):
        assert f"invoke_pachyderm/scaffold/templates/{template}" in names

    # Scaffold from the unpacked wheel, not from the source tree.
    target = tmp_path / "from-wheel"
    code = (
        "import sys, invoke_pachyderm.scaffold.writer as s; "
        "print(s.template_root()); "
        f"sys.exit(len(s.scaffold({str(target)!r}, name='w').skipped))"
    )
    env = {**local_env, "PYTHONPATH": str(tmp_path / "unpacked")}
    result = run([sys.executable, "-c", code], tmp_path, env, check=True)
    assert result.stdout.strip().startswith(str(tmp_path / "unpacked"))
    assert {".gitignore", ".dockerignore", ".github/workflows/pachyderm.yml"} <= files_of(target)
