"""Parse a rendered template as JSON or YAML, by its file name: `*.yaml.j2`, `*.yml.j2`, `*.yaml` and
`*.yml` are YAML (PyYAML's safe loader: plain data, no tags that build objects), the rest JSON.
Both give the same spec to validate; a parse error names the file and the line of the rendered text."""
from __future__ import annotations

import json
from typing import Any

from .errors import TemplateError

YAML_SUFFIXES = (".yaml", ".yml", ".yaml.j2", ".yml.j2")


def is_yaml(source: str) -> bool:
    return source.endswith(YAML_SUFFIXES)


def parse_rendered(text: str, source: str) -> Any:
    return _parse_yaml(text, source) if is_yaml(source) else _parse_json(text, source)


def _parse_json(text: str, source: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise TemplateError(
            f"{source}: rendered output is not valid JSON at line {error.lineno}, column {error.colno}: "
            f"{error.msg} (near {_line(text, error.lineno)!r})"
        ) from None


def _parse_yaml(text: str, source: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(filter(None, [error.context, error.problem]))
        near = f" (near {_line(text, mark.line + 1)!r})" if mark else ""
        raise TemplateError(f"{source}: rendered output is not valid YAML{where}: {problem}{near}") from None
    except yaml.YAMLError as error:
        raise TemplateError(f"{source}: rendered output is not valid YAML: {error}") from None


def _line(text: str, lineno: int) -> str:
    lines = text.splitlines()
    return lines[lineno - 1].strip()[:80] if 0 < lineno <= len(lines) else ""
