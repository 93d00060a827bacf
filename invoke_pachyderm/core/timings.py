"""Where a deploy's time goes: seconds per stage, for `--json` and one closing summary line."""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Iterator


class Timings:
    """Seconds per stage, in the order stages first ran. Images built in parallel add up their
    build (and push) times, so those two can exceed the wall clock when jobs > 1."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - began)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def to_json(self) -> dict[str, float]:
        return {name: round(seconds, 3) for name, seconds in self.seconds.items()}

    def summary(self) -> str:
        """`tag 0.01 s · render 0.05 s · build 1.20 s · ...`"""
        return " · ".join(f"{name} {seconds:.2f} s" for name, seconds in self.seconds.items())
