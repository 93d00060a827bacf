"""The pachd double, driven only through python-pachyderm's public client.

Each test shows one rule of pachd the double follows (see
invoke_pachyderm/testing/pachd_double/server.py for what it does not model), with the
gRPC code and message a client sees.
"""
from __future__ import annotations

import http.server
import subprocess
import sys
import threading
import time

import grpc
import pytest
import python_pachyderm
from python_pachyderm.proto.v2.pfs import pfs_pb2
from python_pachyderm.proto.v2.pps import pps_pb2
from python_pachyderm.proto.v2.transaction import transaction_pb2

from invoke_pachyderm.testing.pachd_double import PachdDouble

STARTING = pps_pb2.PIPELINE_STARTING
RUNNING = pps_pb2.PIPELINE_RUNNING
CRASHING = pps_pb2.PIPELINE_CRASHING
PAUSED = pps_pb2.PIPELINE_PAUSED


# --- helpers -----------------------------------------------------------------


def client_for(double: PachdDouble, token: str | None = None) -> python_pachyderm.Client:
    return python_pachyderm.Client(host="127.0.0.1", port=double.port, auth_token=token)


def transform(image: str = "registry.example:5000/team/edges:1.0") -> pps_pb2.Transform:
    return pps_pb2.Transform(image=image, cmd=["python3", "/edges.py"])


def pfs_input(repo: str, glob: str = "/*", name: str = "") -> pps_pb2.Input:
    return pps_pb2.Input(pfs=pps_pb2.PFSInput(repo=repo, glob=glob, name=name))


def make_pipeline(client, name="edges", repo="images", image=None, **kwargs):
    kwargs.setdefault("input", pfs_input(repo))
    client.create_pipeline(name, transform=transform(image) if image else transform(), **kwargs)


def rpc_error(call, *args, **kwargs) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        result = call(*args, **kwargs)
        if hasattr(result, "__next__"):
            list(result)
    return caught.value


def inspect(client, name="edges", details=False) -> pps_pb2.PipelineInfo:
    return next(client.inspect_pipeline(name, details=details))


def repo_names(client, repo_type="user") -> set:
    return {(r.repo.name, r.repo.type) for r in client.list_repo(type=repo_type)}


class FakeRegistry:
    """A Distribution v2 registry that only answers HEAD /v2/<path>/manifests/<ref>."""

    def __init__(self, *images: str):
        self.manifests = {tuple(image.rsplit(":", 1)) for image in images}
        self.requests: list[tuple[str, str]] = []
        served = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_HEAD(self):
                served.requests.append((self.path, self.headers.get("Accept", "")))
                path, _, reference = self.path[len("/v2/"):].rpartition("/manifests/")
                self.send_response(200 if (path, reference) in served.manifests else 404)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def push(self, image: str) -> None:
        self.manifests.add(tuple(image.rsplit(":", 1)))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_registry():
    fake = FakeRegistry("team/edges:1.0")
    yield fake
    fake.close()


@pytest.fixture
def images_repo(pachd_client):
    pachd_client.create_repo("images")
    return "images"


# --- version and health --------------------------------------------------------


def test_version_is_the_one_modelled(pachd, pachd_client):
    version = pachd_client.get_remote_version()
    assert f"{version.major}.{version.minor}.{version.micro}" == pachd.version


def test_version_defaults_to_2_11_2():
    with PachdDouble() as double:
        version = client_for(double).get_remote_version()
    assert (version.major, version.minor, version.micro) == (2, 11, 2)


def test_version_is_configurable():
    with PachdDouble(version="2.9.4") as double:
        version = client_for(double).get_remote_version()
    assert (version.major, version.minor, version.micro) == (2, 9, 4)


def test_health_check_is_serving(pachd_client):
    from grpc_health.v1 import health_pb2

    assert pachd_client.health_check().status == health_pb2.HealthCheckResponse.SERVING


# --- projects ------------------------------------------------------------------


def test_default_project_exists(pachd_client):
    assert [p.project.name for p in pachd_client.list_project()] == ["default"]
    assert pachd_client.inspect_project("default").project.name == "default"


def test_create_project_twice_is_already_exists_unless_update(pachd_client):
    pachd_client.create_project("vision", description="first")
    err = rpc_error(pachd_client.create_project, "vision")
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.details() == "project vision already exists"
    pachd_client.create_project("vision", description="second", update=True)
    assert pachd_client.inspect_project("vision").description == "second"


def test_inspect_missing_project_is_not_found(pachd_client):
    err = rpc_error(pachd_client.inspect_project, "nope")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == 'error getting project "nope": project "nope" not found'


@pytest.mark.parametrize(
    "name, message",
    [
        ("bad name", "invalid project name: name (bad name) invalid: only alphanumeric "
                     "characters, underscores, and dashes are allowed"),
        ("_leading", "invalid project name: project names must start with an "
                     "alphanumeric character"),
        ("p" * 52, f'invalid project name: project name "{"p" * 52}" is 1 characters '
                   "longer than the 51 max"),
    ],
)
def test_project_names_follow_pachd_rules(pachd_client, name, message):
    err = rpc_error(pachd_client.create_project, name)
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert err.details() == message


def test_delete_project_with_repos_is_failed_precondition(pachd_client):
    pachd_client.create_project("vision")
    pachd_client.create_repo("raw", project_name="vision")
    err = rpc_error(pachd_client.delete_project, "vision")
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert err.details() == "cannot delete project vision: repo vision/raw still exists"
    pachd_client.delete_repo("raw", project_name="vision")
    pachd_client.delete_project("vision")
    assert [p.project.name for p in pachd_client.list_project()] == ["default"]


# --- repos ---------------------------------------------------------------------


def test_create_inspect_list_delete_repo(pachd_client):
    pachd_client.create_repo("images", description="raw images")
    info = pachd_client.inspect_repo("images")
    assert (info.repo.name, info.repo.type, info.repo.project.name) == ("images", "user", "default")
    assert info.description == "raw images"
    assert repo_names(pachd_client) == {("images", "user")}
    pachd_client.delete_repo("images")
    assert repo_names(pachd_client) == set()


def test_create_existing_repo_is_already_exists_unless_update(pachd_client):
    pachd_client.create_repo("images")
    err = rpc_error(pachd_client.create_repo, "images")
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.details() == "repo default/images already exists"
    pachd_client.create_repo("images", description="now described", update=True)
    assert pachd_client.inspect_repo("images").description == "now described"


def test_inspect_missing_repo_is_not_found(pachd_client):
    err = rpc_error(pachd_client.inspect_repo, "nope")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "repo default/nope not found"


@pytest.mark.parametrize("name", ["has space", "dotted.name", "slash/name", "colon:tag", ""])
def test_invalid_repo_names_are_refused(pachd_client, name):
    err = rpc_error(pachd_client.create_repo, name)
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert err.details() == (
        f"name ({name}) invalid: only alphanumeric characters, underscores, and dashes "
        "are allowed"
    )


def test_repo_names_have_no_length_limit_in_pachd(pachd_client):
    """ancestry.ValidateName has no length limit (pipelines do: 51)."""
    name = "r" * 100 + "-_9Z"
    pachd_client.create_repo(name)
    assert pachd_client.inspect_repo(name).repo.name == name


def test_repo_in_missing_project_is_not_found(pachd_client):
    err = rpc_error(pachd_client.create_repo, "raw", project_name="nope")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == 'cannot find project "nope": project "nope" not found'


def test_repos_are_per_project(pachd_client):
    pachd_client.create_project("vision")
    pachd_client.create_repo("raw", project_name="vision")
    pachd_client.create_repo("raw")
    vision = list(pachd_client.list_repo(projects_filter=[pfs_pb2.Project(name="vision")]))
    assert [(r.repo.project.name, r.repo.name) for r in vision] == [("vision", "raw")]
    assert len(list(pachd_client.list_repo())) == 2


def test_deleting_a_missing_repo_is_not_an_error(pachd_client):
    pachd_client.delete_repo("never-was")


def test_a_pipeline_output_repo_cannot_be_deleted(pachd_client, images_repo):
    make_pipeline(pachd_client)
    err = rpc_error(pachd_client.delete_repo, "edges")
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert err.details() == (
        "cannot delete a repo associated with a pipeline - delete the pipeline instead"
    )


# --- create pipeline -------------------------------------------------------------


def test_create_pipeline_makes_output_spec_and_meta_repos(pachd_client, images_repo):
    make_pipeline(pachd_client)
    assert repo_names(pachd_client, repo_type="") == {
        ("images", "user"), ("edges", "user"), ("edges", "spec"), ("edges", "meta"),
    }
    output = pachd_client.inspect_repo("edges")
    assert [b.name for b in output.branches] == ["master"]


def test_create_existing_pipeline_without_update_is_already_exists(pachd, pachd_client, images_repo):
    make_pipeline(pachd_client)
    err = rpc_error(make_pipeline, pachd_client, image="other:2")
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.details() == 'pipeline "edges" already exists'
    assert pachd.pipeline_versions() == {"edges": 1}
    assert pachd.pipeline_spec("edges")["transform"]["image"].endswith("edges:1.0")


def test_update_of_a_missing_pipeline_creates_it(pachd, pachd_client, images_repo):
    make_pipeline(pachd_client, update=True)
    assert pachd.pipeline_versions() == {"edges": 1}
    assert ("edges", "user") in repo_names(pachd_client)


def test_every_update_bumps_the_version_even_an_identical_one(pachd, pachd_client, images_repo):
    make_pipeline(pachd_client)
    make_pipeline(pachd_client, update=True)
    make_pipeline(pachd_client, update=True)
    assert pachd.pipeline_versions() == {"edges": 3}
    assert inspect(pachd_client).version == 3


def test_update_keeps_the_salt_unless_reprocess(pachd_client, images_repo):
    make_pipeline(pachd_client)
    salt = inspect(pachd_client, details=True).details.salt
    assert len(salt) == 32
    make_pipeline(pachd_client, update=True, salt="ignored-on-update")
    assert inspect(pachd_client, details=True).details.salt == salt
    make_pipeline(pachd_client, update=True, reprocess=True)
    assert inspect(pachd_client, details=True).details.salt != salt


def test_missing_input_repo_is_not_found_and_changes_nothing(pachd, pachd_client):
    err = rpc_error(make_pipeline, pachd_client, repo="missing")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "repo default/missing not found"
    assert pachd.pipeline_versions() == {}
    assert repo_names(pachd_client, repo_type="") == set()


def test_a_pipeline_is_read_as_input_through_its_output_repo(pachd, pachd_client, images_repo):
    make_pipeline(pachd_client)
    make_pipeline(pachd_client, name="montage", repo="edges")
    assert pachd.pipeline_versions() == {"edges": 1, "montage": 1}


def test_missing_transform_is_refused(pachd, pachd_client, images_repo):
    if pachd.has_defaults:
        # >= 2.8: builtInDefaults carry a transform (defaults.go), so the effective spec has one
        pachd_client.create_pipeline("edges", transform=None, input=pfs_input("images"))
        assert inspect(pachd_client, details=True).details.transform.image == "ubuntu:20.04"
        return
    err = rpc_error(pachd_client.create_pipeline, "edges", transform=None, input=pfs_input("images"))
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert err.details() == "pipeline must specify a transform"


def test_empty_image_defaults_to_ubuntu_as_pachd_does(pachd_client, images_repo):
    pachd_client.create_pipeline("edges", transform=pps_pb2.Transform(cmd=["true"]),
                                 input=pfs_input("images"))
    assert inspect(pachd_client, details=True).details.transform.image == "ubuntu:20.04"


@pytest.mark.parametrize(
    "name, message",
    [
        ("bad name", "invalid pipeline name: name (bad name) invalid: only alphanumeric "
                     "characters, underscores, and dashes are allowed"),
        ("e" * 52, f'pipeline name "{"e" * 52}" is 1 characters longer than the 51 max'),
        ("-dash", "pipeline names must start with an alphanumeric character"),
    ],
)
def test_pipeline_names_follow_pachd_rules(pachd_client, images_repo, name, message):
    err = rpc_error(make_pipeline, pachd_client, name=name)
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert err.details() == message


@pytest.mark.parametrize(
    "bad_input, message",
    [
        (pfs_input("images", glob=""), "input must specify a glob"),
        (pps_pb2.Input(cross=[pfs_input("images"), pfs_input("images")]),
         'name "images" was used more than once'),
        (pfs_input("images", name="out"),
         'input cannot be named "out", as pachyderm already creates /pfs/out to collect '
         "job output"),
        (pps_pb2.Input(), "no input set"),
    ],
)
def test_inputs_are_validated(pachd_client, images_repo, bad_input, message):
    err = rpc_error(make_pipeline, pachd_client, input=bad_input)
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert err.details() == message


def test_a_repo_already_named_like_the_pipeline_blocks_creation(pachd_client, images_repo):
    pachd_client.create_repo("edges")
    err = rpc_error(make_pipeline, pachd_client)
    assert err.code() == grpc.StatusCode.UNKNOWN
    assert err.details() == (
        'pipeline "edges" cannot be created because a repo with the same name already exists'
    )


def test_details_mirror_the_request_with_pachd_defaults(pachd_client, images_repo):
    make_pipeline(
        pachd_client,
        parallelism_spec=pps_pb2.ParallelismSpec(constant=4),
        metadata=pps_pb2.Metadata(labels={"team": "vision"}),
        description="finds edges",
    )
    info = inspect(pachd_client, details=True)
    assert info.parallelism == 4
    assert info.type == pps_pb2.PipelineInfo.PIPELINE_TYPE_TRANSFORM
    assert info.details.transform.cmd == ["python3", "/edges.py"]
    assert info.details.parallelism_spec.constant == 4
    assert dict(info.details.metadata.labels) == {"team": "vision"}
    assert info.details.description == "finds edges"
    assert (info.details.output_branch, info.details.datum_tries) == ("master", 3)
    assert info.details.reprocess_spec == "until_success"
    pfs = info.details.input.pfs
    assert (pfs.name, pfs.branch, pfs.repo_type, pfs.project) == ("images", "master", "user", "default")
    assert info.spec_commit.repo.type == "spec" and len(info.spec_commit.id) == 32


def test_pipeline_spec_is_the_request_as_received(pachd, pachd_client, images_repo):
    make_pipeline(pachd_client, description="finds edges")
    spec = pachd.pipeline_spec("edges")
    assert spec["pipeline"] == {"name": "edges", "project": {"name": "default"}}
    assert spec["transform"]["image"] == "registry.example:5000/team/edges:1.0"
    assert spec["input"]["pfs"]["repo"] == "images"
    assert spec["description"] == "finds edges"


# --- inspect and list ------------------------------------------------------------


def test_inspect_strips_details_unless_asked(pachd_client, images_repo):
    make_pipeline(pachd_client)
    assert not inspect(pachd_client).HasField("details")
    assert inspect(pachd_client, details=True).HasField("details")


def test_list_pipeline_returns_details_as_pachd_does(pachd_client, images_repo):
    make_pipeline(pachd_client)
    (info,) = pachd_client.list_pipeline()
    assert info.details.transform.image.endswith("edges:1.0")


def test_inspect_missing_pipeline_is_not_found(pachd_client):
    err = rpc_error(inspect, pachd_client, "nope")
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == (
        "pipeline was not inspected: couldn't find up to date spec for pipeline "
        '"default/nope": branch "master" not found in repo default/nope.spec'
    )


def test_list_pipeline_history_keeps_previous_versions(pachd_client, images_repo):
    for image in ("a:1", "a:2", "a:3"):
        make_pipeline(pachd_client, image=image, update=True)
    make_pipeline(pachd_client, name="other")

    def versions(**kwargs):
        return [(p.pipeline.name, p.version) for p in pachd_client.list_pipeline(**kwargs)]

    assert versions() == [("other", 1), ("edges", 3)]
    assert versions(history=1) == [("other", 1), ("edges", 3), ("edges", 2)]
    assert versions(history=-1) == [("other", 1), ("edges", 3), ("edges", 2), ("edges", 1)]
    old = [p.details.transform.image for p in pachd_client.inspect_pipeline("edges", history=-1)]
    assert old == ["a:3", "a:2", "a:1"]


def test_history_of_a_missing_pipeline_is_not_found(pachd_client):
    err = rpc_error(pachd_client.inspect_pipeline, "nope", history=1)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == 'could not list pipeline info: pipeline "nope" not found'


def test_list_pipeline_filters_by_project(pachd, pachd_client, images_repo):
    pachd_client.create_project("vision")
    pachd_client.create_repo("raw", project_name="vision")
    make_pipeline(pachd_client)
    make_pipeline(pachd_client, name="edges", repo="raw", project_name="vision")
    only = list(pachd_client.list_pipeline(projects_filter=[pfs_pb2.Project(name="vision")]))
    assert [(p.pipeline.project.name, p.pipeline.name) for p in only] == [("vision", "edges")]
    assert pachd.pipeline_versions("vision") == {"edges": 1}


# --- delete, stop, start -----------------------------------------------------------


def test_delete_pipeline_removes_versions_and_repos(pachd, pachd_client, images_repo):
    make_pipeline(pachd_client)
    pachd_client.delete_pipeline("edges")
    assert pachd.pipeline_versions() == {}
    assert repo_names(pachd_client, repo_type="") == {("images", "user")}


def test_delete_pipeline_keep_repo_keeps_the_output_repo(pachd_client, images_repo):
    make_pipeline(pachd_client)
    pachd_client.delete_pipeline("edges", keep_repo=True)
    assert repo_names(pachd_client, repo_type="") == {("images", "user"), ("edges", "user")}


def test_deleting_a_missing_pipeline_is_not_an_error(pachd_client):
    pachd_client.delete_pipeline("never-was")


def test_stop_pauses_and_start_restarts(pachd, pachd_client, images_repo):
    pachd.start_delay = 0
    make_pipeline(pachd_client)
    assert inspect(pachd_client).state == RUNNING
    pachd_client.stop_pipeline("edges")
    assert (inspect(pachd_client).state, inspect(pachd_client).stopped) == (PAUSED, True)
    make_pipeline(pachd_client, update=True)  # an update keeps it stopped
    assert inspect(pachd_client).state == PAUSED
    pachd.start_delay = 60
    pachd_client.start_pipeline("edges")
    assert (inspect(pachd_client).state, inspect(pachd_client).stopped) == (STARTING, False)
    pachd.start_delay = 0
    assert inspect(pachd_client).state == RUNNING


def test_stopping_a_missing_pipeline_is_ignored_starting_one_is_not_found(pachd_client):
    pachd_client.stop_pipeline("never-was")
    err = rpc_error(pachd_client.start_pipeline, "never-was")
    assert err.code() == grpc.StatusCode.NOT_FOUND


# --- pipeline state and the registry ---------------------------------------------------


def test_without_registry_a_pipeline_starts_then_runs(pachd, pachd_client, images_repo):
    make_pipeline(pachd_client)
    assert inspect(pachd_client).state == STARTING
    time.sleep(pachd.start_delay + 0.02)
    info = inspect(pachd_client)
    assert (info.state, info.reason) == (RUNNING, "")


def test_an_update_starts_the_pipeline_again(pachd, pachd_client, images_repo):
    pachd.start_delay = 0
    make_pipeline(pachd_client)
    assert inspect(pachd_client).state == RUNNING
    pachd.start_delay = 60
    make_pipeline(pachd_client, update=True)
    assert inspect(pachd_client).state == STARTING


def test_image_in_registry_runs(pachd, pachd_client, images_repo, fake_registry):
    pachd.registry_url = fake_registry.url
    pachd.start_delay = 0
    make_pipeline(pachd_client)  # registry.example:5000/team/edges:1.0
    assert inspect(pachd_client).state == RUNNING
    path, accept = fake_registry.requests[-1]
    assert path == "/v2/team/edges/manifests/1.0"
    for media_type in ("application/vnd.docker.distribution.manifest.v2+json",
                       "application/vnd.docker.distribution.manifest.list.v2+json",
                       "application/vnd.oci.image.manifest.v1+json",
                       "application/vnd.oci.image.index.v1+json"):
        assert media_type in accept


def test_image_missing_from_registry_crashes_with_reason(pachd, pachd_client, images_repo, fake_registry):
    pachd.registry_url = fake_registry.url
    pachd.start_delay = 0
    image = "registry.example:5000/team/edges:2.0"
    make_pipeline(pachd_client, image=image)
    info = inspect(pachd_client)
    assert info.state == CRASHING
    assert info.reason == f"image pull failed: manifest for {image} not found"
    fake_registry.push("team/edges:2.0")  # the pull is retried, as a kubelet does
    assert inspect(pachd_client).state == RUNNING


def test_image_is_checked_only_after_start_delay(pachd, pachd_client, images_repo, fake_registry):
    pachd.registry_url = fake_registry.url
    pachd.start_delay = 60
    make_pipeline(pachd_client, image="team/edges:9.9")
    assert inspect(pachd_client).state == STARTING
    assert fake_registry.requests == []


def test_tag_defaults_to_latest_and_digests_are_looked_up(pachd, pachd_client, images_repo, fake_registry):
    pachd.registry_url = fake_registry.url
    pachd.start_delay = 0
    digest = "sha256:" + "ab" * 32
    make_pipeline(pachd_client, name="untagged", image="localhost:5000/team/edges")
    make_pipeline(pachd_client, name="pinned", image=f"team/edges@{digest}")
    assert inspect(pachd_client, "untagged").state == CRASHING
    assert inspect(pachd_client, "pinned").state == CRASHING
    paths = [path for path, _ in fake_registry.requests]
    assert paths == ["/v2/team/edges/manifests/latest", f"/v2/team/edges/manifests/{digest}"]


def test_unreachable_registry_crashes_the_pipeline(pachd, pachd_client, images_repo):
    pachd.registry_url = "http://127.0.0.1:9"  # discard port: nothing listens
    pachd.start_delay = 0
    make_pipeline(pachd_client)
    info = inspect(pachd_client)
    assert info.state == CRASHING
    assert info.reason.startswith("image pull failed: registry.example:5000/team/edges:1.0: ")


# --- transactions ----------------------------------------------------------------------


def test_writes_in_a_transaction_apply_when_it_finishes(pachd, pachd_client):
    with pachd_client.transaction() as txn:
        pachd_client.create_repo("images")
        make_pipeline(pachd_client)
        assert repo_names(pachd_client) == set()  # reads see the cluster, not the transaction
        pending = pachd_client.inspect_transaction(txn)
        # >= 2.8: createPipeline appends a CreatePipelineTransaction (TransactionRequest field 11,
        # unknown to python-pachyderm 7.6's protos)
        kinds = [r.ListFields()[0][0].name if r.ListFields() else "create_pipeline_v2" for r in pending.requests]
        assert kinds == ["create_repo", "create_pipeline_v2" if pachd.has_defaults else "create_pipeline"]
        assert pending.version == 2
    assert repo_names(pachd_client) == {("images", "user"), ("edges", "user")}
    assert pachd.pipeline_versions() == {"edges": 1}


def test_an_invalid_write_is_refused_when_appended(pachd_client):
    txn = pachd_client.start_transaction()
    pachd_client.transaction_id = txn.id
    try:
        err = rpc_error(make_pipeline, pachd_client, repo="missing")
    finally:
        pachd_client.transaction_id = None
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "error running request 1 of 1: repo default/missing not found"
    assert list(pachd_client.inspect_transaction(txn).requests) == []


def test_finish_is_all_or_nothing_and_names_the_failing_request(pachd, pachd_client):
    txn = pachd_client.start_transaction()
    pachd_client.transaction_id = txn.id
    pachd_client.create_repo("images")
    pachd_client.create_repo("labels")
    pachd_client.transaction_id = None
    pachd_client.create_repo("labels")  # the second request now conflicts
    err = rpc_error(pachd_client.finish_transaction, txn)
    assert err.code() == grpc.StatusCode.ALREADY_EXISTS
    assert err.details() == "error running request 2 of 2: repo default/labels already exists"
    assert repo_names(pachd_client) == {("labels", "user")}
    assert len(pachd_client.inspect_transaction(txn).requests) == 2  # still there


def test_finished_and_deleted_transactions_are_not_found(pachd_client):
    finished = pachd_client.start_transaction()
    pachd_client.finish_transaction(finished)
    deleted = pachd_client.start_transaction()
    pachd_client.delete_transaction(deleted)
    for txn in (finished, deleted):
        err = rpc_error(pachd_client.inspect_transaction, txn)
        assert err.code() == grpc.StatusCode.NOT_FOUND
        assert err.details() == f"transactions {txn.id} not found"
    assert rpc_error(pachd_client.finish_transaction, finished).code() == grpc.StatusCode.NOT_FOUND


def test_an_exception_in_the_block_deletes_the_transaction(pachd_client):
    with pytest.raises(RuntimeError):
        with pachd_client.transaction():
            pachd_client.create_repo("images")
            raise RuntimeError("changed my mind")
    assert len(pachd_client.list_transaction()) == 0
    assert repo_names(pachd_client) == set()


def test_list_and_delete_all_transactions(pachd_client):
    ids = {pachd_client.start_transaction().id for _ in range(3)}
    assert {t.transaction.id for t in pachd_client.list_transaction()} == ids
    pachd_client.delete_all_transactions()
    assert len(pachd_client.list_transaction()) == 0


def test_batch_transaction_is_atomic(pachd_client):
    def create(name):
        repo = pfs_pb2.Repo(name=name, type="user")
        return transaction_pb2.TransactionRequest(create_repo=pfs_pb2.CreateRepoRequest(repo=repo))

    info = pachd_client.batch_transaction([create("a"), create("b")])
    assert len(info.responses) == 2
    err = rpc_error(pachd_client.batch_transaction, [create("c"), create("a")])
    assert err.details() == "error running request 2 of 2: repo default/a already exists"
    assert repo_names(pachd_client) == {("a", "user"), ("b", "user")}


def test_server_stopping_during_finish_applies_nothing(pachd, pachd_client):
    txn = pachd_client.start_transaction()
    pachd_client.transaction_id = txn.id
    pachd_client.create_repo("images")
    pachd_client.transaction_id = None
    pachd.stop_during_transaction()
    err = rpc_error(pachd_client.finish_transaction, txn)
    assert err.code() == grpc.StatusCode.UNAVAILABLE
    assert not pachd.running
    pachd.start()  # like pachd coming back: nothing applied, transaction still open
    client = client_for(pachd)
    assert repo_names(client) == set()
    assert len(client.inspect_transaction(txn).requests) == 1


# --- auth ----------------------------------------------------------------------------


def test_who_am_i_without_auth_is_not_activated(pachd_client):
    err = rpc_error(pachd_client.who_am_i)
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED
    assert err.details() == "the auth service is not activated"


def test_with_tokens_every_call_needs_one():
    with PachdDouble(tokens=["secret", "other"]) as double:
        anonymous, wrong, right = client_for(double), client_for(double, "nope"), client_for(double, "other")
        err = rpc_error(anonymous.list_repo)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.details() == "no authentication token (try logging in)"
        err = rpc_error(wrong.create_repo, "images")
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert err.details() == (
            "provided auth token is corrupted or has expired (try logging in again)")
        right.create_repo("images")
        assert right.who_am_i().username
        assert anonymous.get_remote_version().minor == 11  # version and health need none
        anonymous.health_check()


# --- steering: faults, delay, calls, reset ---------------------------------------------


def test_fail_next_fails_that_many_calls_then_recovers(pachd, pachd_client, images_repo):
    pachd.fail_next("CreatePipeline", grpc.StatusCode.UNAVAILABLE, count=2, message="pachd is busy")
    for _ in range(2):
        err = rpc_error(make_pipeline, pachd_client)
        assert (err.code(), err.details()) == (grpc.StatusCode.UNAVAILABLE, "pachd is busy")
    assert pachd.pipeline_versions() == {}
    make_pipeline(pachd_client)
    assert pachd.pipeline_versions() == {"edges": 1}


def test_calls_records_method_names_in_order(pachd, pachd_client, images_repo):
    inspect_err = rpc_error(inspect, pachd_client, "edges")
    assert inspect_err.code() == grpc.StatusCode.NOT_FOUND
    assert pachd.calls == ["CreateRepo", "InspectPipeline"]
    assert "CreatePipeline" not in pachd.calls


def test_set_delay_slows_every_call(pachd, pachd_client):
    pachd.set_delay(0.2)
    began = time.monotonic()
    list(pachd_client.list_repo())
    assert time.monotonic() - began >= 0.2


def test_set_delay_of_one_method_slows_only_that_method(pachd, pachd_client):
    pachd.set_delay(1.0, method="/pfs_v2.API/InspectRepo")
    began = time.monotonic()
    list(pachd_client.list_repo())
    assert time.monotonic() - began < 0.5
    began = time.monotonic()
    with pytest.raises(grpc.RpcError):
        pachd_client.inspect_repo("nope")
    assert time.monotonic() - began >= 1.0


def test_reset_forgets_everything_but_the_default_project(pachd, pachd_client, images_repo):
    pachd_client.create_project("vision")
    make_pipeline(pachd_client)
    pachd_client.start_transaction()
    pachd.fail_next("ListRepo", grpc.StatusCode.INTERNAL)
    pachd.reset()
    assert repo_names(pachd_client, repo_type="") == set()
    assert [p.project.name for p in pachd_client.list_project()] == ["default"]
    assert list(pachd_client.list_pipeline()) == []
    assert len(pachd_client.list_transaction()) == 0


def test_unmodelled_methods_are_unimplemented(pachd_client, images_repo):
    err = rpc_error(pachd_client.start_commit, "images", "master")
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED


def test_concurrent_updates_are_serialised(pachd, pachd_client, images_repo):
    make_pipeline(pachd_client)
    threads = [
        threading.Thread(target=lambda: [make_pipeline(client_for(pachd), update=True) for _ in range(5)])
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pachd.pipeline_versions() == {"edges": 21}
    assert [p.version for p in pachd_client.inspect_pipeline("edges", history=-1)] == list(range(21, 0, -1))


# --- command line ------------------------------------------------------------------------


def test_command_line_prints_its_port_and_serves():
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "invoke_pachyderm.testing.pachd_double", "--port", "0",
         "--token", "t1", "--token", "t2", "--version", "2.8.1", "--start-delay", "0"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        line = process.stdout.readline().strip()
        elapsed = time.monotonic() - began
        assert line.startswith("pachd double listening on 127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        client = python_pachyderm.Client(host="127.0.0.1", port=port, auth_token="t2")
        assert client.get_remote_version().minor == 8
        client.create_repo("images")
        assert elapsed < 5, elapsed  # well under a second on a quiet machine
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


# --- looking inside without the client ---------------------------------------------------


def test_create_repo_seeds_state_the_client_sees(pachd, pachd_client):
    pachd.create_repo("raw")
    assert repo_names(pachd_client) == {("raw", "user")}
    assert pachd.calls == ["ListRepo"]


def test_pipeline_info_shows_the_stored_version_with_details(pachd, pachd_client, images_repo):
    make_pipeline(pachd_client)
    make_pipeline(pachd_client, update=True)
    info = pachd.pipeline_info("edges")
    assert info["version"] == "2"  # uint64 is a string in proto JSON
    assert info["details"]["input"]["pfs"]["repo"] == "images"
    with pytest.raises(KeyError):
        pachd.pipeline_spec("nope")


def test_a_single_token_string_is_one_token():
    with PachdDouble(tokens="secret") as double:
        client_for(double, "secret").create_repo("images")
        assert rpc_error(client_for(double, "s").list_repo).code() == grpc.StatusCode.UNAUTHENTICATED


def test_list_pipeline_sends_each_pipeline_as_inspect_would_serialize_it(pachd, pachd_client, images_repo,
                                                                          fake_registry):
    """ListPipeline answers from lifecycle.WireCache (each stored info serialized once, state and
    reason spliced in): the bytes must be those of the message the double presents, byte for byte,
    for every state, a reason, history, and after a version's info was replaced (stop)."""
    pachd.registry_url = fake_registry.url
    make_pipeline(pachd_client, "a", image="team/edges:1.0", metadata=pps_pb2.Metadata(annotations={"k": "v"}))
    make_pipeline(pachd_client, "b", image="registry.invalid/nowhere:1")  # CRASHING, with a reason
    make_pipeline(pachd_client, "a", image="team/edges:1.0", update=True, description="second version")
    pachd_client.stop_pipeline("a")
    time.sleep(0.1)
    engine = pachd.engine
    for request in (pps_pb2.ListPipelineRequest(details=True), pps_pb2.ListPipelineRequest(history=-1)):
        wire = engine.list_pipelines_wire(request)
        presented = [info.SerializeToString() for info in engine.list_pipelines(request)]
        assert wire == presented
        infos = [pps_pb2.PipelineInfo.FromString(raw) for raw in wire]
        assert {(i.pipeline.name, i.version) for i in infos} >= {("a", 2), ("b", 1)}
    states = {i.pipeline.name: (i.state, i.reason) for i in pachd_client.list_pipeline()}
    assert states["a"][0] == PAUSED and states["b"][0] == CRASHING and states["b"][1]
