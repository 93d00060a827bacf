"""The scaffold's defaults, apart from the writer: the task flags show them, and `invoke --list`
and every task should not import the writer (dataclasses, importlib.resources) for three strings."""

DEFAULT_BASE_IMAGE = "python:3.12-slim"
DEFAULT_INPUT_REPO = "data"
DEFAULT_REGISTRY = "localhost:5000"
