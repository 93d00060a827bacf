"""Test helpers for projects that deploy with invoke-pachyderm.

``PachdDouble`` is a local gRPC server speaking pachd's own protocol (python-pachyderm talks to it
unchanged), with pachd's rules for pipelines, repos, transactions and, from version 2.8, cluster
and project defaults. It is NOT Pachyderm: no data, jobs or workers; what it leaves out is listed
at the top of ``testing/pachd_double/server.py``. Use it to test your deploy tasks, specs and CI
wiring without a cluster; run your pipelines' code on a real one.

    from invoke_pachyderm.testing import PachdDouble

    with PachdDouble(version="2.12.0") as pachd:
        client = python_pachyderm.Client(host=pachd.host, port=pachd.port)

With pytest, ``pytest_plugins = ["invoke_pachyderm.testing.pytest_plugin"]`` gives the ``pachd``
fixture (docs/testing.md). From a shell: ``python -m invoke_pachyderm.testing.pachd_double --port 0``.
"""
from invoke_pachyderm.testing.pachd_double import PachdDouble

__all__ = ["PachdDouble"]
