"""What git says about the commit being shipped (and what GitHub Actions says instead)."""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit, urlunsplit

from invoke_pachyderm.core.errors import GitStateError
from invoke_pachyderm.core.gitlab import gitlab_overrides


@dataclass(frozen=True)
class GitInfo:
    commit: str
    branch: str
    dirty: bool
    dirty_digest: str | None  # hash of the uncommitted changes, when dirty
    repo_url: str | None  # credentials stripped
    # what the same read found out about the checkout, so later checks need no git process of
    # their own (None when made elsewhere: they then ask git)
    head: str | None = field(default=None, compare=False, repr=False)  # HEAD's commit, before CI overrides
    top: str | None = field(default=None, compare=False, repr=False)  # the work tree's top directory
    git_dir: str | None = field(default=None, compare=False, repr=False)  # --absolute-git-dir

    @property
    def short_commit(self) -> str:
        return self.commit[:12]


def git(project_dir: Path, *args: str, check: bool = True) -> str:
    return GitProcess(project_dir, *args).result(check)


class GitProcess:
    """A git process started now and read later, so that independent questions run side by side;
    `result` answers exactly as `git()` does."""

    def __init__(self, project_dir: Path, *args: str):
        self.project_dir, self.args = project_dir, args
        try:
            self.process = subprocess.Popen(
                ["git", *args], cwd=project_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
        except FileNotFoundError:
            raise GitStateError("git is not installed or not on PATH; install git") from None

    def result(self, check: bool = True) -> str:
        stdout, stderr = self.process.communicate()
        if check and self.process.returncode != 0:
            raise GitStateError(
                f"{self.project_dir}: `git {' '.join(self.args)}` failed: {stderr.strip().splitlines()[-1] if stderr.strip() else self.process.returncode}"
            )
        return stdout.strip()

    def reap(self) -> None:
        if self.process.returncode is None:
            self.process.communicate()


def read_git_info(
    project_dir: Path, environ: Mapping[str, str] | None = None, ignore: tuple[str, ...] = ()
) -> GitInfo:
    """Commit, branch and dirtiness of the project directory (paths in `ignore`, e.g. out_dir, excepted)."""
    environ = os.environ if environ is None else environ
    top = git_dir = None
    excludes = [f":(exclude){path}" for path in ignore]
    # Three independent questions, asked side by side; read (and failing) in the order they were asked.
    checkout = GitProcess(project_dir, *CHECKOUT_QUERY)
    status_process = GitProcess(project_dir, "status", "--porcelain", "--untracked-files=normal", "--", ".", *excludes)
    remote = GitProcess(project_dir, "remote", "get-url", "origin")
    try:
        facts = checkout.result(check=False).split("\n")
        if len(facts) == 5 and facts[0] == "true":
            _, top, git_dir, commit, branch = facts
        else:  # not a repository, no commit yet, ...: ask one question at a time, to say which
            commit, branch = _head_one_by_one(project_dir)
        head = commit
        commit, branch = github_overrides(commit, branch, environ)
        commit, branch = gitlab_overrides(commit, branch, environ)
        status = status_process.result()
        dirty = bool(status)
        dirty_digest = _dirty_digest(project_dir, status, excludes) if dirty else None
        repo_url = strip_credentials(remote.result(check=False) or None)
    finally:
        for process in (status_process, remote):
            process.reap()  # when an error came first
    return GitInfo(
        commit=commit,
        branch=branch,
        dirty=dirty,
        dirty_digest=dirty_digest,
        repo_url=repo_url,
        head=head,
        top=top,
        git_dir=git_dir,
    )


# One git process for what four would tell: in a work tree?, its top, the git dir, HEAD, the branch.
CHECKOUT_QUERY = ("rev-parse", "--is-inside-work-tree", "--show-toplevel", "--absolute-git-dir", "HEAD",
                  "--abbrev-ref", "HEAD")


def _head_one_by_one(project_dir: Path) -> tuple[str, str]:
    if git(project_dir, "rev-parse", "--is-inside-work-tree", check=False) != "true":
        raise GitStateError(f"{project_dir}: not a git repository; run `git init` and commit your work")
    commit = git(project_dir, "rev-parse", "--verify", "-q", "HEAD", check=False)
    if not commit:
        raise GitStateError(f"{project_dir}: the repository has no commit yet; commit your work first")
    return commit, git(project_dir, "rev-parse", "--abbrev-ref", "HEAD", check=False)


def read_git_info_or_none(project_dir: Path) -> GitInfo | None:
    """For tasks that work outside a repository too (status, rollback, teardown)."""
    try:
        return read_git_info(project_dir)
    except GitStateError:
        return None


def github_overrides(commit: str, branch: str, environ: Mapping[str, str]) -> tuple[str, str]:
    """On pull_request events GITHUB_SHA is a merge commit: use the pull request's head."""
    if environ.get("GITHUB_ACTIONS") != "true":
        return commit, branch
    if environ.get("GITHUB_EVENT_NAME", "").startswith("pull_request") and environ.get("GITHUB_EVENT_PATH"):
        try:
            event = json.loads(Path(environ["GITHUB_EVENT_PATH"]).read_text())
            head = event["pull_request"]["head"]
            return head["sha"], environ.get("GITHUB_HEAD_REF") or head.get("ref") or branch
        except (OSError, KeyError, TypeError, json.JSONDecodeError):
            pass
    if branch == "HEAD" and environ.get("GITHUB_REF_NAME"):
        branch = environ["GITHUB_REF_NAME"]
    return commit, branch


def _dirty_digest(project_dir: Path, status: str, excludes: list[str] | tuple[str, ...] = ()) -> str:
    digest = hashlib.sha256(status.encode())
    digest.update(git(project_dir, "diff", "HEAD", "--binary", "--", ".", *excludes).encode())
    # `status` names untracked directories, not their files, and its paths are relative to the
    # repository root; ls-files lists every untracked file, relative to the project directory.
    untracked = git(project_dir, "ls-files", "--others", "--exclude-standard", "-z", "--", ".", *excludes)
    for name in sorted(filter(None, untracked.split("\0"))):
        path = project_dir / name
        digest.update(name.encode() + b"\0")
        if path.is_symlink():
            digest.update(os.readlink(path).encode())
        elif path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def strip_credentials(url: str | None) -> str | None:
    if not url or "://" not in url:
        return url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def is_ancestor(project_dir: Path, older: str, newer: str) -> bool | None:
    """True if `older` is an ancestor of `newer`; None when git does not know one of them."""
    result = subprocess.run(
        ["git", "merge-base", "--is-ancestor", older, newer], cwd=project_dir, capture_output=True
    )
    if result.returncode in (0, 1):
        return result.returncode == 0
    return None


_TAG_OK = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def commit_time(project_dir: Path, commit: str) -> int | None:
    """The commit's time, seconds since the epoch (the `created` of the image it builds)."""
    try:
        return int(git(project_dir, "log", "-1", "--format=%ct", commit, "--"))
    except (GitStateError, ValueError):
        return None


def sanitize_tag_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text).strip(".-")[:60] or "unknown"


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG_OK.match(tag))
