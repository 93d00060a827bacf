"""Plain git in throwaway repositories, with an identity of its own."""
from __future__ import annotations

import subprocess
from pathlib import Path


def run_git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def commit_all(cwd: Path, message: str = "change") -> str:
    run_git(cwd, "add", "-A")
    run_git(cwd, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", message)
    return run_git(cwd, "rev-parse", "HEAD")
