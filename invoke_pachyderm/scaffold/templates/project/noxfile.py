"""Nox sessions with the same stages as the invoke tasks: `nox -l`, `nox -s deploy -- --dry-run`."""
from invoke_pachyderm.nox import register

register()
