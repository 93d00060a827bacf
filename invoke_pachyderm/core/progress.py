"""What a run has done so far, so that Ctrl-C can say in one line what was and was not applied."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from invoke_pachyderm.core.artifacts import ImageArtifact, PipelineChange
from invoke_pachyderm.core.errors import PachdError, PachydermToolError, PartlyApplied


@dataclass
class Progress:
    stage: str = "the checks"
    images: Mapping[str, ImageArtifact] = field(default_factory=dict)  # the backend marks built/pushed
    cluster: Any = None
    before: dict[str, int] = field(default_factory=dict)  # pipeline -> version before the transaction
    applying: list[str] = field(default_factory=list)  # pipelines in the transaction
    applied: bool = False  # the transaction was finished
    note: str = ""  # what is left undone after the transaction
    changes: list[PipelineChange] = field(default_factory=list)  # as applied, with their new versions

    def describe(self) -> str:
        parts = [f"interrupted during {self.stage}", self.images_done(), self.pipelines(), self.note]
        return "; ".join(part for part in parts if part)

    def images_done(self) -> str:
        if not self.images:
            return "nothing was built or pushed"
        images = list(self.images.values())
        pushed = [i.ref for i in images if i.pushed]
        present = [i.ref for i in images if i.skipped]
        missing = [i.ref for i in images if not i.pushed and not i.skipped]
        words = []
        if pushed:
            words.append("pushed " + ", ".join(pushed))
        if present:
            words.append("already in the registry: " + ", ".join(present))
        if missing:
            words.append(("not pushed: " if words else "nothing was pushed: ") + ", ".join(missing))
        return "; ".join(words)

    def pipelines(self) -> str:
        if not self.applying:
            return "no pipeline was changed"
        if self.applied:
            return "the deploy was applied: " + ", ".join(self._versions_now() or self.applying)
        before = {name: self.before.get(name) for name in self.applying}
        try:
            now = self.cluster.read_back(self.applying)
        except PachydermToolError:  # pachd gone too: say so rather than guess
            now = None
        return transaction_outcome(self.applying, before, now)[1]

    def partly_applied(self, error: PachdError) -> PartlyApplied | None:
        """For a pachd error raised once the transaction was applied (the prune's, the wait's):
        exit 13, with what was applied, and not 8, which says nothing was."""
        if self.applied and self.applying:
            return PartlyApplied(f"{error.message}; {self.pipelines()}")
        return None

    def _versions_now(self) -> list[str]:
        return [f"{c.name} version {c.version}" for c in self.changes if c.name in self.applying and c.version]


class StoppedWith(KeyboardInterrupt):
    """Ctrl-C, carrying what the stage it stopped had done (`outcome`: a clause of the error line)."""

    def __init__(self, outcome: str):
        super().__init__(outcome)
        self.outcome = outcome


def transaction_outcome(
    names: list[str], before: Mapping[str, int | None], now: Mapping[str, int] | None
) -> tuple[bool, str]:
    """(whether nothing was applied, for sure; what was, as a clause of the error line), from the
    versions read back (`now`; None: pachd did not answer) against those of `before` (None: no such
    pipeline; a name missing from it: its version before is unknown)."""
    if now is None:
        return False, (
            "pachd did not answer when read back, so whether the transaction was applied is unknown: "
            + ", ".join(names) + "; check with `invoke status`"
        )
    changed = {n for n in names if n in before and n in now and now[n] != before[n]}
    applied = [f"{n} version {now[n]}" for n in names if n in changed]
    unknown = [n for n in names if n not in before]
    not_applied = [n for n in names if n in before and n not in changed]
    if not applied and not unknown:
        return True, "read back from pachd: the transaction was not applied, no pipeline was changed"
    return False, "read back from pachd: " + groups(
        ("applied", applied), ("not applied", not_applied), ("unknown", unknown)
    )


def groups(*named: tuple[str, list[str]]) -> str:
    """`applied: a version 2; not applied: none; unknown: b`: every group, the empty ones too."""
    return "; ".join(f"{name}: {', '.join(items) or 'none'}" for name, items in named)
