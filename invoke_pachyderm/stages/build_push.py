"""Build and push every image of a deploy: the registry asked first, each image built from its
commit's own files (source.build_source), in parallel, timed per stage. The daemon work itself is
backends/docker_images.py."""
from __future__ import annotations

import contextlib
import queue
import threading
import time
from typing import Callable, Iterable

from invoke_pachyderm.backends.docker_images import (
    Log,
    auth_config,
    build_image,
    docker_client,
    oci_labels,
    push_image,
    registry_digest,
)
from invoke_pachyderm.backends.registry import direct_digest
from invoke_pachyderm.core.artifacts import ImageArtifact
from invoke_pachyderm.core.config import Settings
from invoke_pachyderm.core.errors import DockerError
from invoke_pachyderm.core.gitinfo import GitInfo
from invoke_pachyderm.stages import source


class Builds:
    """The builds of a deploy, begun before its plan is done (flow.deploy) and pushed after it.

    start() asks the registry for each tag (directly first; docker is imported and the daemon
    reached only for an image the registry did not confirm) and builds what is absent, up to
    `jobs` at once, in daemon threads: the main thread goes on rendering and reading pachd, and
    an exit does not wait for a build. finish() waits for every build, raises the first error
    in image order, runs `before_push` (the smoke run), then pushes: nothing leaves the machine
    before finish(), so a plan or the tests that fail push nothing. The build's lines are held
    until finish() and printed there, in the build stage's place in the output.
    """

    def __init__(self, settings: Settings, git: GitInfo, images: dict[str, ImageArtifact], rebuild: bool,
                 jobs: int, timings=None):
        self.settings, self.git, self.images, self.rebuild = settings, git, images, rebuild
        self.jobs = max(1, min(jobs, len(images)))
        self._stage = timings.stage if timings is not None else _untimed
        self._configs = {config.name: config for config in settings.image_configs}
        self._auth = auth_config(settings)
        self._began: dict[str, float] = {}
        self._clients: dict[str, object] = {}
        self._workers: Workers | None = None
        self._held: list[tuple[str, str]] | None = []  # (image, line) until finish() shows them
        self._log_for: Callable[[str], Log] | None = None
        self._lock = threading.Lock()
        #: Set once a build is with the daemon (docker imported, the context sent), or the
        #: builds are over: what is left of a build is then mostly the daemon's work.
        self.daemon_reached = threading.Event()

    def start(self) -> "Builds":
        self._workers = Workers(self._build, self.images, self.jobs, when_done=self.daemon_reached.set)
        return self

    def cancel(self) -> None:
        """No build not yet begun begins (one under way runs out, or ends with the process)."""
        if self._workers is not None:
            self._workers.stop.set()

    def finish(self, log_for: Callable[[str], Log], before_push: Callable[[], None] | None = None) -> None:
        with self._lock:
            held, self._held, self._log_for = self._held or [], None, log_for
        for name, line in held:
            log_for(name)(line)
        assert self._workers is not None, "finish() before start()"
        self._workers.join()
        if before_push is not None:
            before_push()
        run_parallel(self._push, list(self.images), self.jobs)

    def _log(self, name: str) -> Log:
        def log(line: str) -> None:
            with self._lock:
                if self._held is not None:
                    self._held.append((name, line))
                    return
                log_for = self._log_for
            assert log_for is not None
            log_for(name)(line)

        return log

    def _build(self, name: str) -> None:
        self._began[name] = time.monotonic()
        artifact, log = self.images[name], self._log(name)
        client = None
        if not self.rebuild:
            with self._stage("registry"):
                digest = direct_digest(artifact, self._auth)
                if not digest:
                    client = docker_client()
                    digest = registry_digest(client, artifact, self._auth)
            if digest:
                artifact.digest = digest
                artifact.skipped = "already in registry"
                log(f"skipped: already in the registry: {artifact.ref} {digest} ({_seconds(self._began[name])})")
                return
        with self._stage("build"):
            client = self._clients[name] = client or docker_client()
            with source.build_source(self.settings, self._configs[name], self.git) as source_dir:
                labels = oci_labels(self.git, artifact, self.settings.project_dir)
                build_image(client, self.settings, self._configs[name], artifact, labels, log, project_dir=source_dir,
                            sent=self.daemon_reached.set)

    def _push(self, name: str) -> None:
        artifact, log = self.images[name], self._log(name)
        if artifact.skipped:
            return
        with self._stage("push"):
            push_image(self._clients[name], artifact, self._auth, log)
        log(f"built+pushed {artifact.ref} {artifact.digest} in {_seconds(self._began[name])}")


@contextlib.contextmanager
def _untimed(name: str):
    yield


def lookup_digests(settings: Settings, images: dict[str, ImageArtifact]) -> None:
    """Fill in the digest of each image already in the registry (read-only; for a dry run)."""
    auth = auth_config(settings)
    for artifact in images.values():
        digest = direct_digest(artifact, auth)
        if not digest:
            digest = registry_digest(docker_client(), artifact, auth)
        artifact.digest = digest


def _seconds(began: float) -> str:
    return f"{time.monotonic() - began:.1f}s"


def build_all(settings: Settings, git: GitInfo, images: dict[str, ImageArtifact], jobs: int, log_for) -> None:
    configs = {config.name: config for config in settings.image_configs}
    docker_client()

    def one(name: str) -> None:
        began = time.monotonic()
        artifact, log = images[name], log_for(name)
        with source.build_source(settings, configs[name], git) as source_dir:
            labels = oci_labels(git, artifact, settings.project_dir)
            build_image(docker_client(), settings, configs[name], artifact, labels, log, project_dir=source_dir)
        log(f"built {artifact.ref} in {_seconds(began)}")

    run_parallel(one, list(images), jobs)


def push_all(settings: Settings, images: dict[str, ImageArtifact], jobs: int, log_for) -> None:
    import docker.errors

    auth = auth_config(settings)
    client = docker_client()
    for artifact in images.values():
        try:
            client.images.get(artifact.ref)
        except docker.errors.ImageNotFound:
            raise DockerError(f"image {artifact.ref} is not built on this Docker daemon; run `invoke build` first") from None

    def one(name: str) -> None:
        began = time.monotonic()
        artifact, log = images[name], log_for(name)
        push_image(docker_client(), artifact, auth, log)
        log(f"pushed {artifact.ref} {artifact.digest} in {_seconds(began)}")

    run_parallel(one, list(images), jobs)


def run_parallel(function: Callable[[str], None], names: Iterable[str], jobs: int) -> None:
    """Run for each name; the first error (in name order) is raised after all have finished."""
    names = list(names)
    if len(names) <= 1 or jobs <= 1:
        for name in names:
            function(name)
        return
    Workers(function, names, jobs).join()


class Workers:
    """`function` for each name, up to `jobs` at once, begun at once in threads of their own.

    Daemon threads rather than a ThreadPoolExecutor, whose workers Python joins at exit: on
    Ctrl-C the main thread stops waiting and the process exits without waiting for the builds.
    `when_done` is called in each thread as it ends."""

    def __init__(self, function: Callable[[str], None], names: Iterable[str], jobs: int,
                 when_done: Callable[[], None] | None = None):
        self.names = list(names)
        self.errors: dict[str, BaseException] = {}
        self.stop = threading.Event()  # no name not yet begun begins
        self._todo: queue.SimpleQueue[str] = queue.SimpleQueue()
        for name in self.names:
            self._todo.put(name)
        self._function, self._when_done = function, when_done
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(max(1, min(jobs, len(self.names))))]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        try:
            while not self.stop.is_set():
                try:
                    name = self._todo.get_nowait()
                except queue.Empty:
                    return
                try:
                    self._function(name)
                except BaseException as error:  # re-raised by join(), in the caller's thread
                    self.errors[name] = error
        finally:
            if self._when_done is not None:
                self._when_done()

    def join(self) -> None:
        """Wait for every thread, then raise the first error in name order."""
        try:
            for thread in self._threads:
                thread.join()
        except KeyboardInterrupt:
            self.stop.set()
            raise
        for name in self.names:
            if name in self.errors:
                raise self.errors[name]
