"""pytest fixtures for the pachd double: ``pytest_plugins = ["invoke_pachyderm.testing.pytest_plugin"]``.

``pachd`` is a started ``PachdDouble``, emptied before each test; one server serves the session.
``pachd_address`` is its ``host:port``. The modelled pachd version comes from the ini option
``pachd_double_version`` (default 2.12.0; 2.7.x models a pachd without cluster/project defaults).
"""
from __future__ import annotations

import pytest

from invoke_pachyderm.testing.pachd_double import PachdDouble

DEFAULT_VERSION = "2.12.0"


def pytest_addoption(parser) -> None:
    parser.addini("pachd_double_version", "pachd version the double models", default=DEFAULT_VERSION)


@pytest.fixture(scope="session")
def pachd_double_server(pytestconfig):
    double = PachdDouble(version=pytestconfig.getini("pachd_double_version") or DEFAULT_VERSION).start()
    yield double
    double.stop()


@pytest.fixture
def pachd(pachd_double_server):
    pachd_double_server.start()  # again, if the previous test stopped it
    pachd_double_server.reset()
    return pachd_double_server


@pytest.fixture
def pachd_address(pachd) -> str:
    return pachd.address
