"""What a run has done so far, so that Ctrl-C can say in one line what was and was not applied."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from invoke_pachyderm.core.artifacts import ImageArtifact, PipelineChange
from invoke_pachyderm.core.errors import PachydermToolError


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
        try:
            changed = self._changed_since_before()
        except PachydermToolError:  # pachd gone too: say so rather than guess
            return (
                "whether pachd finished the transaction is unknown (it did not answer); "
                "check with `invoke status`"
            )
        if not changed:
            return "the transaction was not finished: no pipeline was changed"
        return "the transaction had been finished: " + ", ".join(changed)

    def _versions_now(self) -> list[str]:
        return [f"{c.name} version {c.version}" for c in self.changes if c.name in self.applying and c.version]

    def _changed_since_before(self) -> list[str]:
        now = self.cluster.versions_now(self.applying)
        return [
            f"{name} version {now[name]}"
            for name in self.applying
            if name in now and now[name] != self.before.get(name)
        ]
