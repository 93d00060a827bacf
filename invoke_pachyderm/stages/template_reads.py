"""Which files a template may read (a Jinja include or import, a Jsonnet import or importstr).

A rendered spec is stored in pachd, where anyone who can inspect the pipeline reads it, so a
template reads only regular files of the project that git would commit: nothing through a
symlink out of the project, nothing in `.git/` (its config holds the remote URL, with any
credential in it), nothing git ignores (`.env`, keys, build output), no FIFO, socket or device
(opening a FIFO blocks for ever), nothing larger than the spec size cap.
"""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

GIT_TIMEOUT = 10  # seconds for the one `git ls-files` a render asks


class ReadRefused(Exception):
    """One line: which file, why, what to do."""


_KINDS = {
    stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory",
}


class ProjectReads:
    """One per render: git is asked for the ignored files once, on the first read that needs it."""

    def __init__(self, root: Path, max_bytes: int, exempt: frozenset[str] = frozenset()):
        self.root = Path(root).resolve()
        self.max_bytes = max_bytes
        self.exempt = exempt  # the spec templates themselves (a git-ignored one is refused as uncommitted)
        self._ignored: tuple[frozenset[str], tuple[str, ...]] | None = None

    def resolve(self, relative: str, reader: str = "templates") -> Path:
        """The real path of `relative` (to the project), if a template may read it."""
        resolved = Path(os.path.realpath(self.root / relative))
        if not resolved.is_relative_to(self.root):
            raise ReadRefused(
                f"'{relative}' resolves to {resolved}, outside the project {self.root}; "
                f"{reader} may only read files inside the project"
            )
        inside = resolved.relative_to(self.root).as_posix()
        if ".git" in Path(relative).parts or ".git" in Path(inside).parts:
            raise ReadRefused(
                f"'{relative}' is inside .git/, which holds the remote URL and its credentials; "
                f"{reader} may not read it"
            )
        if relative not in self.exempt and inside not in self.exempt and self.ignored(inside):
            raise ReadRefused(
                f"'{relative}' is ignored by git (see `git check-ignore -v {inside}`); {reader} may read only "
                "files git would commit: commit it or move what it holds into `vars`"
            )
        try:
            mode = os.stat(resolved).st_mode  # stat, never open: opening a FIFO blocks
        except FileNotFoundError:
            raise ReadRefused(f"no file {relative} in the project") from None
        except OSError as error:
            raise ReadRefused(f"'{relative}' cannot be read: {error.strerror}") from None
        if not stat.S_ISREG(mode):
            kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
            raise ReadRefused(f"'{relative}' is {kind}; {reader} may read only regular files")
        return resolved

    def read(self, relative: str, reader: str = "templates") -> bytes:
        resolved = self.resolve(relative, reader)
        with open(resolved, "rb") as file:
            data = file.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise ReadRefused(
                f"'{relative}' is larger than the spec size cap of {self.max_bytes} bytes; "
                "raise `max_spec_bytes` if a spec really needs it"
            )
        return data

    def ignored(self, inside: str) -> bool:
        if self._ignored is None:
            self._ignored = self._list_ignored()
        files, folders = self._ignored
        return inside in files or any(inside.startswith(folder) for folder in folders)

    def _list_ignored(self) -> tuple[frozenset[str], tuple[str, ...]]:
        try:
            done = subprocess.run(
                ["git", "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"],
                cwd=self.root, capture_output=True, timeout=GIT_TIMEOUT,
            )
        except FileNotFoundError:
            return frozenset(), ()  # no git: no ignore rules to apply
        except subprocess.TimeoutExpired:
            raise ReadRefused(
                f"git took longer than {GIT_TIMEOUT} s to list the ignored files, so no file can be "
                "checked; try again, or inline what the template reads"
            ) from None
        if done.returncode != 0:
            if b"not a git repository" in done.stderr:
                return frozenset(), ()
            raise ReadRefused(
                f"git could not list the ignored files ({done.stderr.decode(errors='replace').strip()[:200]}), "
                "so no file can be checked"
            )
        names = [name.decode("utf-8", "surrogateescape") for name in done.stdout.split(b"\0") if name]
        return (
            frozenset(name for name in names if not name.endswith("/")),
            tuple(name for name in names if name.endswith("/")),
        )
