"""Build, push and look up one image through the Docker daemon. The only module that imports `docker` (lazily)."""
from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Callable

from invoke_pachyderm.core.artifacts import ImageArtifact
from invoke_pachyderm.core.config import ConfigError, ImageConfig, Settings
from invoke_pachyderm.core.errors import DockerError, RegistryError
from invoke_pachyderm.core.gitinfo import GitInfo
from invoke_pachyderm.backends.transfer_progress import TransferProgress

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


def oci_labels(git: GitInfo, artifact: ImageArtifact, project_dir: Path | None = None) -> dict[str, str]:
    labels = {
        "org.opencontainers.image.revision": artifact.commit or git.commit,
        "org.opencontainers.image.version": artifact.tag,
        "org.opencontainers.image.created": created(git, artifact, project_dir),
        "org.opencontainers.image.ref.name": artifact.ref,
    }
    if git.repo_url:
        labels["org.opencontainers.image.source"] = git.repo_url
    return labels


def created(git: GitInfo, artifact: ImageArtifact, project_dir: Path | None, environ=None) -> str:
    """SOURCE_DATE_EPOCH, else the time of the image's commit; now only for a dirty tree.

    The same commit then gives the same LABEL line, which the builder's cache reuses: the same
    image ID on a daemon that still has the layers.
    """
    from invoke_pachyderm.core.gitinfo import commit_time

    environ = os.environ if environ is None else environ
    seconds: int | None = None
    if environ.get("SOURCE_DATE_EPOCH", "").strip().isdigit():
        seconds = int(environ["SOURCE_DATE_EPOCH"])
    elif artifact.source_date is not None:
        seconds = artifact.source_date
    elif not git.dirty and project_dir is not None:
        seconds = commit_time(project_dir, artifact.commit or git.commit)
    moment = _dt.datetime.fromtimestamp(seconds, _dt.timezone.utc) if seconds is not None else _dt.datetime.now(_dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_image(
    client, settings: Settings, image: ImageConfig, artifact: ImageArtifact, labels: dict[str, str], log: Log,
    project_dir: Path | None = None, sent: Callable[[], None] | None = None,
) -> None:
    """Build from the user's Dockerfile plus one LABEL line (see dockerfile.py), sent as docker-py would.

    `project_dir`: where the context and Dockerfile are read (source.build_source's copy of the
    commit). `sent` is called once the daemon has the context and has begun (or refused) the build."""
    import dataclasses

    import docker.errors
    import urllib3.exceptions

    from invoke_pachyderm.backends.build_context import DOCKERFILE_NAME, build_context
    from invoke_pachyderm.backends.dockerfile import with_labels

    where = dataclasses.replace(settings, project_dir=project_dir) if project_dir is not None else settings
    try:
        context = build_context(where, image)
    except ConfigError as error:
        raise DockerError(error.message) from None
    text = with_labels(context.dockerfile.read_text(), labels, image.target)
    step = "before its first step"
    try:
        with context.tar(text) as tar:
            stream = client.api.build(
                fileobj=tar,
                custom_context=True,
                dockerfile=DOCKERFILE_NAME,
                tag=artifact.ref,
                buildargs=dict(image.build_args),
                target=image.target,
                rm=True,
                forcerm=True,
                decode=True,
            )
            if sent is not None:
                sent()
            with TransferProgress("pull", log) as pull:  # of the base image, when the daemon lacks it
                for chunk in stream:
                    if "error" in chunk or "errorDetail" in chunk:
                        detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                        raise DockerError(f"image {artifact.ref}: build failed: {detail.strip()}")
                    pull.feed(chunk)
                    output = chunk.get("stream", "")
                    for line in output.splitlines():
                        if line.strip():
                            pull.say(line.rstrip())
                        if line.startswith("Step "):
                            step = f"at {line.strip()[:120]}"
            if pull.summary():
                log(pull.summary())
    except docker.errors.APIError as error:
        raise DockerError(f"image {artifact.ref}: build failed: {_short(error)}") from None
    except (docker.errors.DockerException, OSError) as error:
        raise DockerError(f"image {artifact.ref}: build failed: {_short(error)}") from None
    except urllib3.exceptions.HTTPError as error:
        raise DockerError(
            f"image {artifact.ref}: the connection to the Docker daemon broke during the build, {step} "
            f"({_first_arg(error)}); nothing was pushed; is the daemon still running?"
        ) from None
    artifact.built = True


def push_image(client, artifact: ImageArtifact, auth: dict[str, str] | None, log: Log) -> None:
    """Push and read the whole stream: docker-py does not raise on registry errors."""
    import docker.errors
    import urllib3.exceptions

    step = "before the first layer"
    try:
        stream = client.api.push(
            artifact.repository, tag=artifact.tag, stream=True, decode=True, auth_config=auth
        )
        with TransferProgress("push", log) as progress:
            for chunk in stream:
                if "errorDetail" in chunk or "error" in chunk:
                    detail = chunk.get("errorDetail", {}).get("message") or chunk.get("error")
                    raise RegistryError(f"push of {artifact.ref} failed {step}: {detail}{_auth_hint(detail)}")
                aux = chunk.get("aux") or {}
                if aux.get("Digest"):
                    artifact.digest = aux["Digest"]
                progress.feed(chunk)
                status = chunk.get("status")
                if status and chunk.get("id") and not status.startswith("Retrying"):
                    step = f"at layer {chunk['id']} ({status.split(' ')[0].lower()})"
                if status and not chunk.get("progressDetail"):
                    progress.say(f"{chunk.get('id', '')}: {status}".strip(": "))
        if progress.summary():
            log(progress.summary())
    except docker.errors.APIError as error:
        raise RegistryError(f"push of {artifact.ref} failed: {_short(error)}") from None
    except (docker.errors.DockerException, OSError, urllib3.exceptions.HTTPError) as error:
        raise DockerError(
            f"push of {artifact.ref}: the connection to the Docker daemon broke {step} ({_first_arg(error)}); "
            "is the daemon still running?"
        ) from None
    if not artifact.digest:
        raise RegistryError(f"push of {artifact.ref} ended without a digest; the registry did not confirm it")
    artifact.pushed = True


#: Registry error codes (as the daemon words them) that mean "no such tag / repository".
ABSENT_MARKERS = ("manifest unknown", "name unknown", "not found")


def registry_digest(client, artifact: ImageArtifact, auth: dict[str, str] | None) -> str | None:
    """Digest of repository:tag in the registry, asked through the daemon with push's credentials.

    None only when the daemon answers 404 (its NotFound) with the registry's "manifest unknown" /
    "name unknown". Anything else (401, "no basic auth credentials", connection refused, a
    non-registry answering, a daemon that went away) raises RegistryError: never "absent".
    """
    import docker.errors
    import requests.exceptions

    try:
        data = client.api.inspect_distribution(artifact.ref, auth_config=auth)
    except docker.errors.APIError as error:
        text = str(error.explanation or error).lower()
        if error.status_code == 404 and any(marker in text for marker in ABSENT_MARKERS):
            return None
        raise RegistryError(
            f"cannot look up {artifact.ref} in its registry (so cannot tell whether to build): "
            f"{_short(error)}{_auth_hint(text)}"
        ) from None
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as error:
        raise DockerError(f"cannot look up {artifact.ref} through the Docker daemon: {_short(error)}") from None
    digest = (data.get("Descriptor") or {}).get("digest")
    if not digest:
        raise RegistryError(f"cannot look up {artifact.ref}: the daemon's answer has no digest: {data!r:.200}")
    return digest


def _auth_hint(text: str) -> str:
    lowered = str(text).lower()
    if any(word in lowered for word in ("unauthorized", "authentication required", "denied", "no basic auth")):
        return (
            " (the registry wants credentials: `docker login`, or set INVOKE_PACHYDERM_REGISTRY_USERNAME "
            "and INVOKE_PACHYDERM_REGISTRY_PASSWORD)"
        )
    return ""


def _first_arg(error: BaseException) -> str:
    """urllib3 wraps the cause as (message, cause): the message alone says it."""
    return error.args[0] if error.args and isinstance(error.args[0], str) else _short(error)


def _short(error: BaseException) -> str:
    text = getattr(error, "explanation", None) or str(error)
    return " ".join(str(text).split())[:300]
