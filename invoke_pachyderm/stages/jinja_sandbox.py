"""The Jinja side of rendering: a sandbox that reads only project files, its errors as one line.

Imported only for a template that needs Jinja (see `render.fill_simple`): jinja2 costs ~40 ms to
import, and each template ~1 ms to compile.
"""
from __future__ import annotations

import functools
import os
import re
import traceback
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Iterator, Mapping

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator
from jinja2.exceptions import SecurityError
from jinja2.runtime import LoopContext
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import _PassArg
from jinja2.visitor import NodeTransformer

from invoke_pachyderm.core.errors import TemplateError
from invoke_pachyderm.stages import render_budget
from invoke_pachyderm.stages.template_reads import ProjectReads, ReadRefused


class OutsideProject(jinja2.TemplateError):
    """A template or include resolves (through a symlink) to a file outside the project."""


class ProjectLoader(jinja2.BaseLoader):
    """Loads only what `template_reads` allows: a regular file inside the project that git would
    commit, outside `.git/` - a symlink or an include must not put a host file, a key or the
    remote's credentials into a spec that pachd stores. The reads of the current render."""

    def __init__(self, project_dir: Path):
        self.root = Path(project_dir).resolve()
        self.reads: ContextVar[ProjectReads | None] = ContextVar("invoke_pachyderm_reads", default=None)

    def get_source(self, environment, template):
        reads = self.reads.get() or ProjectReads(self.root, render_budget.current().max_bytes)
        pieces = [piece for piece in template.split("/") if piece not in ("", ".")]
        if any(piece == ".." for piece in pieces):
            raise jinja2.TemplateNotFound(template)
        name = "/".join(pieces)
        try:
            resolved = reads.resolve(name)
        except ReadRefused as error:
            if str(error).startswith("no file "):
                raise jinja2.TemplateNotFound(template) from None
            raise OutsideProject(str(error)) from None
        try:
            text = reads.read(name).decode("utf-8")
        except ReadRefused as error:
            raise OutsideProject(str(error)) from None
        except UnicodeDecodeError:
            raise OutsideProject(f"'{name}' is not UTF-8 text") from None
        mtime = os.path.getmtime(resolved)
        return text, str(self.root / name), lambda: _unchanged(resolved, mtime)


def _unchanged(path: Path, mtime: float) -> bool:
    try:
        return os.path.getmtime(path) == mtime
    except OSError:
        return False


MAX_POWER_EXPONENT = 256
_NUMBERS = re.compile(r"\d+")


class _Budgeted(NodeTransformer):
    """Every loop's iterable and every `~` goes through the budget (see CappedSandbox)."""

    def visit_For(self, node):
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.EnvironmentAttribute("counted"), [node.iter], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node):
        self.generic_visit(node)
        return nodes.Call(nodes.EnvironmentAttribute("sized"), [node], [], None, None, lineno=node.lineno)


class _Output(list):
    """The buffer of a macro, a `set` or `filter` block, a recursive loop: its writes are spent."""

    def append(self, item):
        render_budget.current().spend(len(item))
        super().append(item)

    def extend(self, items):
        items = list(items)
        render_budget.current().spend(sum(len(item) for item in items))
        super().extend(items)


class _BudgetedCode(CodeGenerator):
    def buffer(self, frame):
        frame.buffer = self.temporary_identifier()
        self.writeline(f"{frame.buffer} = environment.output_buffer()")


class CappedSandbox(SandboxedEnvironment):
    """Jinja's sandbox caps range() (at jinja2.sandbox.MAX_RANGE); this also bounds what a template
    may make: no value (string, list, number) larger than the spec size cap, however it is made
    (`*`, `**`, `~`, `+`, `%`, a filter such as `center`, `replace` or `join`, a str method), a
    budget of output in all, and a deadline checked on every loop iteration and call."""

    intercepted_binops = frozenset({"**", "*", "+", "%", "//", "/", "-"})
    code_generator_class = _BudgetedCode

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.filters = {name: _capped_filter(name, function) for name, function in self.filters.items()}
        self.output_buffer = _Output
        self.finalize = _finalized

    def _parse(self, source, name, filename):
        return _Budgeted().visit(super()._parse(source, name, filename))

    @staticmethod
    def counted(iterable):
        budget = render_budget.current()
        if isinstance(iterable, (str, list, tuple, dict)):
            budget.check_size(iterable, "a loop's list")
        for item in iterable:
            budget.tick()
            yield item

    @staticmethod
    def sized(value):
        return render_budget.current().check_size(value, "a string joined with `~`")

    def call_binop(self, context, operator, left, right):
        budget = render_budget.current()
        budget.tick()
        if operator == "**" and isinstance(right, (int, float)) and not isinstance(right, bool):
            if abs(right) > MAX_POWER_EXPONENT:
                raise SecurityError(f"exponent {right} is too large (the limit is {MAX_POWER_EXPONENT})")
            if isinstance(left, int) and left.bit_length() * abs(right) > render_budget.MAX_INT_BITS:
                raise SecurityError(f"the power would have more than {render_budget.MAX_INT_BITS} bits")
        if operator == "*":
            for sequence, count in ((left, right), (right, left)):
                if isinstance(sequence, (str, list, tuple)) and isinstance(count, int):
                    if len(sequence) * count > budget.max_bytes:
                        raise SecurityError(
                            f"repeating a sequence to {len(sequence) * count} items is too large "
                            f"(the limit is max_spec_bytes, {budget.max_bytes})"
                        )
            if isinstance(left, int) and isinstance(right, int):
                if left.bit_length() + right.bit_length() > render_budget.MAX_INT_BITS:
                    raise SecurityError(f"the product would have more than {render_budget.MAX_INT_BITS} bits")
        if operator == "+" and isinstance(left, (str, list, tuple)) and isinstance(right, (str, list, tuple)):
            if len(left) + len(right) > budget.max_bytes:
                raise budget.too_large(len(left) + len(right), "a value joined with `+`")
        if operator == "%" and isinstance(left, str):
            _check_format(left, right if isinstance(right, (tuple, dict)) else (right,))
        return budget.check_size(super().call_binop(context, operator, left, right), f"the result of `{operator}`")

    def call(__self, __context, __obj, *args, **kwargs):  # noqa: N805 - Jinja's own signature
        budget = render_budget.current()
        budget.tick()
        if isinstance(__obj, LoopContext) and args:  # a recursive loop's `loop(children)`
            args = (__self.counted(args[0]), *args[1:])
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, (str, list, tuple, dict)):
            name = getattr(__obj, "__name__", "")
            args = tuple(_bounded(a) if isinstance(a, Iterator) else budget.check_size(a, name) for a in args)
            if name == "join" and isinstance(owner, str) and args:
                items = list(args[0])
                total = render_budget.measure(items, budget.max_bytes) + len(items) * len(owner)
                if total > budget.max_bytes:
                    raise budget.too_large(total, "the joined string")
                args = (items,)
            _check_arguments(name, owner, args, kwargs)
        return budget.check_size(super().call(__context, __obj, *args, **kwargs), "a call's result")

    def wrap_str_format(self, value):
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        template = value.__self__

        def checked(*args, **kwargs):
            _check_format(template, (*args, *kwargs.values()))
            return render_budget.current().check_size(wrapper(*args, **kwargs), "a formatted string")

        return checked


def _finalized(value):
    render_budget.current().check_size(value, "a printed value")
    return value


def _check_format(template: str, arguments) -> None:
    """`%` and str.format take field widths from the format string or the arguments."""
    limit = render_budget.current().max_bytes
    numbers = [int(n) for n in _NUMBERS.findall(template) if len(n) < 20]
    if any(len(n) >= 20 for n in _NUMBERS.findall(template)) or any(n > limit for n in numbers):
        raise SecurityError(f"a field width in the format string is larger than max_spec_bytes ({limit})")
    values = arguments.values() if isinstance(arguments, dict) else arguments
    if any(type(v) is int and abs(v) > limit for v in values):
        raise SecurityError(f"a width argument of the format is larger than max_spec_bytes ({limit})")


def _check_arguments(name: str, subject, args, kwargs) -> None:
    """Before a filter or method runs: none of its numbers may ask for more than the cap, and the
    ones that multiply their input are bounded by what they would make."""
    budget = render_budget.current()
    limit = budget.max_bytes
    values = [*args, *kwargs.values()]
    if any(type(v) is int and abs(v) > limit for v in values):
        raise SecurityError(f"{name}: an argument is larger than max_spec_bytes ({limit})")
    if not isinstance(subject, str):
        return
    strings = [v for v in values if isinstance(v, str)]
    if name == "replace" and len(strings) >= 2:
        old, new = strings[0], strings[1]
        count = subject.count(old) if old else len(subject) + 1
        if len(subject) + count * (len(new) - len(old)) > limit:
            raise budget.too_large(len(subject) + count * (len(new) - len(old)), "the replaced string")
    elif name in ("wordwrap", "indent", "join") and strings:
        longest = max(len(v) for v in strings)
        if (subject.count(" ") + subject.count("\n") + 1) * longest + len(subject) > limit:
            raise budget.too_large(len(subject) * longest, f"the result of {name}")


def _bounded(iterable):
    """A lazy input (`map`, `select`): what it yields is counted as it comes."""
    budget = render_budget.current()
    total = 0
    for item in iterable:
        total += render_budget.measure(item, budget.max_bytes)
        if total > budget.max_bytes:
            raise budget.too_large(total, "the list a filter reads")
        budget.tick()
        yield item


def _capped_filter(name: str, function):
    pass_arg = _PassArg.from_obj(function)

    @functools.wraps(function)
    def capped(*args, **kwargs):
        budget = render_budget.current()
        budget.tick()
        leading = 1 if pass_arg is not None else 0
        args = tuple(
            _bounded(a) if isinstance(a, Iterator) and not isinstance(a, (str, bytes)) else a for a in args
        )
        if len(args) > leading:
            subject = args[leading]
            if not isinstance(subject, Iterator):
                budget.check_size(subject, f"the input of filter {name!r}")
            if name == "join" and isinstance(subject, (list, tuple, Iterator)):
                items = list(subject) if isinstance(subject, Iterator) else subject
                separator = next((a for a in args[leading + 1:] if isinstance(a, str)), kwargs.get("d", ""))
                total = sum(render_budget.measure(i, budget.max_bytes) for i in items) + len(items) * len(separator)
                if total > budget.max_bytes:
                    raise budget.too_large(total, "the joined string")
                args = (*args[:leading], items, *args[leading + 1:])
            elif name == "format" and isinstance(subject, str):
                _check_format(subject, (*args[leading + 1:], *kwargs.values()))
            else:
                _check_arguments(name, subject, args[leading + 1:], kwargs)
        return budget.check_size(function(*args, **kwargs), f"the result of filter {name!r}")

    return capped


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


def render_text(
    project_dir: Path, path: Path, source: str, variables: Mapping[str, Any], reads: ProjectReads | None = None,
) -> str:
    """The template's output; raises TemplateError naming the file and line."""
    environment = make_environment(project_dir)
    loader = environment.loader
    assert isinstance(loader, ProjectLoader)
    token = loader.reads.set(reads)
    try:
        text = _generate(environment, source, variables)
    except render_budget.BudgetExceeded as error:
        line = _template_line(error, path)
        raise TemplateError(f"{source}{'' if line == '?' else ':' + line}: {error}") from None
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
    finally:
        loader.reads.reset(token)
    return text


def _generate(environment: SandboxedEnvironment, source: str, variables: Mapping[str, Any]) -> str:
    """The output, piece by piece: refused once past the spec size cap, not after it was all made."""
    budget = render_budget.current()
    pieces: list[str] = []
    size = 0
    for piece in environment.get_template(source).generate(**variables):
        size += len(piece)
        if size > budget.max_bytes:
            raise budget.too_large(size, "the rendered spec")
        budget.spend(len(piece))
        pieces.append(piece)
    return "".join(pieces)


def _template_line(error: BaseException, path: Path) -> str:
    target = str(path.resolve())
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if frame.filename and str(Path(frame.filename).resolve()) == target
    ]
    return str(lines[-1]) if lines else "?"
