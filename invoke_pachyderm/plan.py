"""What a deploy would change: normalised specs, diffs, and dependency order. Pure functions."""
from __future__ import annotations

import copy
import difflib
import graphlib
import json
from typing import Any, Iterable, Mapping

from .artifacts import PipelineChange, RenderedSpec
from .errors import TemplateError

ANNOTATION_PREFIX = "invoke-pachyderm.io/"
# Provenance that may differ between two deploys of the same pipeline code; the diff ignores it.
# The digest is known only after a push (not in a dry run); with pin_digest it is in the image anyway.
VOLATILE_ANNOTATIONS = frozenset(
    ANNOTATION_PREFIX + key
    for key in ("commit", "branch", "ci-run", "tool-version", "repository", "deployed-from", "digest")
)


def is_volatile_annotation(key: str) -> bool:
    """`digest.<image>` and the like count as their base key."""
    return key in VOLATILE_ANNOTATIONS or key.split(".", 1)[0] in VOLATILE_ANNOTATIONS
DEFAULT_USER_IMAGE = "ubuntu:20.04"
# Request fields that are instructions for this one call, not part of the pipeline.
REQUEST_ONLY_FIELDS = ("update", "reprocess", "dry_run", "details_json", "spec_commit", "salt")


def normalize_spec(spec: Mapping[str, Any], project: str) -> dict[str, Any]:
    """The spec as pachd would store it (its defaults filled in), without volatile provenance."""
    spec = copy.deepcopy(dict(spec))
    for key in REQUEST_ONLY_FIELDS:
        spec.pop(key, None)
    name = spec.get("pipeline", {}).get("name", "")
    spec["pipeline"] = {"name": name}
    transform = spec.setdefault("transform", {})
    transform.setdefault("image", DEFAULT_USER_IMAGE)
    spec.setdefault("output_branch", "master")
    spec.setdefault("datum_tries", "3")
    spec["datum_tries"] = str(spec["datum_tries"])
    spec.setdefault("reprocess_spec", "until_success")
    if isinstance(spec.get("service"), dict):
        spec["service"].setdefault("type", "NodePort")
    spout = spec.get("spout")
    if isinstance(spout, dict) and isinstance(spout.get("service"), dict):
        spout["service"].setdefault("type", "NodePort")
    _visit_inputs(spec.get("input"), lambda node: _input_defaults(node, name, project))
    annotations = (spec.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        for key in [k for k in annotations if is_volatile_annotation(k)]:
            annotations.pop(key)
        if not annotations:
            spec["metadata"].pop("annotations")
        if not spec["metadata"]:
            spec.pop("metadata")
    return _drop_empty(spec)


def _visit_inputs(node: Any, visit) -> None:
    if not isinstance(node, dict):
        return
    visit(node)
    for key in ("cross", "union", "join", "group"):
        for child in node.get(key) or []:
            _visit_inputs(child, visit)


def _input_defaults(node: dict[str, Any], pipeline: str, project: str) -> None:
    pfs = node.get("pfs")
    if isinstance(pfs, dict):
        pfs.setdefault("branch", "master")
        pfs.setdefault("name", pfs.get("repo", ""))
        if pfs.get("project") in (None, "", project):
            pfs.pop("project", None)
        if pfs.get("repo_type") in (None, "", "user"):
            pfs.pop("repo_type", None)
    cron = node.get("cron")
    if isinstance(cron, dict):
        cron.pop("start", None)  # pachd sets it to "now" when absent
        cron.setdefault("repo", f"{pipeline}_{cron.get('name', '')}")
        if cron.get("project") in (None, "", project):
            cron.pop("project", None)
    git = node.get("git")
    if isinstance(git, dict):
        git.setdefault("branch", "master")


# map<string, string> fields: protobuf JSON keeps every entry, even "" or "0" (DEBUG=0 is not unset).
MAP_FIELDS = frozenset({"env", "annotations", "labels", "node_selector"})


def _drop_empty(value: Any, is_map: bool = False) -> Any:
    """Protobuf JSON omits default (empty/zero/false) values; do the same on both sides."""
    if isinstance(value, dict):
        cleaned = {k: _drop_empty(v, k in MAP_FIELDS) for k, v in value.items()}
        if is_map:
            return cleaned
        return {k: v for k, v in cleaned.items() if v not in (None, "", 0, False, [], {}, "0")}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


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
) -> list[PipelineChange]:
    changes = []
    for spec in rendered:
        before = deployed_normalized.get(spec.name)
        after = rendered_normalized[spec.name]
        if before is None:
            changes.append(PipelineChange(spec.name, "create", spec_diff(None, after, spec.name)))
        elif before != after or force:
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
