"""The library's tasks without the project's tasks.py: `python -I -m invoke_pachyderm.adapters.program TASK ...`.

For a CI job that holds a deploy secret and has a pull request's code checked out (the preview
job): `invoke` would import the pull request's tasks.py, its code, into the process holding the
token. This program runs the library's own collection on the project in the current directory;
the project's invoke.yaml is not read either (pyproject.toml is: data, not code). Run it with
`python -I` (isolated mode): `-m` would otherwise put the current directory, the checkout, first
on sys.path, where an `invoke.py` or `docker/` of the pull request would shadow the real ones.
"""
from __future__ import annotations

from invoke import Program

from invoke_pachyderm import __version__
from invoke_pachyderm.tasks import ns

program = Program(namespace=ns, version=__version__, name="invoke-pachyderm", binary="python -I -m invoke_pachyderm.adapters.program")

if __name__ == "__main__":
    program.run()
