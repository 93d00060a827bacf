"""The pachd connection of a task: where pachd is (config), its token kept out of the output."""
from __future__ import annotations

import threading
from typing import Any

from invoke_pachyderm.core.config import PachdTarget, Settings, resolve_pachd
from invoke_pachyderm.core.gitinfo import GitInfo
from invoke_pachyderm.core.output import Reporter


def connect(settings: Settings, reporter: Reporter):
    from invoke_pachyderm.backends.pachd import Cluster  # python_pachyderm: not for `invoke --list`

    target = resolve_pachd(settings)
    reporter.add_secret(target.token)
    return Cluster(target, settings.project)


class EarlyConnection:
    """connect(), begun at once in a thread of its own, with Cluster.prefetch: importing
    python_pachyderm and pachd's answers overlap the main thread's git processes and rendering.

    Nothing is raised in the thread: get() waits for its reads and raises what connect() would have raised,
    so an error still comes where the caller asks for the connection (after the git and template
    checks), in connect()'s words. A daemon thread: an exit before get() does not wait for pachd.

    An unchanged deploy on pachd >= 2.8 never imports python_pachyderm (~0.25 s); a deploy that
    changes something needs it to apply. Once the thread has read pachd and the caller has told
    it the commit and image references (expect()), it imports it at once when a change is likely
    (likely_change). A wrong guess costs time, never a verdict."""

    def __init__(self, settings: Settings, reporter: Reporter):
        self._settings, self._reporter = settings, reporter
        self._target: PachdTarget | None = None
        self._cluster: Any = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._expected: tuple[GitInfo, list[str]] | None = None
        self._told = threading.Event()
        self._thread = threading.Thread(target=self._connect, name="pachd-connect", daemon=True)
        self._thread.start()

    def _connect(self) -> None:
        try:
            from invoke_pachyderm.backends.pachd_early import EarlyReads

            target = self._target = resolve_pachd(self._settings)
            early = EarlyReads(target)  # sent before python_pachyderm is imported
            from invoke_pachyderm.backends.pachd import Cluster

            self._cluster = Cluster(target, self._settings.project, early)
            self._cluster.prefetch()
        except BaseException as error:  # raised by get(), in the caller's thread
            self._error = error
        finally:
            self._ready.set()
        if self._error is None and self._told.wait(timeout=60) and self._expected is not None:
            if likely_change(self._settings, self._cluster, *self._expected):
                self._cluster.warm()

    def expect(self, git: GitInfo, refs: list[str]) -> None:
        """What this deploy renders: the commit and the image references (read meanwhile by the caller)."""
        self._expected = (git, refs)
        self._told.set()

    def get(self):
        self._ready.wait()
        if self._target is not None:
            self._reporter.add_secret(self._target.token)
        if self._error is not None:
            raise self._error
        return self._cluster


# Files that feed rendering besides the templates: the settings (pyproject.toml, Invoke's config).
CONFIG_FILES = frozenset({"pyproject.toml", "invoke.yaml", "invoke.yml", "invoke.json", "invoke.py", "tasks.py"})


def likely_change(settings: Settings, cluster, git: GitInfo, refs: list[str]) -> bool:
    """A guess whether this deploy changes a pipeline, made before rendering: yes on pachd < 2.8
    (every comparison needs python_pachyderm), for a dirty tree, when no pipeline of the project
    is deployed or one lacks its commit annotation, when an image reference is in no deployed
    spec (new code), or when a template or the settings changed since the newest deployed commit
    (an unchanged pipeline keeps its older commit; a CI that deploys every commit has deployed
    what changed before it), or when git cannot say (a shallow clone). A commit touching only
    other files (docs, code outside the images' contexts) is guessed "no change"."""
    try:
        if git.dirty or not cluster.has_defaults:
            return True
        commits = cluster.deployed_commits()
        if not commits or not cluster.names_every(refs):
            return True
        if commits == {git.commit}:
            return False
        return render_inputs_changed(settings, commits, git.commit)
    except Exception:  # noqa: BLE001 - only a guess
        return True


def render_inputs_changed(settings: Settings, deployed: set[str], commit: str) -> bool:
    """Whether git lists a template (or a file in a template folder) or a settings file as changed
    between the newest of the `deployed` commits and `commit`; True when git cannot tell."""
    import fnmatch
    import subprocess

    def git(*args: str) -> str | None:
        done = subprocess.run(["git", *args], cwd=settings.project_dir, capture_output=True, timeout=30)
        return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None

    newest = git("log", "--no-walk=sorted", "-1", "--format=%H", *sorted(deployed))
    changed = git("diff", "--relative", "--name-only", "-z", (newest or "").strip(), commit) if newest else None
    if changed is None:
        return True
    globs = settings.spec_globs
    folders = {glob.split("*")[0].rsplit("/", 1)[0] for glob in globs if "/" in glob.split("*")[0]}
    return any(
        name in CONFIG_FILES or any(fnmatch.fnmatch(name, glob) for glob in globs)
        or any(name.startswith(folder + "/") for folder in folders)
        for name in filter(None, changed.split("\0"))
    )
