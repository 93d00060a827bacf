"""Render pipeline spec templates (sandboxed Jinja2, StrictUndefined), parse and validate them.

A template whose only Jinja is `{{ name.path }}` gets the text Jinja would give without jinja2
(`fill_simple`); any other goes through `jinja_sandbox`. Parsing, the duplicate-key check and the
schema check run on every template alike.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

from invoke_pachyderm.core.artifacts import Artifacts, RenderedSpec
from invoke_pachyderm.core.config import ConfigError, Settings
from invoke_pachyderm.core.errors import TemplateError
from invoke_pachyderm.core.json_text import indented
from invoke_pachyderm.stages.render_budget import MAX_DEPTH, Budget, BudgetExceeded, active, current, nesting_path
from invoke_pachyderm.stages.spec_formats import evaluate_jsonnet, is_jsonnet, is_yaml, parse_rendered
from invoke_pachyderm.stages.template_reads import ProjectReads
from invoke_pachyderm.stages.validate import json_path, validate_spec

PIPELINE_NAME = re.compile(r"[a-zA-Z0-9_-]+")  # pachd's ValidateName; the length limit varies by release


def check_spec_globs(settings: Settings) -> None:
    source = settings.sources.get("specs", "default")
    for pattern in settings.spec_globs:
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts:
            raise ConfigError(
                f"{source}: key 'specs': {pattern!r} leaves the project; spec globs are relative to the "
                "project directory, e.g. templates/*.json.j2"
            )


def find_templates(settings: Settings) -> list[Path]:
    from invoke_pachyderm.backends.build_context import spec_templates

    check_spec_globs(settings)
    paths = spec_templates(settings)
    if not paths:
        raise ConfigError(
            f"{settings.project_dir}: no pipeline spec template matches {settings.spec_globs}; "
            "add one (e.g. templates/pipeline.json.j2) or set `specs` under [tool.invoke-pachyderm]"
        )
    return paths


def template_variables(settings: Settings, artifacts: Artifacts) -> dict[str, Any]:
    images = {
        name: {
            "ref": image.pinned_ref if settings.pin_digest else image.ref,
            "repository": image.repository,
            "tag": image.tag,
            "digest": image.digest,
        }
        for name, image in artifacts.images.items()
    }
    main = next(iter(artifacts.images.values()), None)
    variables: dict[str, Any] = {
        "image": images[main.name]["ref"] if main else None,
        "image_repository": main.repository if main else None,
        "tag": main.tag if main else None,
        "commit": artifacts.git.commit,
        "short_commit": artifacts.git.short_commit,
        "branch": artifacts.git.branch,
        "project": settings.project,
        "images": images,
    }
    for key, value in settings.vars.items():
        if key in variables:
            raise ConfigError(f"vars: '{key}' would hide the built-in template variable of that name; rename it")
        variables[key] = value
    return {k: v for k, v in variables.items() if v is not None}


def render_specs(
    settings: Settings, artifacts: Artifacts, templates: Iterable[Path] | None = None
) -> list[RenderedSpec]:
    """Render and validate every template; raises TemplateError naming file and line or JSON path."""
    variables = template_variables(settings, artifacts)
    root = settings.project_dir.resolve()
    paths = list(templates if templates is not None else find_templates(settings))
    budget = Budget(max_bytes=settings.max_spec_bytes, timeout=float(settings.render_timeout))
    sources = [path.relative_to(settings.project_dir).as_posix() for path in paths]
    reads = ProjectReads(root, budget.max_bytes, exempt=frozenset(sources))
    with active(budget):
        return _render_all(settings, variables, root, paths, sources, reads)


def _render_all(
    settings: Settings, variables: dict[str, Any], root: Path, paths: list[Path], sources: list[str],
    reads: ProjectReads,
) -> list[RenderedSpec]:
    rendered: list[RenderedSpec] = []
    seen: dict[str, str] = {}
    real_path = _RealPaths()
    for path, source in zip(paths, sources):
        lookups: set[str] = set()
        if ".git" in Path(source).parts:
            raise TemplateError(f"{source}: a spec template inside .git/ is refused; take it out of `specs`")
        try:
            if is_jsonnet(source):
                builtins = {k: v for k, v in variables.items() if k not in settings.vars}
                document = evaluate_jsonnet(settings.project_dir, source, builtins, settings.vars, reads)
                refuse_deep(document, source)
                specs = as_specs(document, source)
                lookups.add(UNKNOWN)
            else:
                specs = render_template(
                    settings.project_dir, root, path, source, variables, lookups, real_path(path), reads
                )
        except BudgetExceeded as error:  # met outside Jinja (YAML nodes, file reads): no line to name
            raise TemplateError(f"{source}: {error}") from None
        reads_digest = None if UNKNOWN in lookups else any(_names_digest(name) for name in lookups)
        for spec in specs:
            validate_spec(spec, source)
            name = spec["pipeline"]["name"]
            if not PIPELINE_NAME.fullmatch(name):
                raise TemplateError(
                    f"{source}: $.pipeline.name: {name!r} is not a valid pipeline name; "
                    "use letters, digits, '_' and '-' only (pachd's rule)"
                )
            if name in seen:
                raise TemplateError(f"{source}: pipeline '{name}' is also defined in {seen[name]}; rename one")
            own = _own_output_input(spec.get("input"), name, settings.project, "$.input")
            if own:
                raise TemplateError(
                    f"{source}: {own}: pipeline '{name}' reads its own output repo '{name}' (a cycle of one "
                    "pipeline); read another repo"
                )
            seen[name] = source
            rendered.append(RenderedSpec(name=name, source=source, spec=spec, reads_digest=reads_digest))
    return rendered


#: In a set of lookups: the template went through Jinja, whose reads are not recorded.
UNKNOWN = "*"


def _names_digest(dotted: str) -> bool:
    """`images.<name>.digest`: the one lookup fill_simple can make that reaches a digest."""
    parts = dotted.split(".")
    return parts[0] == "images" and len(parts) > 2 and parts[2] == "digest"


def render_template(
    project_dir: Path, root: Path, path: Path, source: str, variables: Mapping[str, Any],
    lookups: set[str] | None = None, real: str | None = None, reads: ProjectReads | None = None,
) -> list[dict[str, Any]]:
    """`root` is `project_dir` resolved; `lookups` gets the names the template read (UNKNOWN for Jinja);
    `real`: os.path.realpath(path) when known."""
    budget = current()
    text = fill_simple(path, root, variables, lookups, real)
    if text is None:
        from invoke_pachyderm.stages.jinja_sandbox import render_text

        if lookups is not None:
            lookups.add(UNKNOWN)
        text = render_text(project_dir, path, source, variables, reads)
    if len(text) > budget.max_bytes:
        raise TemplateError(f"{source}: {budget.too_large(len(text), 'the rendered spec')}")
    if is_yaml(source):
        document = parse_rendered(text, source)
    else:
        duplicated: list[bool] = []  # set by the hook: only then is the document walked for the key's path
        try:
            document = json.loads(text, object_pairs_hook=lambda pairs: _object_keeping_duplicates(pairs, duplicated))
        except RecursionError:
            raise TemplateError(
                f"{source}: the rendered JSON nests lists or objects deeper than Python can parse; "
                f"a spec may nest at most {MAX_DEPTH} levels"
            ) from None
        except json.JSONDecodeError as error:
            lines = text.splitlines()
            bad_line = lines[error.lineno - 1].strip() if error.lineno <= len(lines) else ""
            raise TemplateError(
                f"{source}: rendered output is not valid JSON at line {error.lineno}, column {error.colno}: "
                f"{error.msg} (near {bad_line[:80]!r})"
            ) from None
        refuse_deep(document, source)
        duplicate = _first_duplicate(document, []) if duplicated else None
        if duplicate:
            where, key = duplicate
            raise TemplateError(
                f"{source}: {where}: key '{key}' appears twice in one object (JSON would keep only the last); "
                "remove one"
            )
    return as_specs(document, source)


def refuse_deep(document: Any, source: str) -> None:
    deep = nesting_path(document)
    if deep is not None:
        raise TemplateError(
            f"{source}: {json_path(deep[:8])}{'...' if len(deep) > 8 else ''}: nested more than {MAX_DEPTH} levels deep; a pipeline spec needs "
            "far fewer: flatten it"
        )


# `{{ name }}` or `{{ name.key.key }}`: a Jinja variable or the items of dicts, nothing else.
_SIMPLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)\s*\}\}")
# Names Jinja's parser reads as constants or operators, not as variables.
_NOT_VARIABLES = frozenset({"true", "false", "none", "True", "False", "None", "not", "and", "or", "in", "is", "if", "else", "self"})
_PRINTABLE = (str, int, float, bool)  # what Jinja prints as str(value), as this does


class _RealPaths:
    """os.path.realpath of template paths, each folder resolved once: a file that is no symlink
    resolves to its folder's real path plus its name (realpath alone lstat()s every component)."""

    def __init__(self):
        self._folders: dict[str, str] = {}

    def __call__(self, path: Path) -> str:
        text = os.fspath(path)
        folder, name = os.path.split(text)
        if name in ("", ".", "..") or os.path.islink(text):
            return os.path.realpath(text)
        real = self._folders.get(folder)
        if real is None:
            real = self._folders[folder] = os.path.realpath(folder)
        return os.path.join(real, name)


def fill_simple(
    path: Path, root: Path, variables: Mapping[str, Any], lookups: set[str] | None = None, real: str | None = None,
) -> str | None:
    """The text Jinja would render from the template at `path`, if its only Jinja is `{{ a.b.c }}`
    naming defined variables and dict items holding strings, numbers or booleans; else None, and
    Jinja renders it (and reports what is wrong: an undefined name, a symlink out of the project).
    Jinja turns \\r\\n into \\n and has blocks, comments and whitespace control: such templates are
    left to it."""
    resolved = os.path.realpath(path) if real is None else real
    if not resolved.startswith(str(root) + os.sep):
        return None
    try:
        with open(resolved, "rb") as file:
            data = file.read(current().max_bytes + 1)
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    if len(data) > current().max_bytes:
        return None  # Jinja's loader refuses it, naming the cap
    if "{%" in text or "{#" in text or "\r" in text:
        return None
    pieces = []
    names = []
    position = 0
    for match in _SIMPLE.finditer(text):
        literal = text[position:match.start()]
        if "{{" in literal or literal.endswith("{"):  # `{{{ a }}` or a `{{` this cannot fill
            return None
        value = _lookup(match[1], variables)
        if value is None:
            return None
        pieces += [literal, value]
        names.append(match[1])
        position = match.end()
    if "{{" in text[position:]:
        return None
    pieces.append(text[position:])
    if lookups is not None:
        lookups.update(names)
    return "".join(pieces)


def _lookup(dotted: str, variables: Mapping[str, Any]) -> str | None:
    """Jinja's (sandboxed) `a.b`: getattr first, the item when there is no such attribute. Only
    the item case is handled here (a dict key that is no dict method), and only printable leaves."""
    first, *keys = dotted.split(".")
    if first in _NOT_VARIABLES or first not in variables:
        return None
    value = variables[first]
    for key in keys:
        if type(value) is not dict or hasattr(value, key) or key not in value:
            return None
        value = value[key]
    return str(value) if type(value) in _PRINTABLE else None


def as_specs(document: Any, source: str) -> list[dict[str, Any]]:
    """A template gives one spec or a list of them."""
    specs = document if isinstance(document, list) else [document]
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict):
            where = f"$[{index}]" if isinstance(document, list) else "$"
            raise TemplateError(f"{source}: {where}: a pipeline spec must be a JSON object")
    return specs


class _Duplicated(dict):
    """An object whose text had a key twice; `duplicate` names the first such key."""

    duplicate = ""


def _object_keeping_duplicates(pairs, duplicated: list[bool] | None = None):
    """The object as json.loads makes it (the last value of a key written twice, at its first
    place); a `_Duplicated` naming the first key seen twice, when one is (and `duplicated` gets True)."""
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen: set = set()
    for key, _ in pairs:
        if key in seen:
            break
        seen.add(key)
    result = _Duplicated(result)
    result.duplicate = key
    if duplicated is not None:
        duplicated.append(True)
    return result


def _first_duplicate(node: Any, parts: list) -> tuple[str, str] | None:
    if isinstance(node, _Duplicated):
        return json_path(parts), node.duplicate
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in children:
        found = _first_duplicate(value, [*parts, key])
        if found:
            return found
    return None


def _own_output_input(node: Any, pipeline: str, project: str, path: str) -> str | None:
    """The JSON path of a pfs input reading `pipeline`'s own output repo, if any."""
    if isinstance(node, list):
        for index, child in enumerate(node):
            found = _own_output_input(child, pipeline, project, f"{path}[{index}]")
            if found:
                return found
        return None
    if not isinstance(node, dict):
        return None
    pfs = node.get("pfs")
    if isinstance(pfs, dict) and pfs.get("repo") == pipeline and pfs.get("project") in (None, "", project):
        return f"{path}.pfs.repo"
    for key in ("cross", "union", "join", "group"):
        found = _own_output_input(node.get(key), pipeline, project, f"{path}.{key}")
        if found:
            return found
    return None


def write_specs(specs: list[RenderedSpec], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for rendered in specs:
        rendered.path = out_dir / f"{rendered.name}.json"
        text = indented(rendered.spec) + "\n"  # json.dumps(indent=2, sort_keys=True)'s text
        if _read_or_none(rendered.path) != text:  # rewriting a file costs ~100x reading it
            rendered.path.write_text(text)


def _read_or_none(path: Path) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return None


def __getattr__(name: str):
    # The Jinja environment and its sandbox classes live in jinja_sandbox (imported on first use).
    if name in ("make_environment", "OutsideProject", "ProjectLoader", "CappedSandbox"):
        from invoke_pachyderm.stages import jinja_sandbox

        return getattr(jinja_sandbox, name)
    raise AttributeError(name)
