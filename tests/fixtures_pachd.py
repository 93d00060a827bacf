"""Fixtures for the pachd double.

``pachd`` is a started ``PachdDouble``: one server for the session, ``reset()``
before each test, and its configuration (registry_url, tokens, start_delay)
put back to the defaults afterwards, so a test may set e.g.
``pachd.registry_url = registry.url`` for itself.  ``pachd_client`` is a
python-pachyderm client for it.
"""
import pytest
import python_pachyderm

from invoke_pachyderm.testing.pachd_double import PachdDouble

__all__ = ["pachd_session", "pachd", "pachd_client", "PACHD_VERSIONS"]

_DEFAULTS = {"registry_url": None, "tokens": [], "start_delay": 0.05}
# One version without cluster/project defaults and one with (they arrived in 2.8.0).
PACHD_VERSIONS = ["2.7.8", "2.12.0"]


@pytest.fixture(scope="session", params=PACHD_VERSIONS, ids=lambda v: f"pachd-{v}")
def pachd_session(request):
    double = PachdDouble(version=request.param, **_DEFAULTS).start()
    yield double
    double.stop()


@pytest.fixture
def pachd(pachd_session):
    double = pachd_session
    double.start()  # again, if a test stopped it (stop_during_transaction)
    double.reset()
    yield double
    for name, value in _DEFAULTS.items():
        setattr(double, name, value)


@pytest.fixture
def pachd_client(pachd):
    return python_pachyderm.Client(host=pachd.host, port=pachd.port)
