"""The Dockerfile that is built: the user's, plus one LABEL instruction in the stage that is built.

The classic builder turns each entry of the API's `labels=` into a LABEL step of its own (a
container commit each); one LABEL line is one step. With a `target`, the line goes at the end of
the target stage rather than into a stage appended at the end: the classic builder builds every
stage before its target, so a final `FROM <target>` stage would also build the stages after the
target, which the user asked not to build.
"""
from __future__ import annotations

import re
from typing import Mapping

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")


def with_labels(text: str, labels: Mapping[str, str], target: str | None = None) -> str:
    """`text` with one `LABEL` instruction carrying every label, in the stage `target` (else the last)."""
    escape = escape_char(text)
    lines = text.splitlines()
    line = "LABEL " + " ".join(f"{key}={quote(value, escape)}" for key, value in labels.items())
    at = end_of_stage(lines, target, escape) if target else len(lines)
    return "\n".join(lines[:at] + [line] + lines[at:]) + "\n"


def quote(value: str, escape: str = "\\") -> str:
    """A double-quoted Dockerfile word that LABEL reads back as `value` (no variable expansion)."""
    value = " ".join(str(value).splitlines())
    return '"' + "".join(escape + char if char in ('"', "$", escape) else char for char in value) + '"'


def escape_char(text: str) -> str:
    """The `# escape=` parser directive, if the Dockerfile starts with one; else backslash."""
    for line in text.splitlines():
        match = _DIRECTIVE.match(line.strip())
        if not match:
            break
        if match.group(1).lower() == "escape" and match.group(2) in ("\\", "`"):
            return match.group(2)
    return "\\"


def instructions(lines: list[str], escape: str = "\\") -> list[tuple[int, str]]:
    """(index of the first physical line, the instruction with continuations joined)."""
    found: list[tuple[int, str]] = []
    index = 0
    while index < len(lines):
        text = lines[index].strip()
        if not text or text.startswith("#"):
            index += 1
            continue
        start = index
        while text.endswith(escape) and index + 1 < len(lines):
            index += 1
            following = lines[index].strip()
            if not following or following.startswith("#"):  # dropped inside a continuation
                continue
            text = text[: -len(escape)] + " " + following
        found.append((start, text))
        index += 1
    return found


def end_of_stage(lines: list[str], target: str, escape: str = "\\") -> int:
    """Index of the line after the stage named `target` (the next FROM), or the end of the file.

    A target no stage has is left for Docker to report; the LABEL then goes at the end.
    """
    stages = [(start, stage_name(text)) for start, text in instructions(lines, escape) if _is_from(text)]
    for position, (_, name) in enumerate(stages):
        if name == target.lower():
            return stages[position + 1][0] if position + 1 < len(stages) else len(lines)
    return len(lines)


def _is_from(text: str) -> bool:
    return text.split(None, 1)[0].upper() == "FROM"


def stage_name(text: str) -> str | None:
    words = text.split()
    if len(words) >= 4 and words[-2].upper() == "AS":
        return words[-1].lower()
    return None
