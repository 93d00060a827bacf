"""The cluster's data: projects, repos and pipeline versions.

Stored protobufs are treated as immutable: an operation that changes one puts a
new message in its place.  That makes ``ClusterState.copy()`` a cheap shallow
copy, which is how writes stay all-or-nothing (work on a copy, swap on success)
the way pachd's SQL transactions are.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from google.protobuf import timestamp_pb2
from python_pachyderm.proto.v2.pfs import pfs_pb2
from python_pachyderm.proto.v2.pps import pps_pb2

DEFAULT_PROJECT = "default"
USER_REPO = "user"
SPEC_REPO = "spec"
META_REPO = "meta"

RepoKey = tuple  # (project, name, type)
PipelineKey = tuple  # (project, name)

_sequence = itertools.count(1)


def next_sequence() -> int:
    """A global creation order, newest highest (pachd lists newest first)."""
    return next(_sequence)


def now_timestamp() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


def repo_string(project: str, name: str, repo_type: str = USER_REPO) -> str:
    """pachd's Repo.String(): project/name, plus .type for system repos."""
    if repo_type == USER_REPO:
        return f"{project}/{name}"
    return f"{project}/{name}.{repo_type}"


@dataclass
class PipelineVersion:
    """One version of a pipeline as pachd stores it, plus lifecycle bookkeeping."""

    request: pps_pb2.CreatePipelineRequest
    info: pps_pb2.PipelineInfo
    started_at: float  # monotonic time the workers were (re)started
    sequence: int = field(default_factory=next_sequence)
    image_ok: bool = False  # the registry once answered "present"
    last_state: int = pps_pb2.PIPELINE_STARTING
    last_reason: str = ""


@dataclass
class ClusterState:
    projects: dict = field(default_factory=dict)  # name -> ProjectInfo
    repos: dict = field(default_factory=dict)  # RepoKey -> RepoInfo
    pipelines: dict = field(default_factory=dict)  # PipelineKey -> [PipelineVersion]
    # pachd >= 2.8 only: GetClusterDefaults' JSON and GetProjectDefaults' JSON by project
    cluster_defaults: str = "{}"
    project_defaults: dict = field(default_factory=dict)

    @classmethod
    def initial(cls, cluster_defaults: str = "{}") -> "ClusterState":
        state = cls(cluster_defaults=cluster_defaults)
        state.projects[DEFAULT_PROJECT] = pfs_pb2.ProjectInfo(
            project=pfs_pb2.Project(name=DEFAULT_PROJECT), created_at=now_timestamp()
        )
        return state

    def copy(self) -> "ClusterState":
        return ClusterState(
            projects=dict(self.projects),
            repos=dict(self.repos),
            pipelines={key: list(versions) for key, versions in self.pipelines.items()},
            cluster_defaults=self.cluster_defaults,
            project_defaults=dict(self.project_defaults),
        )

    def current(self, key: PipelineKey) -> PipelineVersion | None:
        versions = self.pipelines.get(key)
        return versions[-1] if versions else None
