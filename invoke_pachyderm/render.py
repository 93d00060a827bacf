"""Render pipeline spec templates (sandboxed Jinja2, StrictUndefined), parse and validate them."""
from __future__ import annotations

import functools
import json
import re
import traceback
from pathlib import Path
from typing import Any, Iterable, Mapping

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from .artifacts import Artifacts, RenderedSpec
from .config import ConfigError, Settings
from .errors import TemplateError
from .spec_formats import parse_rendered
from .validate import validate_spec

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
    environment = make_environment(settings.project_dir)
    variables = template_variables(settings, artifacts)
    rendered: list[RenderedSpec] = []
    seen: dict[str, str] = {}
    for path in templates if templates is not None else find_templates(settings):
        source = path.relative_to(settings.project_dir).as_posix()
        for spec in render_template(environment, path, source, variables):
            validate_spec(spec, source)
            name = spec["pipeline"]["name"]
            if not PIPELINE_NAME.fullmatch(name):
                raise TemplateError(
                    f"{source}: $.pipeline.name: {name!r} is not a valid pipeline name; "
                    "use letters, digits, '_' and '-' only (pachd's rule)"
                )
            if name in seen:
                raise TemplateError(f"{source}: pipeline '{name}' is also defined in {seen[name]}; rename one")
            seen[name] = source
            rendered.append(RenderedSpec(name=name, source=source, spec=spec))
    return rendered


def render_template(
    environment: SandboxedEnvironment, path: Path, source: str, variables: Mapping[str, Any]
) -> list[dict[str, Any]]:
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
    document = parse_rendered(text, source)
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
