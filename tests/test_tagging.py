"""Image tags: the commit by default, honest dirty tags, templates, and `tag = "inputs"`."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from invoke_pachyderm.core.config import ImageConfig, load_settings
from invoke_pachyderm.core.errors import ConfigError, GitStateError
from invoke_pachyderm.core.gitinfo import GitInfo, read_git_info
from invoke_pachyderm.backends.build_context import build_context
from invoke_pachyderm.stages.tagging import image_tag, inputs_digest
from git_helpers import commit_all, run_git

SHA = re.compile(r"[0-9a-f]{40}")


@pytest.fixture(autouse=True)
def _isolated(isolated_env):
    """Every test here runs isolated (see conftest.isolated_env)."""
    return isolated_env


@pytest.fixture
def project(tmp_path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    run_git(path, "init", "-q", "-b", "main")
    (path / "Dockerfile").write_text("FROM busybox\nCOPY . /app\n")
    (path / "app.py").write_text("print('hi')\n")
    commit_all(path)
    return path


def settings_for(project: Path, **flags):
    return load_settings(project, flags={"image": "reg/app", **flags}, environ={})


def tag_of(project: Path, allow_dirty: bool = False, **flags) -> str:
    settings = settings_for(project, **flags)
    (image,) = settings.require_images()
    return image_tag(settings, image, read_git_info(project, environ={}), allow_dirty=allow_dirty)


def git_info(commit: str = "0123456789abcdef" * 2 + "01234567", branch: str = "main") -> GitInfo:
    return GitInfo(commit=commit, branch=branch, dirty=False, dirty_digest=None, repo_url=None)


# -- commit tags --------------------------------------------------------------------------


def test_default_tag_is_the_full_commit_sha(project):
    assert tag_of(project) == run_git(project, "rev-parse", "HEAD")
    (project / "app.py").write_text("print('v2')\n")
    second = commit_all(project)
    assert tag_of(project) == second


def test_dirty_tree_is_refused_without_allow_dirty(project):
    (project / "app.py").write_text("print('uncommitted')\n")
    with pytest.raises(GitStateError, match="--allow-dirty") as info:
        tag_of(project)
    assert info.value.exit_code == 4


def test_dirty_tag_can_never_be_a_clean_commit_tag(project):
    commit = run_git(project, "rev-parse", "HEAD")
    (project / "app.py").write_text("print('uncommitted')\n")
    first = tag_of(project, allow_dirty=True)
    assert first != commit
    assert not SHA.fullmatch(first)
    assert first.startswith("dirty-") and commit[:12] in first
    (project / "app.py").write_text("print('other uncommitted')\n")
    second = tag_of(project, allow_dirty=True)
    assert second != first and not SHA.fullmatch(second)


def test_dirty_tag_ignores_the_template(project):
    (project / "new.txt").write_text("x")
    assert tag_of(project, allow_dirty=True, tag="{short_commit}").startswith("dirty-")


def test_allow_dirty_on_a_clean_tree_still_gives_the_commit(project):
    assert tag_of(project, allow_dirty=True) == run_git(project, "rev-parse", "HEAD")


# -- templates -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template, branch, expected",
    [
        ("{short_commit}", "main", "{short}"),
        ("{branch}-{short_commit}", "feature/login", "feature-login-{short}"),
        ("{commit}-{branch}", "Release 1.0!", "{commit}-Release-1.0"),
        ("v1-{commit}", "main", "v1-{commit}"),
    ],
)
def test_tag_templates(project, template, branch, expected):
    info = git_info(branch=branch)
    settings = settings_for(project, tag=template)
    wanted = expected.format(short=info.short_commit, commit=info.commit)
    assert image_tag(settings, settings.require_images()[0], info) == wanted


def test_template_with_a_real_branch(project):
    run_git(project, "checkout", "-q", "-b", "team/feature_x")
    commit = run_git(project, "rev-parse", "HEAD")
    assert tag_of(project, tag="{branch}-{short_commit}") == f"team-feature_x-{commit[:12]}"


@pytest.mark.parametrize(
    "template",
    ["{nope}-{commit}", "{0}{commit}", "{commit", "{commit!z}", "{commit.real}-{commit}", "{commit[x]}{commit}"],
)
def test_invalid_templates_are_config_errors(project, template):
    settings = settings_for(project, tag=template)
    with pytest.raises(ConfigError) as info:
        image_tag(settings, settings.require_images()[0], git_info())
    assert "is invalid" in str(info.value)
    assert "task flag" in str(info.value)
    assert info.value.exit_code == 2


@pytest.mark.parametrize("template", ["-{commit}", "{commit}/x", "{commit}{commit}{commit}{commit}"])
def test_templates_giving_an_invalid_docker_tag(project, template):
    settings = settings_for(project, tag=template)
    with pytest.raises(ConfigError, match="not a valid Docker tag"):
        image_tag(settings, settings.require_images()[0], git_info())


@pytest.mark.parametrize("template", ["{branch}", "latest", "stable-{branch}"])
def test_template_without_the_commit_is_refused(project, template):
    settings = settings_for(project, tag=template)
    with pytest.raises(ConfigError, match="does not contain the commit"):
        image_tag(settings, settings.require_images()[0], git_info())


# -- tag = "inputs" --------------------------------------------------------------------------


@pytest.fixture
def ctx(tmp_path) -> Path:
    """A project whose build context is `ctx/`, with a Dockerfile inside it and files beside it."""
    project = tmp_path / "inputs-project"
    (project / "ctx" / "src").mkdir(parents=True)
    (project / "ctx" / "Dockerfile").write_text("FROM busybox\nCOPY . /app\n")
    (project / "ctx" / "src" / "main.py").write_text("print(1)\n")
    (project / "ctx" / "README.md").write_text("docs\n")
    (project / "outside.txt").write_text("not in the context\n")
    return project


def image(**overrides) -> ImageConfig:
    fields = {"name": "main", "repository": "reg/app", "dockerfile": "ctx/Dockerfile", "context": "ctx"}
    return ImageConfig(**{**fields, **overrides})


def digest(project: Path, **overrides) -> str:
    return inputs_digest(load_settings(project, environ={}), image(**overrides))


def context_files(project: Path) -> list[str]:
    """What Docker is sent from the `ctx/` context of `project`."""
    return build_context(load_settings(project, environ={}), image()).files()


def committed(project: Path) -> GitInfo:
    run_git(project, "init", "-q", "-b", "main")
    commit_all(project)
    return read_git_info(project, environ={})


def test_inputs_tag_format(ctx):
    settings = load_settings(ctx, flags={"tag": "inputs"}, environ={})
    tag = image_tag(settings, image(), committed(ctx))
    assert tag == "inputs-" + digest(ctx)[:32]
    assert re.fullmatch(r"inputs-[0-9a-f]{32}", tag)


def test_inputs_tag_is_the_same_for_commits_with_the_same_image_inputs(ctx):
    settings = load_settings(ctx, flags={"tag": "inputs"}, environ={})
    first = image_tag(settings, image(), committed(ctx))
    (ctx / "outside.txt").write_text("docs only\n")
    assert image_tag(settings, image(), read_git_info(ctx, environ={}), allow_dirty=True).startswith("dirty-")
    commit_all(ctx)
    assert image_tag(settings, image(), read_git_info(ctx, environ={})) == first


def test_inputs_tag_refuses_a_dirty_tree(ctx):
    settings = load_settings(ctx, flags={"tag": "inputs"}, environ={})
    committed(ctx)
    (ctx / "ctx" / "src" / "main.py").write_text("print('uncommitted')\n")
    with pytest.raises(GitStateError, match="an inputs hash would lie"):
        image_tag(settings, image(), read_git_info(ctx, environ={}))


def test_inputs_tag_hashes_the_commit_not_files_git_ignores(ctx):
    settings = load_settings(ctx, flags={"tag": "inputs"}, environ={})
    (ctx / ".gitignore").write_text("*.bin\n")
    before = image_tag(settings, image(), committed(ctx))
    (ctx / "ctx" / "blob.bin").write_bytes(b"\0" * 1000)
    assert image_tag(settings, image(), read_git_info(ctx, environ={})) == before


def test_inputs_digest_is_stable(ctx):
    assert digest(ctx) == digest(ctx)


@pytest.mark.parametrize(
    "change",
    [
        lambda p: (p / "ctx" / "Dockerfile").write_text("FROM busybox\nCOPY . /srv\n"),
        lambda p: (p / "ctx" / "src" / "main.py").write_text("print(2)\n"),
        lambda p: (p / "ctx" / "src" / "new.py").write_text(""),
        lambda p: (p / "ctx" / "README.md").unlink(),
        lambda p: (p / "ctx" / "README.md").rename(p / "ctx" / "README.txt"),
        lambda p: os.chmod(p / "ctx" / "src" / "main.py", 0o755),
    ],
    ids=["dockerfile", "content", "new-file", "deleted-file", "renamed-file", "executable-bit"],
)
def test_inputs_digest_changes_with_the_inputs(ctx, change):
    before = digest(ctx)
    change(ctx)
    assert digest(ctx) != before


def test_inputs_digest_changes_with_build_args_and_target(ctx):
    base = digest(ctx)
    assert digest(ctx, build_args={"VERSION": "1"}) != base
    assert digest(ctx, build_args={"VERSION": "2"}) != digest(ctx, build_args={"VERSION": "1"})
    assert digest(ctx, build_args={"A": "1", "B": "2"}) == digest(ctx, build_args={"B": "2", "A": "1"})
    assert digest(ctx, target="prod") != base
    assert digest(ctx, target="prod") != digest(ctx, target="dev")


def test_inputs_digest_ignores_files_outside_the_context(ctx):
    before = digest(ctx)
    (ctx / "outside.txt").write_text("changed\n")
    (ctx / "another.txt").write_text("new\n")
    assert digest(ctx) == before


def test_dockerfile_outside_the_context_still_counts(ctx):
    (ctx / "docker").mkdir()
    (ctx / "docker" / "Dockerfile").write_text("FROM busybox\n")
    before = digest(ctx, dockerfile="docker/Dockerfile")
    (ctx / "docker" / "Dockerfile").write_text("FROM alpine\n")
    assert digest(ctx, dockerfile="docker/Dockerfile") != before


def test_inputs_digest_ignores_dockerignored_files(ctx):
    (ctx / "ctx" / ".dockerignore").write_text("# comment\n\n*.md\n/build\n.venv\n")
    (ctx / "ctx" / "build").mkdir()
    (ctx / "ctx" / "build" / "out.bin").write_text("1")
    (ctx / "ctx" / ".venv" / "lib").mkdir(parents=True)
    (ctx / "ctx" / ".venv" / "lib" / "x.py").write_text("1")
    before = digest(ctx)
    (ctx / "ctx" / "README.md").write_text("changed docs\n")
    (ctx / "ctx" / "build" / "out.bin").write_text("2")
    (ctx / "ctx" / ".venv" / "lib" / "x.py").write_text("2")
    (ctx / "ctx" / "NOTES.md").write_text("new\n")
    assert digest(ctx) == before
    (ctx / "ctx" / "src" / "main.py").write_text("print(3)\n")
    assert digest(ctx) != before


def test_dockerignore_itself_is_an_input(ctx):
    (ctx / "ctx" / ".dockerignore").write_text("*.md\n")
    before = digest(ctx)
    (ctx / "ctx" / ".dockerignore").write_text("*.md\n*.tmp\n")
    assert digest(ctx) != before


def test_dockerignore_exceptions(ctx):
    docs = ctx / "ctx" / "docs"
    docs.mkdir()
    (docs / "keep.md").write_text("k\n")
    (docs / "drop.md").write_text("d\n")
    (ctx / "ctx" / ".dockerignore").write_text("*.md\ndocs\n!docs/keep.md\n!README.md\n")
    files = context_files(ctx)
    assert "docs/keep.md" in files and "README.md" in files
    assert "docs/drop.md" not in files
    before = digest(ctx)
    (docs / "drop.md").write_text("changed\n")
    assert digest(ctx) == before
    (docs / "keep.md").write_text("changed\n")
    assert digest(ctx) != before


def test_dockerignore_last_match_wins(ctx):
    (ctx / "ctx" / ".dockerignore").write_text("!README.md\n*.md\n")
    assert "README.md" not in context_files(ctx)


def test_dockerignore_double_star(ctx):
    deep = ctx / "ctx" / "a" / "b"
    deep.mkdir(parents=True)
    (deep / "x.pyc").write_text("1")
    (ctx / "ctx" / "top.pyc").write_text("1")
    (deep / "x.py").write_text("1")
    (deep / "data.csv").write_text("1")
    (ctx / "ctx" / "data.csv").write_text("1")
    (ctx / "ctx" / ".dockerignore").write_text("**/*.pyc\na/**/*.csv\n")
    files = context_files(ctx)
    assert "a/b/x.pyc" not in files and "top.pyc" not in files
    assert "a/b/data.csv" not in files
    assert "data.csv" in files and "a/b/x.py" in files


def test_dockerignore_single_star_does_not_cross_directories(ctx):
    (ctx / "ctx" / "src" / "deep").mkdir()
    (ctx / "ctx" / "src" / "deep" / "y.py").write_text("1")
    (ctx / "ctx" / ".dockerignore").write_text("src/*.py\n")
    files = context_files(ctx)
    assert "src/main.py" not in files
    assert "src/deep/y.py" in files


def test_context_files_skip_the_git_directory(ctx):
    run_git(ctx / "ctx", "init", "-q")
    files = context_files(ctx)
    assert not any(f.startswith(".git/") for f in files)
    assert files == sorted(files)
    (ctx / "ctx" / ".dockerignore").write_text("!.git\n")  # the user's patterns come after ours
    assert any(f.startswith(".git/") for f in context_files(ctx))


def test_dangling_symlink_in_the_context(ctx):
    os.symlink("does-not-exist", ctx / "ctx" / "dangling")
    before = digest(ctx)
    (ctx / "ctx" / "dangling").unlink()
    os.symlink("elsewhere", ctx / "ctx" / "dangling")
    assert digest(ctx) != before


def test_missing_context_or_dockerfile(ctx):
    with pytest.raises(ConfigError, match="build context 'nope' is not a directory"):
        digest(ctx, context="nope")
    with pytest.raises(ConfigError, match="Dockerfile 'ctx/Missing' not found"):
        digest(ctx, dockerfile="ctx/Missing")


# -- the default tag: the last commit that changed the image's inputs ----------------------------


def write(project: Path, relative: str, text: str) -> None:
    path = project / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_spec_only_commit_keeps_the_tag_of_the_commit_with_the_inputs(project):
    write(project, "templates/edges.json.j2", "{}\n")
    write(project, "app.py", "print('v2')\n")
    code = commit_all(project, "code and a spec")
    assert tag_of(project) == code
    write(project, "templates/edges.json.j2", '{"description": "x"}\n')
    write(project, "templates/new.json.j2", "{}\n")
    spec_only = commit_all(project, "specs only")
    tag = tag_of(project)
    assert tag == code != spec_only
    assert run_git(project, "cat-file", "-t", tag) == "commit"  # `git show` opens it
    assert run_git(project, "rev-parse", f"{tag}:app.py") == run_git(project, "rev-parse", "HEAD:app.py")


def test_files_outside_the_context_or_dockerignored_keep_the_tag(project):
    (project / "ctx").mkdir()
    for name in ("Dockerfile", "app.py"):
        (project / name).rename(project / "ctx" / name)
    write(project, "ctx/.dockerignore", "*.md\n")
    write(project, "pyproject.toml", '[tool.invoke-pachyderm]\ncontext = "ctx"\ndockerfile = "ctx/Dockerfile"\n')
    inputs = commit_all(project, "a context of its own")
    flags = {}
    write(project, "docs/usage.md", "outside\n")
    write(project, "ctx/NOTES.md", "ignored\n")
    commit_all(project, "docs")
    assert tag_of(project, **flags) == inputs
    write(project, "ctx/.dockerignore", "*.md\n*.tmp\n")  # sent to Docker too
    changed = commit_all(project, "dockerignore")
    assert tag_of(project, **flags) == changed


@pytest.mark.parametrize(
    "change",
    [
        lambda p: (p / "app.py").unlink(),
        lambda p: os.chmod(p / "app.py", 0o755),
        lambda p: write(p, "Dockerfile", "FROM busybox\nCOPY . /srv\n"),
        lambda p: write(p, "lib/new.py", ""),
    ],
    ids=["deleted-file", "executable-bit", "dockerfile", "new-file"],
)
def test_a_change_of_the_inputs_is_a_new_tag(project, change):
    change(project)
    changed = commit_all(project)
    assert tag_of(project) == changed


def test_build_args_in_pyproject_are_inputs_even_outside_the_context(project):
    (project / "ctx").mkdir()
    (project / "Dockerfile").rename(project / "ctx" / "Dockerfile")
    write(project, "pyproject.toml", '[tool.invoke-pachyderm]\ncontext = "ctx"\ndockerfile = "ctx/Dockerfile"\n'
          'build_args = {V = "1"}\n')
    first = commit_all(project)
    assert tag_of(project) == first
    write(project, "pyproject.toml", (project / "pyproject.toml").read_text().replace('"1"', '"2"'))
    changed = commit_all(project)
    assert tag_of(project) == changed != first


def test_build_settings_from_the_environment_give_the_head_commit(project):
    write(project, "templates/edges.json.j2", "{}\n")
    head = commit_all(project, "spec only")
    settings = load_settings(project, flags={"image": "reg/app"}, environ={"INVOKE_PACHYDERM_BUILD_ARGS": '{"V": "1"}'})
    (image,) = settings.require_images()
    assert image_tag(settings, image, read_git_info(project, environ={})) == head


def test_spec_templates_and_out_dir_are_not_sent_nor_hashed(tmp_path):
    project = tmp_path / "p"
    write(project, "Dockerfile", "FROM busybox\nCOPY . /app\n")
    write(project, "app.py", "1\n")
    write(project, "templates/a.json.j2", "{}\n")
    settings = load_settings(project, flags={"image": "reg/app", "tag": "inputs"}, environ={})
    (config,) = settings.require_images()
    assert build_context(settings, config).files() == ["Dockerfile", "app.py"]
    before = inputs_digest(settings, config)
    write(project, "build/pipelines/a.json", '{"image": "reg/app:inputs-..."}\n')  # a render
    write(project, "templates/a.json.j2", '{"description": "changed"}\n')
    assert build_context(settings, config).files() == ["Dockerfile", "app.py"]
    assert inputs_digest(settings, config) == before


# -- several images: one shared `git log`, the same commits as each image's own ------------------
TWO_IMAGES = """[tool.invoke-pachyderm]
[[tool.invoke-pachyderm.images]]
name = "a"
repository = "reg/a"
context = "a"
dockerfile = "a/Dockerfile"
[[tool.invoke-pachyderm.images]]
name = "b"
repository = "reg/b"
context = "b"
dockerfile = "b/Dockerfile"
"""


def two_image_project(tmp_path) -> Path:
    project = tmp_path / "two"
    for name in ("a", "b"):
        write(project, f"{name}/Dockerfile", "FROM busybox\nCOPY . /app\n")
        write(project, f"{name}/code.txt", f"{name} 1\n")
    write(project, "pyproject.toml", TWO_IMAGES)
    run_git(project, "init", "-q", "-b", "main")
    commit_all(project, "both")
    return project


def tags(project: Path) -> dict[str, str]:
    from invoke_pachyderm.stages.tagging import tag_images

    settings = load_settings(project, environ={})
    return {name: artifact.tag for name, artifact in
            tag_images(settings, settings.require_images(), read_git_info(project, environ={})).items()}


def own_logs(project: Path) -> dict[str, str]:
    settings = load_settings(project, environ={})
    info = read_git_info(project, environ={})
    return {image.name: image_tag(settings, image, info) for image in settings.require_images()}


def test_each_image_gets_the_last_commit_of_its_own_inputs(tmp_path):
    project = two_image_project(tmp_path)
    write(project, "b/code.txt", "b 2\n")
    b_change = commit_all(project, "b")
    write(project, "a/code.txt", "a 2\n")
    a_change = commit_all(project, "a")
    write(project, "templates/x.json.j2", "{}\n")
    commit_all(project, "a spec only")
    assert tags(project) == own_logs(project) == {"a": a_change, "b": b_change}


def test_past_the_shared_walk_limit_each_image_reads_its_own_log(tmp_path, monkeypatch):
    from invoke_pachyderm.stages import tagging

    project = two_image_project(tmp_path)
    write(project, "b/code.txt", "b 2\n")
    b_change = commit_all(project, "b")
    for round_ in range(3):  # more commits of a's inputs than the (lowered) walk limit
        write(project, "a/code.txt", f"a {round_ + 2}\n")
        a_change = commit_all(project, f"a {round_}")
    monkeypatch.setattr(tagging, "WALK_LIMIT", 2)
    assert tags(project) == own_logs(project) == {"a": a_change, "b": b_change}
    monkeypatch.setattr(tagging, "WALK_LIMIT", 1)  # each image's own log, limited too
    write(project, "b/code.txt", "b 3\n")
    commit_all(project, "b again")
    for round_ in range(2):
        write(project, "a/code.txt", f"a x{round_}\n")
        commit_all(project, f"a x{round_}")
    head = run_git(project, "rev-parse", "HEAD")
    assert tags(project) == own_logs(project)
    assert tags(project)["a"] == head
