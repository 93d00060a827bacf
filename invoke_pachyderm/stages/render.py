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

from invoke_pachyderm.core.artifacts import Artifacts, RenderedSpec
from invoke_pachyderm.core.config import ConfigError, Settings
from invoke_pachyderm.core.errors import TemplateError
from invoke_pachyderm.stages.spec_formats import evaluate_jsonnet, is_jsonnet, is_yaml, parse_rendered
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
    paths: set[Path] = set()
    check_spec_globs(settings)
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


class OutsideProject(jinja2.TemplateError):
    """A template or include resolves (through a symlink) to a file outside the project."""


class ProjectLoader(jinja2.FileSystemLoader):
    """Loads only files that resolve inside the project: a symlink must not let a template
    include any file of the host (a key, /etc/shadow) into a spec that pachd stores."""

    def __init__(self, project_dir: Path):
        super().__init__(str(project_dir))
        self.root = Path(project_dir).resolve()

    def get_source(self, environment, template):
        source, filename, uptodate = super().get_source(environment, template)
        resolved = Path(filename).resolve()
        if not resolved.is_relative_to(self.root):
            raise OutsideProject(
                f"'{template}' resolves to {resolved}, outside the project {self.root}; "
                "templates may only read files inside the project"
            )
        return source, filename, uptodate


MAX_POWER_EXPONENT = 256
MAX_REPEAT_LENGTH = 1_000_000


class CappedSandbox(SandboxedEnvironment):
    """Jinja's sandbox caps range() (at jinja2.sandbox.MAX_RANGE); this also caps `**` and
    sequence repetition, which would otherwise hang or exhaust memory (even at compile time,
    where Jinja folds constants)."""

    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context, operator, left, right):
        if operator == "**" and isinstance(right, (int, float)) and abs(right) > MAX_POWER_EXPONENT:
            raise jinja2.exceptions.SecurityError(f"exponent {right} is too large (the limit is {MAX_POWER_EXPONENT})")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
                    if len(sequence) * count > MAX_REPEAT_LENGTH:
                        raise jinja2.exceptions.SecurityError(
                            f"repeating a sequence to {len(sequence) * count} items is too large "
                            f"(the limit is {MAX_REPEAT_LENGTH})"
                        )
        return super().call_binop(context, operator, left, right)


@functools.lru_cache(maxsize=8)
def make_environment(project_dir: Path) -> SandboxedEnvironment:
    """One per project: a deploy renders twice (before and after the push) and compiles once.
    Jinja re-reads a template whose file changed (auto_reload)."""
    return CappedSandbox(
        loader=ProjectLoader(project_dir),
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
        if is_jsonnet(source):
            builtins = {k: v for k, v in variables.items() if k not in settings.vars}
            document = evaluate_jsonnet(settings.project_dir, source, builtins, settings.vars)
            specs = as_specs(document, source)
        else:
            specs = render_template(environment, path, source, variables)
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
    except OutsideProject as error:
        line = _template_line(error, path)
        raise TemplateError(f"{source}{'' if line == '?' else ':' + line}: {error}") from None
    except (OverflowError, MemoryError, RecursionError) as error:
        raise TemplateError(
            f"{source}:{_template_line(error, path)}: too large for the template sandbox: {error}"
        ) from None
    except jinja2.TemplateError as error:
        raise TemplateError(f"{source}:{_template_line(error, path)}: {error}") from None
    if is_yaml(source):
        document = parse_rendered(text, source)
    else:
        try:
            document = json.loads(text, object_pairs_hook=_object_keeping_duplicates)
        except json.JSONDecodeError as error:
            lines = text.splitlines()
            bad_line = lines[error.lineno - 1].strip() if error.lineno <= len(lines) else ""
            raise TemplateError(
                f"{source}: rendered output is not valid JSON at line {error.lineno}, column {error.colno}: "
                f"{error.msg} (near {bad_line[:80]!r})"
            ) from None
        duplicate = _first_duplicate(document, [])
        if duplicate:
            where, key = duplicate
            raise TemplateError(
                f"{source}: {where}: key '{key}' appears twice in one object (JSON would keep only the last); "
                "remove one"
            )
    return as_specs(document, source)


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


def _object_keeping_duplicates(pairs):
    result: dict = {}
    for key, value in pairs:
        if key in result and not isinstance(result, _Duplicated):
            result = _Duplicated(result)
            result.duplicate = key
        result[key] = value
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
