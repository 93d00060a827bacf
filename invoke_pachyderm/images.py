"""Build, push and look up images. The only module that imports `docker` (lazily)."""
from __future__ import annotations

import datetime as _dt
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable

from .artifacts import ImageArtifact
from .config import ImageConfig, Settings
from .errors import DockerError, RegistryError
from .gitinfo import GitInfo

Log = Callable[[str], None]


def docker_client():
    import docker
    import docker.errors

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except (docker.errors.DockerException, OSError) as error:
        where = os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"
        raise DockerError(
            f"cannot reach the Docker daemon at {where}: {_short(error)}; start Docker or set DOCKER_HOST"
        ) from None
    return client


def auth_config(settings: Settings) -> dict[str, str] | None:
    """Explicit credentials, else None so docker-py reads DOCKER_CONFIG / credential helpers."""
    if settings.registry_username and settings.registry_password:
        return {"username": settings.registry_username, "password": settings.registry_password}
    return None


def oci_labels(git: GitInfo, artifact: ImageArtifact) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.revision": git.commit,
        "org.opencontainers.image.version": artifact.tag,
        "org.opencontainers.image.created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "org.opencontainers.image.ref.name": artifact.ref,
    }
    if git.repo_url:
        labels["org.opencontainers.image.source"] = git.repo_url
    return labels


def build_image(
    client, project_dir: Path, image: ImageConfig, artifact: ImageArtifact, labels: dict[str, str], log: Log
) -> None:
    import docker.errors

    context = (project_dir / image.context).resolve()
    dockerfile = (project_dir / image.dockerfile).resolve()
    if not dockerfile.is_file():
        raise DockerError(f"image {image.name!r}: Dockerfile {image.dockerfile} not found in {project_dir}")
    try:
        dockerfile_arg = str(dockerfile.relative_to(context))
    except ValueError:
        dockerfile_arg = str(dockerfile)
    try:
        stream = client.api.build(
            path=str(context),
            dockerfile=dockerfile_arg,
            tag=artifact.ref,
            buildargs=dict(image.build_args),
            target=image.target,
            labels=labels,
            rm=True,
            forcerm=True,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk or "errorDetail" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                raise DockerError(f"image {artifact.ref}: build failed: {detail.strip()}")
            text = chunk.get("stream", "")
            for line in text.splitlines():
                if line.strip():
                    log(line.rstrip())
    except docker.errors.APIError as error:
        raise DockerError(f"image {artifact.ref}: build failed: {_short(error)}") from None
    except (docker.errors.DockerException, OSError) as error:
        raise DockerError(f"image {artifact.ref}: build failed: {_short(error)}") from None
    artifact.built = True


def push_image(client, artifact: ImageArtifact, auth: dict[str, str] | None, log: Log) -> None:
    """Push and read the whole stream: docker-py does not raise on registry errors."""
    import docker.errors

    try:
        stream = client.api.push(
            artifact.repository, tag=artifact.tag, stream=True, decode=True, auth_config=auth
        )
        for chunk in stream:
            if "errorDetail" in chunk or "error" in chunk:
                detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                raise RegistryError(f"push of {artifact.ref} failed: {detail}{_auth_hint(detail)}")
            aux = chunk.get("aux") or {}
            if aux.get("Digest"):
                artifact.digest = aux["Digest"]
            status = chunk.get("status")
            if status and not chunk.get("progressDetail"):
                log(f"{chunk.get('id', '')}: {status}".strip(": "))
    except docker.errors.APIError as error:
        raise RegistryError(f"push of {artifact.ref} failed: {_short(error)}") from None
    if not artifact.digest:
        raise RegistryError(f"push of {artifact.ref} ended without a digest; the registry did not confirm it")
    artifact.pushed = True


def registry_digest(client, artifact: ImageArtifact, auth: dict[str, str] | None) -> str | None:
    """Digest of repository:tag in the registry; None if absent. A failed look-up raises."""
    import docker.errors

    try:
        data = client.api.inspect_distribution(artifact.ref, auth_config=auth)
    except docker.errors.APIError as error:
        text = str(error.explanation or error).lower()
        if error.status_code == 404 or "manifest unknown" in text or "not found" in text:
            return None
        raise RegistryError(f"cannot look up {artifact.ref} in its registry: {_short(error)}{_auth_hint(text)}") from None
    return (data.get("Descriptor") or {}).get("digest")


def build_and_push_all(
    settings: Settings,
    git: GitInfo,
    images: dict[str, ImageArtifact],
    rebuild: bool,
    jobs: int,
    log_for: Callable[[str], Log],
) -> None:
    """For each image: skip if its tag is already in the registry (unless rebuild), else build and push."""
    configs = {config.name: config for config in settings.image_configs}
    auth = auth_config(settings)
    docker_client()  # one clear error if the daemon is down, before the threads start

    def one(name: str) -> None:
        client = docker_client()
        artifact = images[name]
        log = log_for(name)
        if not rebuild:
            digest = registry_digest(client, artifact, auth)
            if digest:
                artifact.digest = digest
                artifact.skipped = "already in registry"
                log(f"{artifact.ref} is already in the registry ({digest}); not building")
                return
        build_image(client, settings.project_dir, configs[name], artifact, oci_labels(git, artifact), log)
        push_image(client, artifact, auth, log)
        log(f"pushed {artifact.ref} {artifact.digest}")

    run_parallel(one, list(images), jobs)


def build_all(settings: Settings, git: GitInfo, images: dict[str, ImageArtifact], jobs: int, log_for) -> None:
    configs = {config.name: config for config in settings.image_configs}
    docker_client()

    def one(name: str) -> None:
        artifact = images[name]
        build_image(docker_client(), settings.project_dir, configs[name], artifact, oci_labels(git, artifact), log_for(name))

    run_parallel(one, list(images), jobs)


def push_all(settings: Settings, images: dict[str, ImageArtifact], jobs: int, log_for) -> None:
    auth = auth_config(settings)
    client = docker_client()
    for artifact in images.values():
        try:
            client.images.get(artifact.ref)
        except Exception:
            raise DockerError(f"image {artifact.ref} is not built on this Docker daemon; run `invoke build` first") from None

    def one(name: str) -> None:
        push_image(docker_client(), images[name], auth, log_for(name))

    run_parallel(one, list(images), jobs)


def run_parallel(function: Callable[[str], None], names: Iterable[str], jobs: int) -> None:
    """Run for each name; the first error (in name order) is raised after all have finished."""
    names = list(names)
    if len(names) <= 1 or jobs <= 1:
        for name in names:
            function(name)
        return
    with ThreadPoolExecutor(max_workers=min(jobs, len(names))) as pool:
        futures = [pool.submit(function, name) for name in names]
    for future in futures:
        future.result()


def _auth_hint(text: str) -> str:
    lowered = str(text).lower()
    if any(word in lowered for word in ("unauthorized", "authentication required", "denied", "no basic auth")):
        return (
            " (the registry wants credentials: `docker login`, or set INVOKE_PACHYDERM_REGISTRY_USERNAME "
            "and INVOKE_PACHYDERM_REGISTRY_PASSWORD)"
        )
    return ""


def _short(error: BaseException) -> str:
    text = getattr(error, "explanation", None) or str(error)
    return " ".join(str(text).split())[:300]
