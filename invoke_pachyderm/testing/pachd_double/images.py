"""Does a pipeline's image exist? Asked of a Distribution (v2) registry.

The registry host in the image reference is ignored: the repository path after
it is looked up in the one configured registry, the way a kubelet pulling from a
mirror would see it.  ``HEAD /v2/<path>/manifests/<tag or digest>`` with the
Accept headers for Docker v2 and OCI manifests and indexes.
"""
from __future__ import annotations

import urllib.error
import urllib.request
from dataclasses import dataclass

MANIFEST_MEDIA_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)


@dataclass(frozen=True)
class ImageRef:
    path: str
    reference: str  # tag or digest


@dataclass(frozen=True)
class PullResult:
    present: bool
    reason: str = ""


def _is_registry_host(component: str) -> bool:
    return "." in component or ":" in component or component == "localhost"


def parse_image_ref(image: str) -> ImageRef:
    """Split ``[host[:port]/]path[:tag][@digest]``; the tag defaults to latest."""
    name, _, digest = image.partition("@")
    tag = ""
    last_slash, last_colon = name.rfind("/"), name.rfind(":")
    if last_colon > last_slash:
        name, tag = name[:last_colon], name[last_colon + 1:]
    parts = name.split("/")
    if len(parts) > 1 and _is_registry_host(parts[0]):
        parts = parts[1:]
    return ImageRef(path="/".join(parts), reference=digest or tag or "latest")


class RegistryChecker:
    """Answers "is this image pullable?"; no registry configured means yes."""

    def __init__(self, registry_url: str | None, timeout: float = 2.0):
        self.registry_url = registry_url.rstrip("/") if registry_url else None
        self.timeout = timeout
        self._answers: dict[str, PullResult] = {}  # one checker answers one RPC: asked once per image

    def check(self, image: str) -> PullResult:
        if not self.registry_url:
            return PullResult(True)
        if image not in self._answers:
            self._answers[image] = self._ask(image)
        return self._answers[image]

    def _ask(self, image: str) -> PullResult:
        ref = parse_image_ref(image)
        url = f"{self.registry_url}/v2/{ref.path}/manifests/{ref.reference}"
        request = urllib.request.Request(url, method="HEAD")
        request.add_header("Accept", ", ".join(MANIFEST_MEDIA_TYPES))
        try:
            with urllib.request.urlopen(request, timeout=self.timeout):
                return PullResult(True)
        except urllib.error.HTTPError as err:
            return PullResult(False, _http_reason(image, err.code))
        except (urllib.error.URLError, OSError) as err:
            return PullResult(False, f"image pull failed: {image}: {err}")


def _http_reason(image: str, status: int) -> str:
    if status == 404:
        return f"image pull failed: manifest for {image} not found"
    return f"image pull failed: registry answered HTTP {status} for {image}"
