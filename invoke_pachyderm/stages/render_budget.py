"""The budget of one render: a size cap on every spec and on every value a template makes on the
way, a deadline, and a nesting limit.

A thread cannot stop CPU-bound Python, so the budget is checked where a template does work:
each loop iteration, call, filter, operator and piece of output (jinja_sandbox), each YAML node
(spec_formats), each file read (template_reads). Jsonnet is evaluated in C++, out of reach of these
checks between its imports: its output is capped, its time is not.
"""
from __future__ import annotations

import contextlib
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Iterator

DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_TIMEOUT = 10.0
MAX_DEPTH = 64  # nesting of lists and objects in a spec; pachd's own specs need a dozen
MAX_INT_BITS = 4096  # a spec's numbers are 64-bit; Python would not print a much larger int
WORK_FACTOR = 8  # output a render may produce in all (macros, `set` blocks, the spec) per spec byte


class BudgetExceeded(Exception):
    """The message says which cap, and the setting that raises it."""


@dataclass
class Budget:
    max_bytes: int = DEFAULT_MAX_BYTES
    timeout: float = DEFAULT_TIMEOUT
    deadline: float = field(default=0.0)
    work: int = 0

    def __post_init__(self):
        if not self.deadline:
            self.deadline = time.monotonic() + self.timeout

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise BudgetExceeded(
                f"rendering took longer than {self.timeout:g} s (render_timeout); a loop or an operator "
                "does too much work: simplify it, or raise `render_timeout`"
            )

    def too_large(self, size: int, what: str = "a value") -> BudgetExceeded:
        return BudgetExceeded(
            f"{what} would be larger than {self.max_bytes} bytes (max_spec_bytes, at least {size}); "
            "make it smaller, or raise `max_spec_bytes`"
        )

    def spend(self, size: int) -> None:
        """Output written anywhere in a render (a macro's, a `set` block's, the spec's)."""
        self.work += size
        if self.work > self.max_bytes * WORK_FACTOR:
            raise BudgetExceeded(
                f"the template wrote more than {self.max_bytes * WORK_FACTOR} bytes in all (macros, `set` blocks "
                f"and output; {WORK_FACTOR} x max_spec_bytes); make it write less, or raise `max_spec_bytes`"
            )
        self.tick()

    def check_size(self, value: Any, what: str = "a value") -> Any:
        """`value`, if its JSON text would not exceed the cap (counted without walking past it)."""
        size = measure(value, self.max_bytes)
        if size > self.max_bytes:
            raise self.too_large(size, what)
        return value


_CURRENT: ContextVar[Budget | None] = ContextVar("invoke_pachyderm_render_budget", default=None)


def current() -> Budget:
    budget = _CURRENT.get()
    # Outside a render (a direct call): the default caps.
    return Budget() if budget is None else budget


@contextlib.contextmanager
def active(budget: Budget) -> Iterator[Budget]:
    token = _CURRENT.set(budget)
    try:
        yield budget
    finally:
        _CURRENT.reset(token)


def measure(value: Any, limit: int) -> int:
    """About the length of `value`'s JSON text, counting each shared list or object as often as it
    is reached (as printing it would); stops once past `limit`. Iterative: no recursion to exhaust."""
    total = 0
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bytes:
            total += len(item) + 2
        elif kind is int:
            bits = item.bit_length()
            if bits > MAX_INT_BITS:
                return limit + bits
            total += bits // 3 + 1
        elif isinstance(item, dict):
            total += 2 + len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, str):
            total += len(item) + 2
        else:
            total += 4
        if total > limit:
            return total
    return total


def nesting_path(value: Any, limit: int = MAX_DEPTH) -> list | None:
    """The path (keys and indexes) to the first list or object nested deeper than `limit`, if any."""
    stack: list[tuple[Any, list]] = [(value, [])]
    while stack:
        item, path = stack.pop()
        if isinstance(item, dict):
            children = item.items()
        elif isinstance(item, list):
            children = enumerate(item)  # type: ignore[assignment]
        else:
            continue
        if len(path) >= limit:
            return path
        for key, child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, [*path, key]))
    return None
