"""Fixtures for the Docker Engine and registries (see scripts/services.sh).

Star-imported by tests/conftest.py. Everything here talks to REAL services: a private
dockerd (its own socket, data-root and exec-root) and two Distribution v2 registries on
127.0.0.1 — an open one and one with htpasswd auth.

Where the services come from (session fixture ``services``):

* If ``DOCKER_HOST`` and ``INVOKE_PACHYDERM_TEST_REGISTRY`` are set (e.g. after
  ``source .services/env``, as .ci/run does), those are used and never stopped here.
* Otherwise ``scripts/services.sh start`` is run with ``SERVICES_DIR=.services/pytest-<pid>``
  and free ports, its env file is read, the variables are exported into ``os.environ`` for
  the session (so code under test using ``docker.from_env()`` or subprocesses reach the same
  daemon), and the services are stopped (and that directory removed) at session end.
  Set ``INVOKE_PACHYDERM_TEST_KEEP_SERVICES=1`` to keep the directory (logs) afterwards.

Nothing here skips: if the services cannot be started or reached, the test fails with the
tail of the service logs.

Fixtures: ``services``, ``docker_client``, ``registry``, ``auth_registry``,
``busybox_context``, ``unique_repo``. Plain helpers: ``write_busybox_context``,
``Registry``, ``ServicesInfo``, ``BUSYBOX``.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import pytest

__all__ = [
    "BUSYBOX",
    "REPO_ROOT",
    "SERVICES_SH",
    "Registry",
    "ServicesInfo",
    "write_busybox_context",
    "services",
    "docker_client",
    "registry",
    "auth_registry",
    "busybox_context",
    "unique_repo",
]

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES_SH = REPO_ROOT / "scripts" / "services.sh"
#: The static busybox binary (Debian package busybox-static) copied into test images.
BUSYBOX = Path("/bin/busybox")

_ENV_KEYS = (
    "DOCKER_HOST",
    "INVOKE_PACHYDERM_TEST_REGISTRY",
    "INVOKE_PACHYDERM_TEST_AUTH_REGISTRY",
    "INVOKE_PACHYDERM_TEST_AUTH_USER",
    "INVOKE_PACHYDERM_TEST_AUTH_PASSWORD_FILE",
)

MANIFEST_ACCEPT = ", ".join(
    [
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.oci.image.index.v1+json",
    ]
)


# --------------------------------------------------------------------------- busybox contexts


def write_busybox_context(
    dir: os.PathLike | str,
    run_seconds: float = 0,
    extra_files: Mapping[str, str | bytes] | None = None,
) -> Path:
    """Write a tiny build context into ``dir`` (created if needed) and return it as a Path.

    Dockerfile::

        FROM scratch
        COPY busybox /busybox
        COPY <each extra file> /<same relative path>      # if extra_files
        RUN ["/busybox", "sleep", "<run_seconds>"]         # if run_seconds > 0
        ENTRYPOINT ["/busybox"]

    ``extra_files`` maps relative paths (may contain "/") to str or bytes contents; they
    are written into the context and COPYed into the image at the same path (except a
    ``.dockerignore``, which is only written). The image runs busybox applets, e.g.
    ``containers.run(image, ["cat", "/hello.txt"])``.

    The same arguments give byte-identical contexts, so the daemon's build cache gives the
    same image id to every test that builds one: remove images by tag, not by id (pass
    different ``extra_files`` or ``nocache=True`` to get a distinct image).
    """
    if not BUSYBOX.is_file():
        raise FileNotFoundError(
            f"{BUSYBOX} not found: install the Debian package busybox-static (scripts/setup.sh)"
        )
    ctx = Path(dir)
    ctx.mkdir(parents=True, exist_ok=True)
    shutil.copy2(BUSYBOX, ctx / "busybox")
    lines = ["FROM scratch", "COPY busybox /busybox"]
    for rel, content in (extra_files or {}).items():
        rel_path = Path(rel)
        if rel_path.is_absolute() or ".." in rel_path.parts:
            raise ValueError(f"extra file path must be relative inside the context: {rel!r}")
        target = ctx / rel_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content)
        if rel_path.as_posix() != ".dockerignore":
            lines.append(f"COPY {rel_path.as_posix()} /{rel_path.as_posix()}")
    if run_seconds and run_seconds > 0:
        lines.append(f'RUN ["/busybox", "sleep", "{run_seconds:g}"]')
    lines.append('ENTRYPOINT ["/busybox"]')
    (ctx / "Dockerfile").write_text("\n".join(lines) + "\n")
    return ctx


@pytest.fixture
def busybox_context(tmp_path) -> Callable[..., Path]:
    """Returns ``make(dir=None, run_seconds=0, extra_files=None) -> Path``.

    ``dir`` defaults to a fresh directory under tmp_path. See write_busybox_context.
    """
    counter = {"n": 0}

    def make(
        dir: os.PathLike | str | None = None,
        run_seconds: float = 0,
        extra_files: Mapping[str, str | bytes] | None = None,
    ) -> Path:
        if dir is None:
            counter["n"] += 1
            dir = tmp_path / f"busybox-context-{counter['n']}"
        return write_busybox_context(dir, run_seconds=run_seconds, extra_files=extra_files)

    return make


@pytest.fixture
def unique_repo(request) -> str:
    """A registry repository name unique to this test run: ``test/<test-name-slug>-<random>``."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    return f"test/{slug or 'repo'}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------- registries


class Registry:
    """A Distribution v2 registry on loopback, queried with urllib (no proxies)."""

    def __init__(self, host: str, username: str | None = None, password: str | None = None):
        self.host = host
        self.url = f"http://{host}"
        self.username = username
        self.password = password
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def __repr__(self) -> str:
        auth = f", username={self.username!r}" if self.username else ""
        return f"Registry({self.host!r}{auth})"

    @property
    def auth_config(self) -> dict | None:
        """``auth_config`` for docker-py (``images.push(..., auth_config=...)``), or None."""
        if self.username is None:
            return None
        return {"username": self.username, "password": self.password}

    def ref(self, repo: str, tag: str | None = None) -> str:
        """Image reference in this registry: ``127.0.0.1:5000/<repo>[:<tag>]``."""
        return f"{self.host}/{repo}" + (f":{tag}" if tag else "")

    def request(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, auth: bool = True
    ):
        """Do one HTTP request; returns (status, headers, body). HTTP errors are returned,
        not raised; connection errors raise."""
        req = urllib.request.Request(self.url + path, method=method, headers=dict(headers or {}))
        if auth and self.username is not None:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with self._opener.open(req, timeout=30) as resp:
                return resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as err:
            with err:
                return err.code, err.headers, err.read()

    def _check(self, status, body, what):
        if status == 401:
            raise PermissionError(f"{self.host}: 401 Unauthorized for {what}: {body[:200]!r}")
        if status >= 400:
            raise RuntimeError(f"{self.host}: HTTP {status} for {what}: {body[:300]!r}")

    def ping(self) -> int:
        """Status of GET /v2/ (200 open, 200 with valid credentials, 401 otherwise)."""
        status, _, _ = self.request("GET", "/v2/")
        return status

    def manifest_digest(self, repo: str, tag: str) -> str | None:
        """Docker-Content-Digest of ``repo:tag`` (docker v2 / OCI manifest or index), or None
        if the registry has no such manifest."""
        path = f"/v2/{repo}/manifests/{urllib.parse.quote(tag, safe='')}"
        headers = {"Accept": MANIFEST_ACCEPT}
        status, hdrs, body = self.request("HEAD", path, headers)
        if status == 404:
            return None
        if status == 200 and hdrs.get("Docker-Content-Digest"):
            return hdrs["Docker-Content-Digest"]
        status, hdrs, body = self.request("GET", path, headers)
        if status == 404:
            return None
        self._check(status, body, f"manifest {repo}:{tag}")
        return hdrs.get("Docker-Content-Digest") or "sha256:" + hashlib.sha256(body).hexdigest()

    def tags(self, repo: str) -> list[str]:
        """Tags of ``repo`` (sorted); [] if the repository does not exist."""
        status, _, body = self.request("GET", f"/v2/{repo}/tags/list")
        if status == 404:
            return []
        self._check(status, body, f"tags of {repo}")
        return sorted(json.loads(body or b"{}").get("tags") or [])


# --------------------------------------------------------------------------- services


@dataclass
class ServicesInfo:
    docker_host: str
    registry_host: str
    auth_registry_host: str | None
    auth_user: str | None
    auth_password: str | None
    #: SERVICES_DIR when started by this fixture (logs are there), else None
    services_dir: Path | None = None
    started_here: bool = False
    env: dict = field(default_factory=dict)

    def log_tail(self, lines: int = 30) -> str:
        return _log_tail(self.services_dir, lines) if self.services_dir else ""


def _log_tail(services_dir: Path | None, lines: int = 30) -> str:
    if services_dir is None or not services_dir.is_dir():
        return ""
    out = []
    for log in sorted(services_dir.glob("*.log")):
        try:
            text = log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        out.append(f"---- {log} (last {len(text)} lines) ----\n" + "\n".join(text))
    return "\n".join(out)


def _parse_env_file(path: Path) -> dict:
    env = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$", line)
        if m:
            value = m.group(2).strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[m.group(1)] = value
    return env


def _free_ports(n: int) -> list[int]:
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def _info_from_env(env: Mapping[str, str], **kw) -> ServicesInfo:
    pw_file = env.get("INVOKE_PACHYDERM_TEST_AUTH_PASSWORD_FILE")
    password = None
    if pw_file:
        try:
            password = Path(pw_file).read_text().strip()
        except OSError as err:
            pytest.fail(f"cannot read the auth registry password file {pw_file}: {err}")
    return ServicesInfo(
        docker_host=env["DOCKER_HOST"],
        registry_host=env["INVOKE_PACHYDERM_TEST_REGISTRY"],
        auth_registry_host=env.get("INVOKE_PACHYDERM_TEST_AUTH_REGISTRY") or None,
        auth_user=env.get("INVOKE_PACHYDERM_TEST_AUTH_USER") or None,
        auth_password=password,
        env={k: env[k] for k in _ENV_KEYS if env.get(k)},
        **kw,
    )


def _run_services(cmd: str, env: Mapping[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SERVICES_SH), cmd],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def services() -> ServicesInfo:
    """The Docker Engine + registries for this test session (see module docstring)."""
    if os.environ.get("DOCKER_HOST") and os.environ.get("INVOKE_PACHYDERM_TEST_REGISTRY"):
        yield _info_from_env(os.environ)
        return

    services_dir = REPO_ROOT / ".services" / f"pytest-{os.getpid()}"
    reg_port, auth_port = _free_ports(2)
    env = dict(os.environ)
    env.update(
        SERVICES_DIR=str(services_dir),
        REGISTRY_PORT=str(reg_port),
        AUTH_REGISTRY_PORT=str(auth_port),
    )
    env.pop("DOCKER_HOST", None)

    def stop() -> subprocess.CompletedProcess:
        return _run_services("stop", env, timeout=180)

    try:
        proc = _run_services("start", env, timeout=300)
    except subprocess.TimeoutExpired as err:
        stop()
        pytest.fail(
            f"scripts/services.sh start timed out after {err.timeout}s\n{_log_tail(services_dir)}",
            pytrace=False,
        )
    if proc.returncode != 0:
        stop()
        pytest.fail(
            f"scripts/services.sh start failed (exit {proc.returncode}):\n"
            f"{proc.stdout}{proc.stderr}\n{_log_tail(services_dir)}",
            pytrace=False,
        )

    file_env = _parse_env_file(services_dir / "env")
    info = _info_from_env(file_env, services_dir=services_dir, started_here=True)
    mp = pytest.MonkeyPatch()
    for key, value in info.env.items():
        mp.setenv(key, value)
    try:
        yield info
    finally:
        mp.undo()
        result = stop()
        if result.returncode != 0:
            raise RuntimeError(
                f"scripts/services.sh stop failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
        if not os.environ.get("INVOKE_PACHYDERM_TEST_KEEP_SERVICES"):
            shutil.rmtree(services_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_client(services, tmp_path_factory):
    """docker.DockerClient for the test daemon. Its credential config is an empty file of
    its own, so the machine's ~/.docker/config.json never leaks into tests."""
    import docker

    client = docker.DockerClient(base_url=services.docker_host, timeout=600)
    cfg = tmp_path_factory.mktemp("docker-config") / "config.json"
    cfg.write_text('{"auths": {}}')
    client.api.reload_config(str(cfg))
    try:
        client.ping()
    except Exception as err:  # noqa: BLE001 - report any failure to reach the daemon
        client.close()
        pytest.fail(
            f"Docker Engine at {services.docker_host} does not answer: {err}\n{services.log_tail()}",
            pytrace=False,
        )
    yield client
    client.close()


def _registry_fixture(host: str, services: ServicesInfo, **auth) -> Registry:
    reg = Registry(host, **auth)
    try:
        status = reg.ping()
    except OSError as err:
        pytest.fail(f"registry {host} does not answer: {err}\n{services.log_tail()}", pytrace=False)
    if status not in (200, 401):
        pytest.fail(f"registry {host}: GET /v2/ -> {status}\n{services.log_tail()}", pytrace=False)
    return reg


@pytest.fixture(scope="session")
def registry(services) -> Registry:
    """The open registry (``.host`` e.g. "127.0.0.1:5000", ``.url``, ``.tags``, ``.manifest_digest``)."""
    return _registry_fixture(services.registry_host, services)


@pytest.fixture(scope="session")
def auth_registry(services) -> Registry:
    """The htpasswd registry, with ``.username``/``.password`` (and ``.auth_config``)."""
    if not (services.auth_registry_host and services.auth_user and services.auth_password):
        pytest.fail(
            "auth registry not configured: set INVOKE_PACHYDERM_TEST_AUTH_REGISTRY, "
            "INVOKE_PACHYDERM_TEST_AUTH_USER and INVOKE_PACHYDERM_TEST_AUTH_PASSWORD_FILE "
            "(source .services/env) or unset DOCKER_HOST so the fixture starts the services",
            pytrace=False,
        )
    reg = _registry_fixture(
        services.auth_registry_host,
        services,
        username=services.auth_user,
        password=services.auth_password,
    )
    if reg.ping() != 200:
        pytest.fail(f"auth registry {reg.host} rejects {reg.username}'s credentials", pytrace=False)
    return reg
