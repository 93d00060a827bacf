"""Layer and byte progress of a push (or of the base-image pull inside a build), per image.

On a terminal the line is rewritten in place; elsewhere (CI, a pipe, a log file) it is line-oriented:
one line every few seconds at most, and one at the end. The Docker daemon's progress chunks are
`{"id": layer, "status": ..., "progressDetail": {"current": n, "total": n}}`.
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Callable

DONE = ("Pushed", "Layer already exists", "Mounted from", "Pull complete", "Already exists", "Download complete")
ALREADY = ("Layer already exists", "Mounted from", "Already exists")
LINE_INTERVAL = 5.0  # seconds between progress lines when not on a terminal
TTY_INTERVAL = 0.2

_active = 0  # transfers running now: in-place rewriting is for one at a time
_lock = threading.Lock()


def human(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"  # pragma: no cover


class TransferProgress:
    def __init__(self, verb: str, log: Callable[[str], None], stream=None, interactive: bool | None = None):
        self.verb = verb  # "push", "pull"
        self.log = log
        self.stream = stream or sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.layers: dict[str, dict] = {}
        self.began = time.monotonic()
        self.shown = 0.0
        self.drawn = False

    def __enter__(self):
        global _active
        with _lock:
            _active += 1
        return self

    def __exit__(self, *exc):
        global _active
        with _lock:
            _active -= 1
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def say(self, line: str) -> None:
        """A log line while the progress line may be drawn: clear it first, draw it again next."""
        if self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False
            self.shown = 0.0
        self.log(line)

    def feed(self, chunk: dict) -> None:
        layer, status = chunk.get("id"), chunk.get("status") or ""
        if not layer or not status or " " in layer:  # "latest: digest: ..." lines have no layer id
            return
        entry = self.layers.setdefault(layer, {"current": 0, "total": 0, "done": False, "already": False})
        detail = chunk.get("progressDetail") or {}
        if detail.get("current"):
            entry["current"] = max(entry["current"], int(detail["current"]))
        if detail.get("total"):
            entry["total"] = int(detail["total"])
        if status.startswith(DONE):
            entry["done"] = True
            entry["already"] = entry["already"] or status.startswith(ALREADY)
        self._show()

    def line(self) -> str:
        done = sum(e["done"] for e in self.layers.values())
        sent = sum(e["total"] if e["done"] and e["total"] else e["current"] for e in self.layers.values())
        total = sum(e["total"] for e in self.layers.values() if e["total"])
        size = f"{human(sent)} of {human(total)}" if total > sent else human(sent)
        return f"{self.verb}: {done}/{len(self.layers)} layers, {size}"

    def summary(self) -> str | None:
        if not self.layers:
            return None
        already = sum(e["already"] for e in self.layers.values())
        sent = sum(e["current"] for e in self.layers.values() if not e["already"])
        moved = "uploaded" if self.verb == "push" else "downloaded"
        return (
            f"{self.verb}: {len(self.layers)} layers ({already} already there), {human(sent)} {moved} "
            f"in {time.monotonic() - self.began:.1f}s"
        )

    def _show(self) -> None:
        now = time.monotonic()
        interactive = self.interactive and _active == 1
        if now - self.shown < (TTY_INTERVAL if interactive else LINE_INTERVAL):
            return
        self.shown = now
        if interactive:
            self.stream.write("\r\x1b[K" + self.line())
            self.stream.flush()
            self.drawn = True
        elif now - self.began >= LINE_INTERVAL:  # a quick transfer gets only its summary
            self.log(self.line())
