"""Render pipeline spec templates (sandboxed Jinja2, StrictUndefined), parse and validate them.

Jinja2 and jsonschema are imported only when a template has to be rendered: a template without
statements (`{%`), whose text and variables gave a valid spec before, gives the same spec again
(see RenderCache), so an unchanged redeploy needs neither.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from . import __version__
from .artifacts import Artifacts, RenderedSpec
from .config import ConfigError, Settings
from .errors import TemplateError

if TYPE_CHECKING:
    from jinja2.sandbox import SandboxedEnvironment

PIPELINE_NAME = re.compile(r"[a-zA-Z0-9_-]+")  # pachd's ValidateName; the length limit varies by release


def find_templates(settings: Settings) -> list[Path]:
    paths: set[Path] = set()
    for pattern in settings.spec_globs:
        paths.update(p for p in settings.project_dir.glob(pattern) if p.is_file())
    if not paths:
        raise ConfigError(
            f"{settings.project_dir}: no pipeline spec template matches {settings.spec_globs}; "
            "add one (e.g. templates/pipeline.json.j2) or set `specs` under [tool.invoke-pachyderm]"
        )
    return sorted(paths)


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


@functools.lru_cache(maxsize=8)
def make_environment(project_dir: Path) -> SandboxedEnvironment:
    """One per project: a deploy renders twice (before and after the push) and compiles once.
    Jinja re-reads a template whose file changed (auto_reload)."""
    import jinja2
    from jinja2.sandbox import SandboxedEnvironment

    return SandboxedEnvironment(
        loader=jinja2.FileSystemLoader(str(project_dir)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_specs(
    settings: Settings, artifacts: Artifacts, templates: Iterable[Path] | None = None
) -> list[RenderedSpec]:
    """Render and validate every template; raises TemplateError naming file and line or JSON path."""
    cache = RenderCache.of(settings)
    variables = template_variables(settings, artifacts)
    variables_key = json.dumps(variables, sort_keys=True, default=str)
    rendered: list[RenderedSpec] = []
    seen: dict[str, str] = {}
    for path in templates if templates is not None else find_templates(settings):
        source = path.relative_to(settings.project_dir).as_posix()
        key = cache.key(path, source, variables_key)
        specs = cache.get(key)
        if specs is None:
            specs = render_simple(path, source, variables)
            if specs is None:
                specs = render_template(make_environment(settings.project_dir), path, source, variables)
            for spec in specs:
                check_spec(spec, source)
            cache.put(key, specs)
        for spec in specs:
            name = spec["pipeline"]["name"]
            if name in seen:
                raise TemplateError(f"{source}: pipeline '{name}' is also defined in {seen[name]}; rename one")
            seen[name] = source
            rendered.append(RenderedSpec(name=name, source=source, spec=spec))
    return rendered


_SIMPLE = re.compile(r"\{\{\s*([A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*)\s*\}\}")


def render_simple(path: Path, source: str, variables: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """A template whose only Jinja is `{{ name }}` / `{{ a.b.c }}` naming strings, rendered without
    compiling it; None when it has anything else, so that Jinja renders it (and words any error)."""
    text = path.read_text()
    if "{%" in text or "{#" in text or "{{" in _SIMPLE.sub("", text):
        return None
    values: dict[str, str] = {}
    for name in set(_SIMPLE.findall(text)):
        value = _lookup(variables, name)
        if value is None:
            return None
        values[name] = value
    output = _SIMPLE.sub(lambda match: values[match.group(1)], text)
    try:
        document = json.loads(output)
    except ValueError:
        return None
    specs = document if isinstance(document, list) else [document]
    return specs if all(isinstance(spec, dict) for spec in specs) else None


def _lookup(variables: Mapping[str, Any], dotted: str) -> str | None:
    """The string at a dotted path of plain mappings, as Jinja would give it; else None."""
    value: Any = variables
    for part in dotted.split("."):
        # Jinja tries an attribute first: `x.items` of a dict is its method, not a key.
        if not isinstance(value, Mapping) or part not in value or hasattr(dict, part):
            return None
        value = value[part]
    return value if type(value) is str else None


def check_spec(spec: dict[str, Any], source: str) -> None:
    from .validate import validate_spec

    validate_spec(spec, source)
    name = spec["pipeline"]["name"]
    if not PIPELINE_NAME.fullmatch(name):
        raise TemplateError(
            f"{source}: $.pipeline.name: {name!r} is not a valid pipeline name; "
            "use letters, digits, '_' and '-' only (pachd's rule)"
        )


class RenderCache:
    """Specs that rendered and validated before, by template text, variables and tool version.

    Kept in memory per project, and saved by write_specs in the user's cache directory
    ($XDG_CACHE_HOME or ~/.cache, invoke-pachyderm/), one file per project and out_dir. Only
    templates without `{%` are cached: include, import and extend need a statement, so the text
    and the variables are all such a template's output depends on.
    """

    _by_project: dict[Path, "RenderCache"] = {}

    def __init__(self, path: Path):
        self.path = path
        self.entries: dict[str, list[dict[str, Any]]] = {}
        self.used: set[str] = set()
        self.changed = False
        try:
            loaded = json.loads(path.read_text())
            if isinstance(loaded, dict):
                self.entries = loaded
        except (OSError, ValueError):
            pass

    @classmethod
    def of(cls, settings: Settings) -> "RenderCache":
        return cls.for_out_dir(settings.project_dir / settings.out_dir)

    @classmethod
    def for_out_dir(cls, out_dir: Path) -> "RenderCache":
        cache = cls._by_project.get(out_dir)
        if cache is None:
            base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
            name = hashlib.sha256(str(out_dir.resolve()).encode()).hexdigest()[:24]
            cache = cls._by_project[out_dir] = cls(Path(base) / "invoke-pachyderm" / f"render-{name}.json")
        return cache

    @staticmethod
    def key(path: Path, source: str, variables_key: str) -> str | None:
        text = path.read_bytes()
        if b"{%" in text:
            return None
        digest = hashlib.sha256()
        for part in (__version__.encode(), _schema_stamp(), source.encode(), text, variables_key.encode()):
            digest.update(len(part).to_bytes(8, "big") + part)
        return digest.hexdigest()

    def get(self, key: str | None) -> list[dict[str, Any]] | None:
        if key is None or not isinstance(self.entries.get(key), list):
            return None
        self.used.add(key)
        return json.loads(json.dumps(self.entries[key]))  # callers add annotations to their copy

    def put(self, key: str | None, specs: list[dict[str, Any]]) -> None:
        if key is not None:
            self.entries[key] = json.loads(json.dumps(specs))
            self.used.add(key)
            self.changed = True

    def save(self) -> None:
        """Write the entries this process used (older ones are dropped), if any is new."""
        if not self.changed and set(self.entries) == self.used:
            return
        kept = {key: self.entries[key] for key in sorted(self.used) if key in self.entries}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            temporary = self.path.with_name(f"{self.path.name}.{os.getpid()}")
            temporary.write_text(json.dumps(kept, sort_keys=True))
            os.replace(temporary, self.path)
        except OSError:
            return  # a cache: rendering again next time is fine
        self.entries, self.changed = kept, False


@functools.lru_cache(maxsize=1)
def _schema_stamp() -> bytes:
    from importlib import resources

    schema = resources.files(__package__).joinpath("pipeline_spec.schema.json")
    return hashlib.sha256(schema.read_bytes()).hexdigest().encode()


def render_template(
    environment: SandboxedEnvironment, path: Path, source: str, variables: Mapping[str, Any]
) -> list[dict[str, Any]]:
    import jinja2

    try:
        text = environment.get_template(source).render(**variables)
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(f"{source}:{error.lineno}: template syntax error: {error.message}") from None
    except jinja2.UndefinedError as error:
        line = _template_line(error, path)
        known = ", ".join(sorted(variables))
        hint = "add others under `vars`"
        if "image" not in variables and any(f"'{name}'" in str(error.message) for name in ("image", "tag", "image_repository")):
            hint = "no image is configured: set `image` under [tool.invoke-pachyderm] in pyproject.toml"
        raise TemplateError(f"{source}:{line}: {error.message}; known variables: {known} ({hint})") from None
    except jinja2.exceptions.SecurityError as error:
        raise TemplateError(f"{source}:{_template_line(error, path)}: not allowed in templates: {error}") from None
    except jinja2.TemplateError as error:
        raise TemplateError(f"{source}:{_template_line(error, path)}: {error}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        lines = text.splitlines()
        bad_line = lines[error.lineno - 1].strip() if error.lineno <= len(lines) else ""
        raise TemplateError(
            f"{source}: rendered output is not valid JSON at line {error.lineno}, column {error.colno}: "
            f"{error.msg} (near {bad_line[:80]!r})"
        ) from None
    specs = document if isinstance(document, list) else [document]
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict):
            where = f"$[{index}]" if isinstance(document, list) else "$"
            raise TemplateError(f"{source}: {where}: a pipeline spec must be a JSON object")
    return specs


def _template_line(error: BaseException, path: Path) -> str:
    target = str(path.resolve())
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename and str(Path(frame.filename).resolve()) == target
    ]
    return str(lines[-1]) if lines else "?"


def write_specs(specs: list[RenderedSpec], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for rendered in specs:
        rendered.path = out_dir / f"{rendered.name}.json"
        rendered.path.write_text(json.dumps(rendered.spec, indent=2, sort_keys=True) + "\n")
    if out_dir in RenderCache._by_project:
        RenderCache._by_project[out_dir].save()
