"""pachd's name rules (src/internal/ancestry, src/pfs/pfs.go, pps api_server.go)."""
from __future__ import annotations

import re

from .errors import RpcFailure, unknown
from .state import DEFAULT_PROJECT

# Go's regexp `$` (without (?m)) matches only at the very end: "edges\n" is invalid, while
# Python's `$` would accept a trailing newline, hence fullmatch.
_VALID_NAME = re.compile(r"[a-zA-Z0-9_-]+")

# pfs.projectNameLimit = 63 - 8 - len("-v99")
PROJECT_NAME_LIMIT = 63 - 8 - len("-v99")
# pps maxPipelineNameLength and the Kubernetes DNS label limit
PIPELINE_NAME_LIMIT = 51
DNS_LABEL_LIMIT = 63


def validate_name(name: str) -> None:
    """ancestry.ValidateName: letters, digits, underscores and dashes, no length limit."""
    if not _VALID_NAME.fullmatch(name):
        raise unknown(
            f"name ({name}) invalid: only alphanumeric characters, underscores, "
            "and dashes are allowed"
        )


def validate_project_name(name: str) -> None:
    """pfs.Project.ValidateName, wrapped as createProject wraps it."""
    try:
        _check_project_name(name)
    except RpcFailure as err:
        raise err.wrapped("invalid project name")


def _check_project_name(name: str) -> None:
    if name == DEFAULT_PROJECT:
        return
    if len(name) > PROJECT_NAME_LIMIT:
        over = len(name) - PROJECT_NAME_LIMIT
        raise unknown(
            f"project name {go_quote(name)} is {over} characters longer than the "
            f"{PROJECT_NAME_LIMIT} max"
        )
    validate_name(name)
    if not name[0].isalnum():
        raise unknown("project names must start with an alphanumeric character")


def validate_pipeline_name(project: str, name: str) -> None:
    """The name checks of validatePipelineRequest."""
    if name == "":
        raise unknown("invalid pipeline spec: request.Pipeline.Name cannot be empty")
    try:
        validate_name(name)
    except RpcFailure as err:
        raise err.wrapped("invalid pipeline name")
    if len(name) > PIPELINE_NAME_LIMIT:
        over = len(name) - PIPELINE_NAME_LIMIT
        raise unknown(
            f"pipeline name {go_quote(name)} is {over} characters longer than the "
            f"{PIPELINE_NAME_LIMIT} max"
        )
    k8s_name = rc_name(project, name, 99)
    if len(k8s_name) > DNS_LABEL_LIMIT:
        over = len(k8s_name) - DNS_LABEL_LIMIT
        raise unknown(
            f"Kubernetes name {go_quote(k8s_name)} is {over} characters longer than "
            f"the {DNS_LABEL_LIMIT} max"
        )
    if not name[0].isalnum():
        raise unknown("pipeline names must start with an alphanumeric character")


def rc_name(project: str, name: str, version: int) -> str:
    """ppsutil.PipelineRcName."""
    project = project.replace("_", "-").lower()
    return f"{project}-{name.replace('_', '-').lower()}-v{version}"


def go_quote(text: str) -> str:
    """Go's %q for the plain names that reach it."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

