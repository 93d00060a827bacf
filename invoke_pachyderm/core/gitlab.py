"""What GitLab CI says about the commit being shipped, where git in its detached checkout cannot.

GitLab checks out a detached HEAD, so git names the branch `HEAD`; `CI_COMMIT_REF_NAME` has it. In a
merge request pipeline the branch is the source branch, and in a merged-results pipeline HEAD is a
merge commit while `CI_MERGE_REQUEST_SOURCE_BRANCH_SHA` is the head that was pushed (the scaffolded
.gitlab-ci.yml checks it out). The job URL (`CI_JOB_URL`) is the `ci-run` provenance (flow.py).
Masking is GitLab's: variables marked Masked are hidden in job logs by the runner.
"""
from __future__ import annotations

from typing import Mapping


def gitlab_overrides(commit: str, branch: str, environ: Mapping[str, str]) -> tuple[str, str]:
    if environ.get("GITLAB_CI") != "true":
        return commit, branch
    if environ.get("CI_MERGE_REQUEST_IID"):
        commit = environ.get("CI_MERGE_REQUEST_SOURCE_BRANCH_SHA") or commit
        branch = environ.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or branch
    elif branch == "HEAD" and environ.get("CI_COMMIT_REF_NAME"):
        branch = environ["CI_COMMIT_REF_NAME"]
    return commit, branch
