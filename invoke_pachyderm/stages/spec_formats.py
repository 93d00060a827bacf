"""Parse a rendered template as JSON or YAML, by its file name: `*.yaml.j2`, `*.yml.j2`, `*.yaml` and
`*.yml` are YAML (PyYAML's safe loader: plain data, no tags that build objects), the rest JSON.
Both give the same spec to validate; a parse error names the file and the line of the rendered text.

`*.jsonnet` files are not Jinja templates: they are evaluated by Jsonnet (the `jsonnet` package,
Google's binding, an optional extra) like `pachctl create pipeline --jsonnet --arg`."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from invoke_pachyderm.core.errors import ConfigError, TemplateError

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


# -- Jsonnet -------------------------------------------------------------------------------------
JSONNET_SUFFIXES = (".jsonnet",)
JSONNET_INSTALL = "pip install 'invoke-pachyderm[jsonnet]'"
_LOCATION = re.compile(r"^(?P<file>[^\s:()][^:]*):\(?(?P<line>\d+):\d+")
_STD_FILES = ("<std>", "std.jsonnet", "<builtin>")


def is_jsonnet(source: str) -> bool:
    return source.endswith(JSONNET_SUFFIXES)


def jsonnet_arguments(variables: Mapping[str, Any], names: Iterable[str], where: str) -> tuple[dict, dict]:
    """(strings, codes): strings pass as they are (pachctl's `--arg`), any other value as JSON code."""
    strings, codes = {}, {}
    for name in names:
        value = variables[name]
        if isinstance(value, str):
            strings[name] = value
            continue
        try:
            codes[name] = json.dumps(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{where}: '{name}' is a {type(value).__name__}, which has no JSON form for Jsonnet; "
                "quote it as a string"
            ) from None
    return strings, codes


def evaluate_jsonnet(
    project_dir: Path, source: str, builtins: Mapping[str, Any], arguments: Mapping[str, Any]
) -> Any:
    """Evaluate `source` (relative to the project) like `pachctl create pipeline --jsonnet --arg`:
    `arguments` (the `vars`) are the top-level function's arguments, `builtins` (image, commit, ...)
    are external variables. Imports resolve only inside the project. Returns the parsed document."""
    try:
        import _jsonnet
    except ImportError:
        raise ConfigError(
            f"{source}: Jsonnet templates need the `jsonnet` package, which is not installed; {JSONNET_INSTALL}"
        ) from None
    root = Path(project_dir).resolve()
    try:
        text = _read_inside(root, source).decode("utf-8")
    except (_Refused, UnicodeDecodeError) as error:
        raise TemplateError(f"{source}: {error}") from None
    ext_vars, ext_codes = jsonnet_arguments(builtins, builtins, "template variables")
    tla_vars, tla_codes = jsonnet_arguments(arguments, arguments, "vars")
    while True:
        try:
            output = _jsonnet.evaluate_snippet(
                source, text, ext_vars=ext_vars, ext_codes=ext_codes, tla_vars=tla_vars, tla_codes=tla_codes,
                import_callback=_project_imports(root),
            )
            break
        except RuntimeError as error:
            unwanted = _NO_PARAMETER.match(str(error))
            if unwanted and unwanted["name"] in {**tla_vars, **tla_codes}:
                # As a Jinja template ignores the `vars` it does not use, a top-level function
                # receives only the ones it declares.
                tla_vars.pop(unwanted["name"], None)
                tla_codes.pop(unwanted["name"], None)
                continue
            raise TemplateError(_jsonnet_message(str(error), source, text, builtins, arguments)) from None
    return json.loads(output)


_NO_PARAMETER = re.compile(r"RUNTIME ERROR: function has no parameter (?P<name>\S+)")


class _Refused(Exception):
    pass


def _read_inside(root: Path, relative: str) -> bytes:
    resolved = (root / relative).resolve()
    if not resolved.is_relative_to(root):
        raise _Refused(f"'{relative}' resolves to {resolved}, outside the project {root}; Jsonnet reads only files inside the project")
    try:
        return resolved.read_bytes()
    except FileNotFoundError:
        raise _Refused(f"no file {relative} in the project") from None


def _project_imports(root: Path):
    """Jsonnet's import callback: `import`, `importstr` and `importbin` read files inside the project
    only (a symlink or `../` must not put a host file, such as a key, into a spec pachd stores)."""

    def resolve(directory: str, relative: str) -> tuple[str, bytes]:
        if os.path.isabs(relative):
            raise _Refused(f"'{relative}' is an absolute path; import files of the project by relative path")
        found = os.path.normpath(os.path.join(directory, relative))
        if found == ".." or found.startswith("../") or os.path.isabs(found):
            raise _Refused(f"'{relative}' is outside the project {root}; import files of the project only")
        return found, _read_inside(root, found)

    return resolve


def _jsonnet_message(raw: str, source: str, text: str, builtins: Mapping[str, Any], arguments: Mapping[str, Any]) -> str:
    """One line: where (the innermost frame in a project file), and what."""
    lines = [line for line in raw.strip().splitlines() if line.strip()]
    head = lines[0] if lines else raw
    kind, _, message = head.partition(": ")
    where = None
    if kind == "STATIC ERROR":
        located = _LOCATION.match(message)
        if located:
            where = (located["file"], located["line"])
            message = message[located.end():].split(": ", 1)[-1]
    for frame in lines[1:]:
        located = _LOCATION.match(frame.strip())
        if where is None and located and located["file"] not in _STD_FILES:
            where = (located["file"], located["line"])
    what = "syntax error" if kind == "STATIC ERROR" else "error"
    message = message.strip().rstrip(".")
    if where is None and "Top-level function" in raw:
        function_line = _top_level_function_line(text)
        where = (source, function_line) if function_line else None
        message += " (its parameters are filled from `vars`)"
    undefined = re.search(r"undefined external variable: (\S+)", message, re.IGNORECASE)
    if undefined:
        message += f"; external variables: {', '.join(sorted(builtins))}"
        if undefined[1] in arguments:
            message += f"; `vars` are top-level arguments: make the file a function with a parameter {undefined[1]}"
        elif "image" not in builtins:
            message += " (no image is configured: set `image` under [tool.invoke-pachyderm])"
    if where is None:
        return f"{source}: Jsonnet {what}: {message}"
    file, line = where
    prefix = f"{source}:{line}" if file == source else f"{source}: {file}:{line}"
    return f"{prefix}: Jsonnet {what}: {message}"


def _top_level_function_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(r"\s*function\s*\(", line):
            return number
    return None
