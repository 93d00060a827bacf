"""Tasks of this project: `invoke --list` shows them, `invoke --help deploy` explains one.

They come from invoke-pachyderm; settings live under [tool.invoke-pachyderm] in pyproject.toml.
"""
from invoke_pachyderm import ns  # noqa: F401
