"""What git says about the commit: real repositories in tmp_path, driven with the git CLI."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from invoke_pachyderm.core.errors import GitStateError
from git_helpers import commit_all, run_git
from invoke_pachyderm.core.gitinfo import (
    github_overrides,
    is_ancestor,
    is_valid_tag,
    read_git_info,
    sanitize_tag_part,
    strip_credentials,
)


@pytest.fixture(autouse=True)
def _isolated(isolated_env):
    """Every test here runs isolated (see conftest.isolated_env)."""
    return isolated_env


@pytest.fixture
def repo(tmp_path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    run_git(path, "init", "-q", "-b", "main")
    (path / "app.py").write_text("print('hi')\n")
    (path / "sub").mkdir()
    (path / "sub" / "tracked.txt").write_text("one\n")
    commit_all(path, "initial")
    return path


def test_commit_and_branch_of_a_clean_repo(repo):
    info = read_git_info(repo, environ={})
    assert info.commit == run_git(repo, "rev-parse", "HEAD")
    assert re.fullmatch(r"[0-9a-f]{40}", info.commit)
    assert info.short_commit == info.commit[:12]
    assert info.branch == "main"
    assert info.dirty is False and info.dirty_digest is None
    assert info.repo_url is None


def test_branch_follows_checkout_and_commit_follows_new_commits(repo):
    first = read_git_info(repo, environ={}).commit
    run_git(repo, "checkout", "-q", "-b", "feature/x")
    (repo / "app.py").write_text("print('bye')\n")
    second = commit_all(repo)
    info = read_git_info(repo, environ={})
    assert info.branch == "feature/x"
    assert info.commit == second != first


def test_detached_head_branch_is_head_unless_github_says(repo):
    run_git(repo, "checkout", "-q", "--detach")
    assert read_git_info(repo, environ={}).branch == "HEAD"
    environ = {"GITHUB_ACTIONS": "true", "GITHUB_REF_NAME": "release"}
    assert read_git_info(repo, environ=environ).branch == "release"


def test_modified_tracked_file_is_dirty(repo):
    (repo / "sub" / "tracked.txt").write_text("two\n")
    info = read_git_info(repo, environ={})
    assert info.dirty is True
    assert re.fullmatch(r"[0-9a-f]{12}", info.dirty_digest)


def test_untracked_file_is_dirty_but_ignored_file_is_not(repo):
    (repo / ".gitignore").write_text("*.log\n")
    commit_all(repo)
    (repo / "debug.log").write_text("noise\n")
    assert read_git_info(repo, environ={}).dirty is False
    (repo / "new.py").write_text("x = 1\n")
    assert read_git_info(repo, environ={}).dirty is True


def test_staged_change_is_dirty(repo):
    (repo / "app.py").write_text("print('staged')\n")
    run_git(repo, "add", "app.py")
    assert read_git_info(repo, environ={}).dirty is True


def test_dirty_digest_follows_the_content_of_the_changes(repo):
    (repo / "app.py").write_text("print(1)\n")
    first = read_git_info(repo, environ={}).dirty_digest
    assert read_git_info(repo, environ={}).dirty_digest == first  # stable
    (repo / "app.py").write_text("print(2)\n")
    assert read_git_info(repo, environ={}).dirty_digest != first


def test_dirty_digest_follows_untracked_file_content(repo):
    (repo / "new.txt").write_text("a\n")
    first = read_git_info(repo, environ={}).dirty_digest
    (repo / "new.txt").write_text("b\n")
    assert read_git_info(repo, environ={}).dirty_digest != first


def test_dirty_digest_follows_files_in_untracked_directories(repo):
    (repo / "newdir").mkdir()
    (repo / "newdir" / "x.txt").write_text("a\n")
    first = read_git_info(repo, environ={}).dirty_digest
    (repo / "newdir" / "x.txt").write_text("b\n")
    assert read_git_info(repo, environ={}).dirty_digest != first


def test_dirty_digest_of_a_project_in_a_subdirectory_follows_untracked_content(repo):
    project = repo / "sub"
    (project / "new.txt").write_text("a\n")
    first = read_git_info(project, environ={}).dirty_digest
    (project / "new.txt").write_text("b\n")
    assert read_git_info(project, environ={}).dirty_digest != first


def test_dirtiness_is_limited_to_the_project_directory(repo):
    project = repo / "sub"
    (repo / "app.py").write_text("changed outside the project\n")
    (repo / "elsewhere.txt").write_text("untracked outside\n")
    info = read_git_info(project, environ={})
    assert info.dirty is False
    assert info.commit == run_git(repo, "rev-parse", "HEAD")
    (project / "tracked.txt").write_text("changed inside\n")
    assert read_git_info(project, environ={}).dirty is True


def test_out_dir_is_ignored(repo):
    out = repo / "build" / "pipelines"
    out.mkdir(parents=True)
    (out / "edges.json").write_text("{}\n")
    assert read_git_info(repo, environ={}).dirty is True
    assert read_git_info(repo, environ={}, ignore=("build/pipelines",)).dirty is False
    (repo / "app.py").write_text("still dirty elsewhere\n")
    assert read_git_info(repo, environ={}, ignore=("build/pipelines",)).dirty is True


def test_tracked_out_dir_changes_are_ignored_too(repo):
    out = repo / "out"
    out.mkdir()
    (out / "a.json").write_text("{}\n")
    commit_all(repo)
    (out / "a.json").write_text('{"changed": true}\n')
    assert read_git_info(repo, environ={}, ignore=("out",)).dirty is False


def test_not_a_repository(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(GitStateError, match="not a git repository") as info:
        read_git_info(plain, environ={})
    assert info.value.exit_code == 4


def test_repository_without_a_commit(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    run_git(empty, "init", "-q")
    (empty / "file").write_text("x")
    with pytest.raises(GitStateError, match="no commit yet") as info:
        read_git_info(empty, environ={})
    assert info.value.exit_code == 4


def test_remote_url_has_credentials_stripped(repo):
    run_git(repo, "remote", "add", "origin", "https://user:ghp_secrettoken@github.com/org/repo.git")
    info = read_git_info(repo, environ={})
    assert info.repo_url == "https://github.com/org/repo.git"
    assert "ghp_secrettoken" not in repr(info)


@pytest.mark.parametrize(
    "url, expected",
    [
        ("https://user:tok@host/x.git", "https://host/x.git"),
        ("https://x-access-token:tok@github.com:8443/o/r.git?x=1#f", "https://github.com:8443/o/r.git"),
        ("ssh://git@host/x.git", "ssh://host/x.git"),
        ("https://host/x.git", "https://host/x.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        (None, None),
        ("", ""),
    ],
)
def test_strip_credentials(url, expected):
    assert strip_credentials(url) == expected


def pull_request_event(tmp_path: Path, head_sha: str, head_ref: str = "feature") -> Path:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"pull_request": {"head": {"sha": head_sha, "ref": head_ref}}}))
    return event


def test_pull_request_uses_the_head_sha_not_the_merge_commit(repo, tmp_path):
    head = "1" * 40
    environ = {
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(pull_request_event(tmp_path, head, "from-event")),
        "GITHUB_SHA": "2" * 40,
        "GITHUB_HEAD_REF": "my-feature",
    }
    info = read_git_info(repo, environ=environ)
    assert info.commit == head
    assert info.branch == "my-feature"
    environ.pop("GITHUB_HEAD_REF")
    assert read_git_info(repo, environ=environ).branch == "from-event"
    environ["GITHUB_EVENT_NAME"] = "pull_request_target"
    assert read_git_info(repo, environ=environ).commit == head


def test_github_overrides_only_apply_in_github_actions_pull_requests(tmp_path):
    event = pull_request_event(tmp_path, "1" * 40)
    base = {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(event)}
    assert github_overrides("a" * 40, "main", base) == ("a" * 40, "main")
    push = {**base, "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push"}
    assert github_overrides("a" * 40, "main", push) == ("a" * 40, "main")


def test_unreadable_event_falls_back_to_git(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"pull_request": {}}')
    environ = {"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": str(bad)}
    assert github_overrides("a" * 40, "main", environ) == ("a" * 40, "main")
    environ["GITHUB_EVENT_PATH"] = str(tmp_path / "missing.json")
    assert github_overrides("a" * 40, "main", environ) == ("a" * 40, "main")


def test_is_ancestor(repo):
    first = run_git(repo, "rev-parse", "HEAD")
    (repo / "app.py").write_text("2\n")
    second = commit_all(repo)
    assert is_ancestor(repo, first, second) is True
    assert is_ancestor(repo, second, first) is False
    assert is_ancestor(repo, first, first) is True
    run_git(repo, "checkout", "-q", "-b", "side", first)
    (repo / "side.txt").write_text("s\n")
    side = commit_all(repo)
    assert is_ancestor(repo, second, side) is False
    assert is_ancestor(repo, "f" * 40, second) is None


@pytest.mark.parametrize(
    "branch, expected",
    [
        ("main", "main"),
        ("feature/login", "feature-login"),
        ("-weird.", "weird"),
        ("ünïcode", "n-code"),
        ("///", "unknown"),
        ("x" * 100, "x" * 60),
    ],
)
def test_sanitize_tag_part(branch, expected):
    assert sanitize_tag_part(branch) == expected
    assert is_valid_tag(sanitize_tag_part(branch))


def test_is_valid_tag():
    assert is_valid_tag("a" * 128) and not is_valid_tag("a" * 129)
    assert not is_valid_tag("-leading") and not is_valid_tag(".leading") and not is_valid_tag("has/slash")
    assert is_valid_tag("_ok.1-2")
