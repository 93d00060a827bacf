"""Parse a rendered template as JSON or YAML, by its file name: `*.yaml.j2`, `*.yml.j2`, `*.yaml` and
`*.yml` are YAML (PyYAML's safe loader: plain data, no tags that build objects), the rest JSON.
Both give the same spec to validate; a parse error names the file and the line of the rendered text.

`*.jsonnet` files are not Jinja templates: they are evaluated by Jsonnet (the `jsonnet` package,
Google's binding, an optional extra) like `pachctl create pipeline --jsonnet --arg`."""
from __future__ import annotations

import json
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from invoke_pachyderm.core.errors import ConfigError, TemplateError
from invoke_pachyderm.stages import render_budget
from invoke_pachyderm.stages.render_budget import MAX_DEPTH
from invoke_pachyderm.stages.template_reads import ProjectReads, ReadRefused

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
    """YAML composed to nodes (aliases not yet expanded), then built into JSON values by `_YamlToJson`."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(filter(None, [error.context, error.problem]))
        near = f" (near {_line(text, mark.line + 1)!r})" if mark else ""
        raise TemplateError(f"{source}: rendered output is not valid YAML{where}: {problem}{near}") from None
    except yaml.YAMLError as error:
        raise TemplateError(f"{source}: rendered output is not valid YAML: {error}") from None
    except RecursionError:
        raise TemplateError(
            f"{source}: the rendered YAML nests deeper than can be parsed; a spec may nest at most {MAX_DEPTH} levels"
        ) from None
    return None if node is None else _YamlToJson(source).build(node, [], 0)


_TAG = "tag:yaml.org,2002:"
_NOT_JSON = {
    "timestamp": "a date or timestamp (YAML reads an unquoted 2024-01-31 as one)",
    "binary": "binary data (!!binary)",
    "set": "a set (!!set)",
    "omap": "an ordered map (!!omap)",
    "pairs": "a list of pairs (!!pairs)",
}


class _YamlToJson:
    """JSON values from YAML nodes, refusing what JSON has no form for (dates, !!binary, !!set,
    other tags, keys that are no strings), a key twice in one mapping, an alias that contains itself,
    nesting deeper than MAX_DEPTH, and aliases expanding past max_spec_bytes (a "billion laughs")."""

    def __init__(self, source: str):
        import yaml.constructor

        self.source = source
        self.budget = render_budget.current()
        self.size = 0
        self.open: set[int] = set()  # the nodes being built: one met again is an alias to itself
        self.scalars = yaml.constructor.SafeConstructor()

    def fail(self, node, parts: list, what: str) -> TemplateError:
        from invoke_pachyderm.stages.validate import json_path

        shown = json_path(parts[:8]) + ("..." if len(parts) > 8 else "")
        return TemplateError(f"{self.source}:{node.start_mark.line + 1}: {shown}: {what}")

    def spend(self, node, parts: list, size: int) -> None:
        self.size += size
        if self.size > self.budget.max_bytes:
            raise self.fail(node, parts, (
                f"the YAML expands (aliases included) to more than {self.budget.max_bytes} bytes (max_spec_bytes); "
                "use fewer aliases, or raise `max_spec_bytes`"
            ))
        if self.size & 0xFFF < size:
            self.budget.tick()

    def build(self, node, parts: list, depth: int) -> Any:
        import yaml.nodes

        if isinstance(node, yaml.nodes.ScalarNode):
            self.spend(node, parts, len(node.value) + 2)
            return self.scalar(node, parts)
        if depth >= MAX_DEPTH:
            raise self.fail(node, parts, f"nested more than {MAX_DEPTH} levels deep; a pipeline spec needs far fewer: flatten it")
        if id(node) in self.open:
            raise self.fail(node, parts, "an alias refers to a list or mapping that contains it (a recursive structure); JSON cannot hold it")
        self.open.add(id(node))
        try:
            self.spend(node, parts, 2)
            if isinstance(node, yaml.nodes.SequenceNode):
                self.check_tag(node, parts, "seq")
                return [self.build(child, [*parts, index], depth + 1) for index, child in enumerate(node.value)]
            self.check_tag(node, parts, "map")
            return self.mapping(node, parts, depth)
        finally:
            self.open.discard(id(node))

    def check_tag(self, node, parts: list, kind: str) -> None:
        if node.tag != _TAG + kind:
            raise self.not_json(node, parts)

    def not_json(self, node, parts: list) -> TemplateError:
        tag = node.tag
        name = tag[len(_TAG):] if tag.startswith(_TAG) else tag
        what = _NOT_JSON.get(name) or f"a value tagged {'!!' + name if tag.startswith(_TAG) else tag}"
        return self.fail(node, parts, f"{what} has no JSON form; quote it to make it a string")

    def scalar(self, node, parts: list) -> Any:
        kind = node.tag[len(_TAG):] if node.tag.startswith(_TAG) else None
        if kind == "str":
            return node.value
        if kind == "null":
            return None
        if kind == "bool":
            return self.scalars.construct_yaml_bool(node)
        if kind == "int":
            return self.scalars.construct_yaml_int(node)
        if kind == "float":
            return self.scalars.construct_yaml_float(node)
        raise self.not_json(node, parts)

    def mapping(self, node, parts: list, depth: int) -> dict:
        import yaml.nodes

        merged: dict[str, Any] = {}
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                sources = value_node.value if isinstance(value_node, yaml.nodes.SequenceNode) else [value_node]
                for source in sources:
                    if not isinstance(source, yaml.nodes.MappingNode):
                        raise self.fail(source, parts, "`<<` merges mappings only; give it an alias of a mapping or a list of them")
                    for key, value in self.build(source, parts, depth).items():
                        merged.setdefault(key, value)  # the first mapping merged wins, as in YAML's merge keys
                continue
            if not isinstance(key_node, yaml.nodes.ScalarNode) or key_node.tag != _TAG + "str":
                shown = key_node.value if isinstance(key_node, yaml.nodes.ScalarNode) else "a list or mapping"
                raise self.fail(key_node, parts, (
                    f"key {shown!r} is not a string (JSON keys are strings; YAML reads it as "
                    f"{key_node.tag.rsplit(':', 1)[-1]}); quote it"
                ))
            key = key_node.value
            if key in result:
                raise self.fail(key_node, [*parts, key], (
                    f"key '{key}' appears twice in one mapping (YAML would keep only the last); remove one"
                ))
            self.spend(key_node, parts, len(key) + 2)
            result[key] = self.build(value_node, [*parts, key], depth + 1)
        return {**merged, **result} if merged else result


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
    project_dir: Path, source: str, builtins: Mapping[str, Any], arguments: Mapping[str, Any],
    reads: ProjectReads | None = None,
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
    budget = render_budget.current()
    if reads is None:
        reads = ProjectReads(root, budget.max_bytes, exempt=frozenset({source}))
    try:
        text = reads.read(source, "Jsonnet").decode("utf-8")
    except (ReadRefused, UnicodeDecodeError) as error:
        raise TemplateError(f"{source}: {error}") from None
    ext_vars, ext_codes = jsonnet_arguments(builtins, builtins, "template variables")
    tla_vars, tla_codes = jsonnet_arguments(arguments, arguments, "vars")
    while True:
        try:
            output = _within_deadline(
                source, budget, _jsonnet.evaluate_snippet,
                source, text, ext_vars=ext_vars, ext_codes=ext_codes, tla_vars=tla_vars, tla_codes=tla_codes,
                import_callback=_project_imports(root, reads),
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
    if len(output) > budget.max_bytes:
        raise TemplateError(f"{source}: {budget.too_large(len(output), 'the evaluated spec')}")
    try:
        return json.loads(output)
    except RecursionError:
        raise TemplateError(
            f"{source}: the evaluated JSON nests deeper than can be parsed; a spec may nest at most {MAX_DEPTH} levels"
        ) from None


_NO_PARAMETER = re.compile(r"RUNTIME ERROR: function has no parameter (?P<name>\S+)")


def _within_deadline(source: str, budget: render_budget.Budget, evaluate, *args, **kwargs) -> str:
    """Jsonnet evaluates in C++ without the GIL, beyond the reach of the budget's checks: in a thread
    of its own, waited for until the render's deadline. One that runs past it is left behind (a
    daemon, it ends with the command, which fails now) - C++ cannot be stopped from Python."""
    result: list = []

    def run():
        try:
            result.append((True, evaluate(*args, **kwargs)))
        except BaseException as error:  # handed to the waiting thread
            result.append((False, error))

    thread = threading.Thread(target=run, name=f"jsonnet {source}", daemon=True)
    thread.start()
    thread.join(max(0.0, budget.deadline - time.monotonic()))
    if not result:
        raise TemplateError(
            f"{source}: evaluating the Jsonnet took longer than {budget.timeout:g} s (render_timeout); a loop or "
            "std.repeat does too much work: simplify it, or raise `render_timeout`"
        )
    ok, value = result[0]
    if not ok:
        raise value
    return value


class _Refused(Exception):
    pass


def _project_imports(root: Path, reads: ProjectReads):
    """Jsonnet's import callback: `import`, `importstr` and `importbin` read what `template_reads`
    allows (a symlink, `../`, `.git/`, an ignored file or a FIFO must not put a host file, a key or
    a credential into a spec pachd stores)."""

    def resolve(directory: str, relative: str) -> tuple[str, bytes]:
        if os.path.isabs(relative):
            raise _Refused(f"'{relative}' is an absolute path; import files of the project by relative path")
        found = os.path.normpath(os.path.join(directory, relative))
        if found == ".." or found.startswith("../") or os.path.isabs(found):
            raise _Refused(f"'{relative}' is outside the project {root}; import files of the project only")
        try:
            return found, reads.read(found, "Jsonnet")
        except ReadRefused as error:
            raise _Refused(str(error)) from None

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
