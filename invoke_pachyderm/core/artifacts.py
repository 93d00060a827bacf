"""The records stages return: what a commit produced (`Artifacts`), what a deploy will do
(`DeployPlan`), and the rows of `status` and `rollback`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

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
    # Whether its template read an image digest: False only when rendering saw every lookup (the
    # template was filled without Jinja), None when it cannot tell.
    reads_digest: bool | None = field(default=None, compare=False, repr=False)

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


@dataclass(frozen=True)
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
    checks: tuple[str, ...] = ()  # a deploy's: the checks its plan did

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
            "pipelines": [{**_fields_of(change), "defaults_note": change.defaults_note} for change in self.changes],
            **({"timings": self.timings.to_json()} if self.timings is not None else {}),
            **({"checks": list(self.checks)} if self.checks else {}),
        }


_SCALARS = (str, int, float, bool, type(None))


def _fields_of(record) -> dict[str, Any]:
    """asdict(record), for a dataclass whose fields hold plain scalars without asdict's deep copy
    of each (~30 us a record: a deploy of N pipelines prints N of them); else asdict itself."""
    values = {f.name: getattr(record, f.name) for f in fields(record)}
    if all(type(value) in _SCALARS for value in values.values()):
        return values
    return asdict(record)


@dataclass(frozen=True)
class DeployPlan:
    """What a deploy will do, decided before anything is built or changed (Terraform's plan):
    `deploy --dry-run` prints it and `flow.apply` executes exactly it."""

    git: GitInfo
    # Tagged before any build (the tag is the commit that last changed the image's inputs); each is
    # built and pushed unless the registry already has its tag, which apply asks after the tests.
    # The image backend records built/pushed/digest on them as it goes (what Ctrl-C reports).
    images: Mapping[str, ImageArtifact]
    specs: tuple[RenderedSpec, ...]  # rendered once, validated, in dependency order
    changes: tuple[PipelineChange, ...]  # create / update / unchanged, one per spec
    deletions: tuple[PipelineChange, ...]  # with --prune: "delete", downstream first
    doomed: tuple[Any, ...]  # the deployed pipelines those deletions remove
    deployed: Mapping[str, Any]  # the deployed pipelines the plan was computed against
    planned_versions: Mapping[str, int | None]  # what concurrency.guard re-reads before finishing
    owner: Any  # ownership.Owner stamped on every spec
    checks: tuple[str, ...]  # the checks done, in order
    wait: bool  # wait until the created and updated pipelines run

    @property
    def all_changes(self) -> list[PipelineChange]:
        return [*self.changes, *self.deletions]

    def artifacts(self, timings: Any = None) -> Artifacts:
        """The plan as the record adapters print (the `--dry-run` output)."""
        return Artifacts(self.git, dict(self.images), list(self.specs), self.all_changes, timings, self.checks)


@dataclass(frozen=True)
class PipelineStatus:
    """One row of `status`."""

    pipeline: str
    version: int
    state: str
    reason: str
    commit: str | None
    image: str | None
    behind_head: bool | None
    owner: str | None
    owned: bool
    legacy: bool = False  # deployed before owners existed, by this repository (ownership.py)


@dataclass(frozen=True)
class Restored:
    """One pipeline put back by `rollback` (or by a failed deploy's rollback)."""

    pipeline: str
    from_version: int
    from_commit: str | None
    restored_version: int
    restored_commit: str | None
    version: int  # the new version pachd gave the restored spec
