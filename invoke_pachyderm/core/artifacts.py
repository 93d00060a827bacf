"""The one record passed from stage to stage: what a commit produced."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from invoke_pachyderm.core.gitinfo import GitInfo

# The namespace of the annotations this tool writes on a pipeline (provenance, owner).
ANNOTATION_PREFIX = "invoke-pachyderm.io/"


@dataclass
class ImageArtifact:
    name: str
    repository: str
    tag: str
    digest: str | None = None  # sha256:... once pushed or found in the registry
    built: bool = False
    pushed: bool = False
    skipped: str | None = None  # why build/push was skipped, e.g. "already in registry"
    commit: str | None = None  # the commit whose tree has the image's inputs (commit tags)
    source_date: int | None = None  # that commit's time, seconds since the epoch

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"

    @property
    def pinned_ref(self) -> str:
        return f"{self.ref}@{self.digest}" if self.digest else self.ref


@dataclass
class RenderedSpec:
    name: str
    source: str  # template path, relative to the project
    spec: dict[str, Any]
    path: Path | None = None  # where it was written

    @property
    def input_repos(self) -> list[str]:
        return sorted(set(_input_repos(self.spec.get("input") or {})))


def _input_repos(node: Any) -> list[str]:
    repos: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "pfs" and isinstance(value, dict) and value.get("repo"):
                repos.append(value["repo"])
            else:
                repos.extend(_input_repos(value))
    elif isinstance(node, list):
        for item in node:
            repos.extend(_input_repos(item))
    return repos


@dataclass
class PipelineChange:
    name: str
    action: str  # create | update | unchanged
    diff: str = ""
    version: int | None = None  # after applying
    previous_version: int | None = None
    defaults_changed: bool = False  # pachd >= 2.8: cluster/project defaults changed since previous_version

    @property
    def defaults_note(self) -> str:
        if not self.defaults_changed:
            return ""
        if self.action == "update":
            return (f"cluster or project defaults changed since version {self.previous_version}; "
                    "this update applies them too")
        return (f"cluster or project defaults changed since version {self.previous_version}; "
                "deploy --regenerate to apply them")


@dataclass
class Artifacts:
    git: GitInfo
    images: dict[str, ImageArtifact] = field(default_factory=dict)
    specs: list[RenderedSpec] = field(default_factory=list)
    changes: list[PipelineChange] = field(default_factory=list)
    timings: Any = None  # timings.Timings of the stages run, when measured

    def to_json(self) -> dict[str, Any]:
        return {
            "commit": self.git.commit,
            "branch": self.git.branch,
            "dirty": self.git.dirty,
            "images": {
                name: {**asdict(image), "ref": image.ref} for name, image in self.images.items()
            },
            "specs": [
                {"name": s.name, "source": s.source, "path": str(s.path) if s.path else None}
                for s in self.specs
            ],
            "pipelines": [{**asdict(change), "defaults_note": change.defaults_note} for change in self.changes],
            **({"timings": self.timings.to_json()} if self.timings is not None else {}),
        }
