"""The tag tells the truth (issue 13): an image tagged with commit X holds exactly what X holds.

End to end through `invoke`, on the real Docker Engine, registry and the pachd double.
"""
from __future__ import annotations

import json

import pytest

from project_helpers import make_project

COPY_ALL = 'COPY . /ctx/\nENTRYPOINT ["/busybox"]\n'


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    dockerfile = project.root / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace('ENTRYPOINT ["/busybox"]\n', COPY_ALL))
    project.write("app.py", "print('committed')\n")
    project.commit("copy the whole context")
    return project


def settings(project, text: str) -> None:
    project.write("pyproject.toml", (project.root / "pyproject.toml").read_text() + text)


def assert_refused(result, code: int, *words: str, prefix: str = "error: ") -> str:
    assert result.code == code, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith(prefix)]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def assert_nothing_shipped(registry, unique_repo, cluster) -> None:
    assert registry.tags(unique_repo) == []
    assert cluster.pipeline_versions() == {}


def files_in_image(docker_client, ref: str) -> set[str]:
    output = docker_client.containers.run(ref, ["find", "/ctx"], remove=True).decode()
    return {line.removeprefix("/ctx/") for line in output.split() if line != "/ctx"}


def test_files_git_ignores_stay_out_of_the_image_unless_declared_generated(
    project, registry, unique_repo, docker_client
):
    project.write(".gitignore", "build/\n*.bin\ndist/\n")
    settings(project, 'generated_inputs = ["dist/*.whl"]\n')
    project.commit("ignore blobs; declare the generated wheel")
    project.write("blob.bin", "400 MB of something nobody meant to ship\n")
    project.write("dist/app-1.0-py3-none-any.whl", "a wheel made by a build step\n")
    project.write("dist/notes.txt", "ignored and not declared\n")
    result = project.invoke("deploy")
    assert result.code == 0, result.stderr
    files = files_in_image(docker_client, f"{registry.host}/{unique_repo}:{project.head}")
    assert "app.py" in files and "dist/app-1.0-py3-none-any.whl" in files
    assert "blob.bin" not in files and "dist/notes.txt" not in files
    assert not any(name == ".git" or name.startswith(".git/") for name in files)


def test_a_declared_generated_input_that_is_missing_is_refused(project, registry, unique_repo, cluster):
    settings(project, 'generated_inputs = ["dist/*.whl"]\n')
    project.write(".gitignore", "build/\ndist/\n")
    project.commit("declare a wheel")
    result = project.invoke("deploy")
    assert_refused(result, 2, "generated_inputs", "dist/*.whl", "matches no file")
    assert_nothing_shipped(registry, unique_repo, cluster)


@pytest.mark.parametrize(
    "out_dir, words",
    [
        (".", ["would hold the project"]),
        (".git", ["is inside .git"]),  # config.py refuses it first, naming the key
        ("templates", ["holds the template templates/edges.json.j2"]),
        ("src", ["holds src/model.py", "build"]),
    ],
)
def test_an_out_dir_overlapping_what_is_shipped_is_refused_even_when_it_hides_a_dirty_edit(
    project, registry, unique_repo, cluster, out_dir, words
):
    project.write("src/model.py", "weights = 1\n")
    project.commit("model")
    settings(project, f'out_dir = "{out_dir}"\n')
    project.commit("render into the project")
    project.write("app.py", "print('tampered, not committed')\n")  # the edit the dirty check must not miss
    project.write("templates/edges.json.j2", (project.root / "templates/edges.json.j2").read_text().replace("/*", "/"))
    result = project.invoke("deploy")
    named = f"'out_dir' = {out_dir!r}" if out_dir == ".git" else f"out_dir {out_dir!r}"
    assert_refused(result, 2, named, *words)
    assert_nothing_shipped(registry, unique_repo, cluster)
    assert not (project.root / ".git" / "edges.json").exists()


def test_the_out_dir_flag_is_checked_too(project):
    result = project.invoke("render-spec", "--out-dir", "templates")
    assert_refused(result, 2, "task flag: out_dir 'templates'")
    assert not (project.root / "templates" / "edges.json").exists()


def test_inputs_tags_refuse_a_dirty_tree(project, registry, unique_repo, cluster):
    settings(project, 'tag = "inputs"\n')
    project.commit("inputs tags")
    project.write("app.py", "print('tampered, not committed')\n")
    result = project.invoke("deploy")
    assert_refused(result, 4, "uncommitted changes", "an inputs hash would lie", "--allow-dirty")
    assert_nothing_shipped(registry, unique_repo, cluster)


def test_inputs_tags_hash_what_the_commit_holds(project, registry, unique_repo, docker_client):
    settings(project, 'tag = "inputs"\n')
    project.write(".gitignore", "build/\n*.bin\n")
    project.write(".dockerignore", "templates\n")
    project.commit("inputs tags")
    assert project.invoke("deploy").code == 0
    (tag,) = registry.tags(unique_repo)
    project.write("huge.bin", "ignored by git\n")
    project.write("templates/edges.json.j2", (project.root / "templates/edges.json.j2").read_text().replace("/*", "/"))
    project.commit("spec only")
    result = project.invoke("deploy")
    assert result.code == 0, result.stderr
    assert registry.tags(unique_repo) == [tag]  # same inputs, same tag, not rebuilt
    assert "already in the registry" in result.stderr
    assert "huge.bin" not in files_in_image(docker_client, f"{registry.host}/{unique_repo}:{tag}")


def test_a_template_git_ignores_is_refused(project, registry, unique_repo, cluster):
    project.write(".gitignore", "build/\ntemplates/local-*\n")
    project.commit("ignore local templates")
    project.pipeline("local-edges", "images")
    result = project.invoke("deploy")
    assert_refused(result, 4, "templates/local-edges.json.j2", "ignored by git", "commit it")
    assert_nothing_shipped(registry, unique_repo, cluster)


def test_a_dockerfile_that_is_not_committed_is_refused(project, registry, unique_repo, cluster):
    project.git("rm", "-q", "--cached", "Dockerfile")
    project.write(".gitignore", "build/\nDockerfile\n")
    project.commit("Dockerfile no longer committed")
    result = project.invoke("build")
    assert_refused(result, 4, "Dockerfile 'Dockerfile' is not in commit", project.head[:12], "commit it")
    assert_nothing_shipped(registry, unique_repo, cluster)


def test_a_pull_request_whose_head_tree_differs_from_the_checkout_is_refused(
    project, tmp_path, registry, unique_repo, cluster
):
    head = project.head
    project.write("app.py", "print('only in the merge commit')\n")
    merge = project.commit("what GitHub's merge commit would add")
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"sha": head, "ref": "feature"}}}))
    github = {
        "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event),
        "GITHUB_SHA": merge,
    }
    result = project.invoke("deploy", env=github)
    assert_refused(result, 4, head[:12], "holds other files than the checkout", "ref:", prefix="::error::")
    assert_nothing_shipped(registry, unique_repo, cluster)
    event.write_text(json.dumps({"pull_request": {"head": {"sha": "f" * 40, "ref": "feature"}}}))
    result = project.invoke("deploy", env=github)
    assert_refused(result, 4, "is not in this clone", prefix="::error::")
