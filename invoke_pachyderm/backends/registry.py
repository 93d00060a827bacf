"""The registry's own HTTP API (distribution spec v2): is repository:tag there, and at which digest.

Asked before anything imports docker, so an image already pushed costs one HEAD request and no
daemon round trip. Anything but a clear answer returns None; docker_images then asks the daemon.
"""
from __future__ import annotations

import json
import os

from invoke_pachyderm.core.artifacts import ImageArtifact

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
DIRECT_TIMEOUT = 5.0


def split_reference(repository: str) -> tuple[str, str] | None:
    """(registry host, repository path) when the repository names its registry, else None (Docker Hub)."""
    first, sep, rest = repository.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost") and rest:
        return first, rest
    return None


def direct_digest(artifact: ImageArtifact, auth: dict[str, str] | None, environ=None) -> str | None:
    """The digest if the registry itself says repository:tag is there (HTTP HEAD of the manifest).

    Saves importing docker and a daemon round-trip per image when nothing needs building. It
    sends push's explicit credentials, or the docker config's stored `auth` for the host, else
    none. Only a 200 with a Docker-Content-Digest counts; anything else (404, 401, TLS or
    connection trouble, a proxy in the way, Docker Hub) returns None and the daemon, with
    exactly push's credential resolution, gives the authoritative answer or error.
    """
    import http.client

    environ = os.environ if environ is None else environ
    parts = split_reference(artifact.repository)
    if parts is None:
        return None
    host, path = parts
    loopback = _is_loopback(host)
    if not loopback and any(environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy")):
        return None
    basic = _basic_token(auth, host, environ)
    # On loopback plain HTTP first (the usual local registry; no CA bundle to load), then TLS.
    for scheme in ("http", "https") if loopback else ("https",):
        try:
            status, headers = _head_manifest(scheme, host, path, artifact.tag, basic)
        except (OSError, ValueError, http.client.HTTPException):
            continue  # wrong scheme for this port, or unreachable: try the next, then the daemon
        if status == 400:
            continue  # "client sent an HTTP request to an HTTPS server"
        if status == 200 and headers.get("docker-content-digest", "").startswith("sha256:"):
            return headers["docker-content-digest"]
        return None
    return None


def _head_manifest(scheme: str, host: str, path: str, tag: str, basic: str | None):
    import http.client

    connection_class = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
    connection = connection_class(host, timeout=DIRECT_TIMEOUT)
    try:
        headers = {"Accept": ", ".join(MANIFEST_TYPES)}
        if basic:
            headers["Authorization"] = f"Basic {basic}"
        connection.request("HEAD", f"/v2/{path}/manifests/{tag}", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}
    finally:
        connection.close()


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in ("localhost", "[::1]", "::1") or name.startswith("127.")


def _basic_token(auth: dict[str, str] | None, host: str, environ) -> str | None:
    import base64

    if auth:
        return base64.b64encode(f"{auth['username']}:{auth['password']}".encode()).decode()
    config_dir = environ.get("DOCKER_CONFIG") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".docker")
    try:
        with open(os.path.join(config_dir, "config.json"), encoding="utf-8") as handle:
            auths = json.load(handle).get("auths") or {}
    except (OSError, ValueError, AttributeError):
        return None
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        name = key.split("://", 1)[-1].split("/", 1)[0]
        if name == host and isinstance(entry, dict) and entry.get("auth"):
            return str(entry["auth"])
    return None
