"""What a deploy would change: normalised specs, diffs, and dependency order. Pure functions."""
from __future__ import annotations

import difflib
import graphlib
import json
from typing import Any, Iterable, Mapping

from invoke_pachyderm.core.artifacts import PipelineChange, RenderedSpec
from invoke_pachyderm.core.errors import TemplateError

def spec_diff(deployed: Mapping[str, Any] | None, rendered: Mapping[str, Any], name: str) -> str:
    before = _pretty(deployed) if deployed is not None else []
    after = _pretty(rendered)
    return "".join(
        difflib.unified_diff(before, after, fromfile=f"deployed/{name}", tofile=f"rendered/{name}")
    )


def _pretty(spec: Mapping[str, Any]) -> list[str]:
    return [line + "\n" for line in json.dumps(spec, indent=2, sort_keys=True).splitlines()]


def plan_changes(
    rendered: Iterable[RenderedSpec],
    deployed_normalized: Mapping[str, Mapping[str, Any]],
    rendered_normalized: Mapping[str, Mapping[str, Any]],
    force: bool = False,
    regenerate: frozenset[str] = frozenset(),
) -> list[PipelineChange]:
    """create / update / unchanged per rendered spec; `regenerate` names pipelines updated only
    to take new cluster or project defaults."""
    changes = []
    for spec in rendered:
        before = deployed_normalized.get(spec.name)
        after = rendered_normalized[spec.name]
        if before is None:
            changes.append(PipelineChange(spec.name, "create", spec_diff(None, after, spec.name)))
        elif before != after or force or spec.name in regenerate:
            changes.append(PipelineChange(spec.name, "update", spec_diff(before, after, spec.name)))
        else:
            changes.append(PipelineChange(spec.name, "unchanged"))
    return changes


def dependency_order(specs: list[RenderedSpec]) -> list[RenderedSpec]:
    """Pipelines that read another's output repo come after it; a cycle is an error."""
    by_name = {spec.name: spec for spec in specs}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for spec in specs:
        sorter.add(spec.name, *[repo for repo in spec.input_repos if repo in by_name and repo != spec.name])
    try:
        order = list(sorter.static_order())
    except graphlib.CycleError as error:
        cycle = " -> ".join(error.args[1])
        raise TemplateError(f"pipelines read each other's output in a cycle: {cycle}; break the cycle") from None
    return [by_name[name] for name in order]
