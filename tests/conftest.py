"""Shared fixtures. Service fixtures live in their own modules so each can be owned separately."""
import os

os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # no "Got goaway" noise when a double stops

from fixtures_services import *  # noqa: F401,F403  (docker engine, registries, busybox build contexts)
from fixtures_pachd import *  # noqa: F401,F403  (the pachd double)
from fixtures_pachd import PACHD_VERSIONS

import pytest  # noqa: E402


@pytest.fixture(params=PACHD_VERSIONS, ids=lambda v: f"pachd-{v}")
def cluster(request, registry):
    """A pachd double of its own that checks images against the test registry, with the `images`
    input repo seeded (the session-wide `pachd` fixture has no registry). Every test using it runs
    against pachd 2.7 (no defaults) and 2.12 (cluster defaults, CreatePipelineV2)."""
    from invoke_pachyderm.testing.pachd_double import PachdDouble

    double = PachdDouble(registry_url=registry.url, start_delay=0.05, version=request.param).start()
    double.create_repo("images")
    yield double
    double.stop()


@pytest.fixture
def client(cluster):
    import python_pachyderm

    return python_pachyderm.Client(host="127.0.0.1", port=cluster.port)


@pytest.fixture
def isolated_env(tmp_path, monkeypatch):
    """No real HOME, git, Pachyderm or Docker config, nor the user's INVOKE_PACHYDERM_* / CI
    variables, leak into a test. Returns the fake HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in list(os.environ):
        if name.startswith(("INVOKE_PACHYDERM_", "PACH", "GITHUB_", "DOCKER_CONFIG", "GIT_DIR", "GIT_WORK_TREE",
                            "GIT_INDEX", "GIT_CEILING")) or name == "CI":
            monkeypatch.delenv(name)
    return home
