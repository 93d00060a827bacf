"""The service fixtures work against the real Docker Engine and registries."""
from __future__ import annotations

import pytest

from fixtures_services import write_busybox_context


def push_stream(docker_client, ref: str, tag: str, **kwargs) -> list[dict]:
    """Push and return the decoded stream (docker-py does not raise on push errors)."""
    return list(docker_client.images.push(ref, tag=tag, stream=True, decode=True, **kwargs))


def errors(stream: list[dict]) -> list[dict]:
    return [line for line in stream if "errorDetail" in line or "error" in line]


def pushed_digest(stream: list[dict]) -> str | None:
    for line in stream:
        aux = line.get("aux") or {}
        if aux.get("Digest"):
            return aux["Digest"]
    return None


def test_engine_is_private_and_answers(docker_client, services):
    assert docker_client.ping() is True
    info = docker_client.info()
    assert services.docker_host.startswith("unix://")
    assert services.docker_host != "unix:///var/run/docker.sock"
    assert info["Driver"] in ("overlay2", "vfs")


def test_write_busybox_context(tmp_path):
    ctx = write_busybox_context(
        tmp_path / "ctx", run_seconds=2, extra_files={"app/hello.txt": "hi\n", ".dockerignore": "x\n"}
    )
    assert ctx == tmp_path / "ctx"
    assert (ctx / "busybox").stat().st_size > 100_000
    assert (ctx / "app" / "hello.txt").read_text() == "hi\n"
    assert (ctx / "Dockerfile").read_text().splitlines() == [
        "FROM scratch",
        "COPY busybox /busybox",
        "COPY app/hello.txt /app/hello.txt",
        'RUN ["/busybox", "sleep", "2"]',
        'ENTRYPOINT ["/busybox"]',
    ]


def test_unique_repo(unique_repo):
    assert unique_repo.startswith("test/test-unique-repo-")


@pytest.mark.parametrize("network_mode", [None, "none", "host"])
def test_build_with_run_step(docker_client, busybox_context, unique_repo, network_mode):
    """The classic builder runs RUN steps on a dockerd with --bridge=none, in every network mode."""
    ctx = busybox_context(run_seconds=1, extra_files={"hello.txt": "hello from the image\n"})
    kwargs = {} if network_mode is None else {"network_mode": network_mode}
    tag = f"{unique_repo}:built"
    image, logs = docker_client.images.build(
        path=str(ctx), tag=tag, rm=True, forcerm=True, nocache=True, **kwargs
    )
    try:
        assert any("sleep" in (line.get("stream") or "") for line in logs)
        out = docker_client.containers.run(image.id, ["cat", "/hello.txt"], remove=True)
        assert out == b"hello from the image\n"
    finally:
        # By tag, never by id: identical contexts in other tests can share image ids.
        docker_client.images.remove(tag)


def test_build_and_push_to_open_registry(docker_client, registry, busybox_context, unique_repo):
    ref = registry.ref(unique_repo)
    assert registry.tags(unique_repo) == []
    assert registry.manifest_digest(unique_repo, "v1") is None

    ctx = busybox_context(run_seconds=1)
    image, _ = docker_client.images.build(path=str(ctx), tag=f"{ref}:v1", rm=True, forcerm=True)
    assert f"{ref}:v1" in image.tags

    stream = push_stream(docker_client, ref, "v1")
    assert not errors(stream), stream
    assert registry.tags(unique_repo) == ["v1"]
    digest = registry.manifest_digest(unique_repo, "v1")
    assert digest and digest.startswith("sha256:")
    assert digest == pushed_digest(stream)
    assert registry.manifest_digest(unique_repo, "no-such-tag") is None

    # A second tag of the same image has the same manifest digest.
    image.tag(ref, "v2")
    assert not errors(push_stream(docker_client, ref, "v2"))
    assert registry.tags(unique_repo) == ["v1", "v2"]
    assert registry.manifest_digest(unique_repo, "v2") == digest

    # What was pushed can be pulled back after removing the local copy.
    docker_client.images.remove(f"{ref}:v1")
    docker_client.images.remove(f"{ref}:v2")
    pulled = docker_client.images.pull(ref, tag="v1")
    assert pulled.id == image.id


def test_auth_registry_requires_credentials(docker_client, auth_registry, busybox_context, unique_repo):
    assert auth_registry.username and auth_registry.password
    assert auth_registry.request("GET", "/v2/", auth=False)[0] == 401
    assert auth_registry.ping() == 200

    ref = auth_registry.ref(unique_repo)
    image, _ = docker_client.images.build(path=str(busybox_context()), tag=f"{ref}:v1", rm=True)

    denied = push_stream(docker_client, ref, "v1")
    assert errors(denied), denied
    assert auth_registry.tags(unique_repo) == []

    wrong = push_stream(docker_client, ref, "v1", auth_config={"username": auth_registry.username, "password": "wrong"})
    assert errors(wrong), wrong

    stream = push_stream(
        docker_client,
        ref,
        "v1",
        auth_config={"username": auth_registry.username, "password": auth_registry.password},
    )
    assert not errors(stream), stream
    assert auth_registry.tags(unique_repo) == ["v1"]
    digest = auth_registry.manifest_digest(unique_repo, "v1")
    assert digest == pushed_digest(stream)
    # By tag, never by id: other tests may build the very same image (same id).
    docker_client.images.remove(f"{ref}:v1")
