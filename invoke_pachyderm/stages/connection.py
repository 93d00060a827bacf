"""The pachd connection of a task: where pachd is (config), its token kept out of the output."""
from __future__ import annotations

import threading
from typing import Any

from invoke_pachyderm.core.config import PachdTarget, Settings, resolve_pachd
from invoke_pachyderm.core.output import Reporter


def connect(settings: Settings, reporter: Reporter):
    from invoke_pachyderm.backends.pachd import Cluster  # python_pachyderm: not for `invoke --list`

    target = resolve_pachd(settings)
    reporter.add_secret(target.token)
    return Cluster(target, settings.project)


class EarlyConnection:
    """connect(), begun at once in a thread of its own, with Cluster.prefetch: importing
    python_pachyderm and pachd's answers overlap the main thread's git processes and rendering.

    Nothing is raised in the thread: get() joins it and raises what connect() would have raised,
    so an error still comes where the caller asks for the connection (after the git and template
    checks), in connect()'s words. A daemon thread: an exit before get() does not wait for pachd.

    An unchanged deploy on pachd >= 2.8 never imports python_pachyderm (~0.25 s); a deploy that
    changes something needs it to apply. Once the thread has read pachd and the caller has told
    it the commit (expect()), it imports it at once when a change is likely: a deployed pipeline
    of another commit, none deployed, or a dirty tree (Cluster.may_change). A wrong guess costs
    time, never a verdict."""

    def __init__(self, settings: Settings, reporter: Reporter):
        self._settings, self._reporter = settings, reporter
        self._target: PachdTarget | None = None
        self._cluster: Any = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._expected: tuple[str, bool] | None = None
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
            commit, dirty = self._expected
            if dirty or self._cluster.may_change(commit):
                self._cluster.warm()

    def expect(self, commit: str, dirty: bool) -> None:
        """The commit this deploy renders (from git, read meanwhile by the caller)."""
        self._expected = (commit, dirty)
        self._told.set()

    def get(self):
        self._ready.wait()
        if self._target is not None:
            self._reporter.add_secret(self._target.token)
        if self._error is not None:
            raise self._error
        return self._cluster
