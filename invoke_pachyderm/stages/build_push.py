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


def build_and_push_all(
    settings: Settings,
    git: GitInfo,
    images: dict[str, ImageArtifact],
    rebuild: bool,
    jobs: int,
    log_for: Callable[[str], Log],
    timings=None,
    before_push: Callable[[], None] | None = None,
) -> None:
    """For each image: skip if its tag is already in the registry (unless rebuild), else build and push.

    The registry is asked directly first; docker is imported and the daemon reached only for an
    image the registry did not confirm. Each image ends with one line: skipped or built+pushed.
    `timings` (a timings.Timings), if given, gets the registry, build and push times.
    With `before_push` (the smoke run), every image is built first, then it runs, then the pushes.
    """
    configs = {config.name: config for config in settings.image_configs}
    auth = auth_config(settings)
    stage = timings.stage if timings is not None else _untimed
    began: dict[str, float] = {}
    clients: dict[str, object] = {}

    def build(name: str) -> None:
        began[name] = time.monotonic()
        artifact = images[name]
        log = log_for(name)
        client = None
        if not rebuild:
            with stage("registry"):
                digest = direct_digest(artifact, auth)
                if not digest:
                    client = docker_client()
                    digest = registry_digest(client, artifact, auth)
            if digest:
                artifact.digest = digest
                artifact.skipped = "already in registry"
                log(f"skipped: already in the registry: {artifact.ref} {digest} ({_seconds(began[name])})")
                return
        with stage("build"):
            client = clients[name] = client or docker_client()
            with source.build_source(settings, configs[name], git) as source_dir:
                labels = oci_labels(git, artifact, settings.project_dir)
                build_image(client, settings, configs[name], artifact, labels, log, project_dir=source_dir)

    def push(name: str) -> None:
        artifact = images[name]
        if artifact.skipped:
            return
        with stage("push"):
            push_image(clients[name], artifact, auth, log_for(name))
        log_for(name)(f"built+pushed {artifact.ref} {artifact.digest} in {_seconds(began[name])}")

    def build_and_push(name: str) -> None:
        build(name)
        push(name)

    if before_push is None:
        run_parallel(build_and_push, list(images), jobs)
        return
    run_parallel(build, list(images), jobs)
    before_push()
    run_parallel(push, list(images), jobs)


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
    """Run for each name; the first error (in name order) is raised after all have finished.

    Daemon threads rather than a ThreadPoolExecutor, whose workers Python joins at exit: on
    Ctrl-C the main thread stops waiting and the process exits without waiting for the builds.
    """
    names = list(names)
    if len(names) <= 1 or jobs <= 1:
        for name in names:
            function(name)
        return
    todo: queue.SimpleQueue[str] = queue.SimpleQueue()
    for name in names:
        todo.put(name)
    errors: dict[str, BaseException] = {}
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            try:
                name = todo.get_nowait()
            except queue.Empty:
                return
            try:
                function(name)
            except BaseException as error:  # re-raised in the main thread below
                errors[name] = error

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(jobs, len(names)))]
    for thread in threads:
        thread.start()
    try:
        for thread in threads:
            thread.join()
    except KeyboardInterrupt:
        stop.set()
        raise
    for name in names:
        if name in errors:
            raise errors[name]
