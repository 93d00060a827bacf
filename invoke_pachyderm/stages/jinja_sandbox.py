"""The Jinja side of rendering: a sandbox that reads only project files, its errors as one line.

Imported only for a template that needs Jinja (see `render.fill_simple`): jinja2 costs ~40 ms to
import, and each template ~1 ms to compile.
"""
from __future__ import annotations

import functools
import traceback
from pathlib import Path
from typing import Any, Mapping

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from invoke_pachyderm.core.errors import TemplateError


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


def render_text(project_dir: Path, path: Path, source: str, variables: Mapping[str, Any]) -> str:
    """The template's output; raises TemplateError naming the file and line."""
    environment = make_environment(project_dir)
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
    return text


def _template_line(error: BaseException, path: Path) -> str:
    target = str(path.resolve())
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename and str(Path(frame.filename).resolve()) == target
    ]
    return str(lines[-1]) if lines else "?"
