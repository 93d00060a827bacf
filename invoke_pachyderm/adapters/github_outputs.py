"""GitHub Actions step outputs and job summary for a stage's result.

Called by the task adapters (and the nox sessions) after a stage; a no-op outside GitHub Actions
(no GITHUB_OUTPUT / GITHUB_STEP_SUMMARY). `flow` knows nothing of it.

Outputs (`$GITHUB_OUTPUT`, so `steps.<id>.outputs.<name>`):

    commit             the commit deployed (a pull request's head SHA)
    tag                the main image's tag
    image              the main (first) image reference, repository:tag
    digest             the main image's digest, once pushed or found in the registry
    images             JSON {name: {ref, digest}} of every image
    specs              JSON list of rendered spec paths (render-spec, deploy)
    pipelines-changed  space-separated pipelines created or updated (would be, with --dry-run)
    pipelines          JSON list of {name, action, version, previous_version}
    dry-run            true or false (deploy)
"""
from __future__ import annotations

import json
from typing import Any

from invoke_pachyderm.core.artifacts import Artifacts
from invoke_pachyderm.core.output import Reporter


def enabled(reporter: Reporter) -> bool:
    return bool(reporter.environ.get("GITHUB_OUTPUT") or reporter.environ.get("GITHUB_STEP_SUMMARY"))


def publish(reporter: Reporter, task: str, artifacts: Artifacts, dry_run: bool | None = None) -> None:
    """Write the outputs and the Markdown summary of `task` (build, push, render-spec, deploy)."""
    if not enabled(reporter):
        return
    reporter.github_outputs(outputs(task, artifacts, dry_run))
    reporter.github_summary(summary(task, artifacts, dry_run))


def outputs(task: str, artifacts: Artifacts, dry_run: bool | None = None) -> dict[str, str]:
    result: dict[str, str] = {"commit": artifacts.git.commit}
    main = next(iter(artifacts.images.values()), None)
    if main is not None:
        result["image"] = main.ref
        result["tag"] = main.tag
        if main.digest:
            result["digest"] = main.digest
    if artifacts.images:
        result["images"] = json.dumps(
            {name: {"ref": i.ref, "digest": i.digest} for name, i in artifacts.images.items()}, sort_keys=True
        )
    if artifacts.specs:
        result["specs"] = json.dumps([str(s.path) if s.path else s.source for s in artifacts.specs])
    if task == "deploy":
        changed = [c.name for c in artifacts.changes if c.action != "unchanged"]
        result["pipelines-changed"] = " ".join(changed)
        result["pipelines"] = json.dumps(
            [
                {"name": c.name, "action": c.action, "version": c.version, "previous_version": c.previous_version}
                for c in artifacts.changes
            ]
        )
        result["dry-run"] = "true" if dry_run else "false"
    return result


def summary(task: str, artifacts: Artifacts, dry_run: bool | None = None) -> str:
    title = f"invoke-pachyderm {task}" + (" (dry run: nothing changed)" if dry_run else "")
    lines = [f"### {title}", "", f"Commit `{artifacts.git.commit}` on `{artifacts.git.branch}`", ""]
    if artifacts.images:
        lines += ["| image | digest | |", "| --- | --- | --- |"]
        for image in artifacts.images.values():
            lines.append(f"| `{image.ref}` | {_code(image.digest)} | {_image_note(task, image, dry_run)} |")
        lines.append("")
    if task == "deploy":
        lines += _changes(artifacts, dry_run)
    elif artifacts.specs:
        lines += ["| pipeline | spec |", "| --- | --- |"]
        for spec in artifacts.specs:
            lines.append(f"| `{spec.name}` | `{spec.path or spec.source}` |")
    return "\n".join(lines)


def _changes(artifacts: Artifacts, dry_run: bool | None) -> list[str]:
    if not artifacts.changes:
        return ["No pipelines."]
    lines = _mermaid(artifacts)
    lines += ["| pipeline | action | version |", "| --- | --- | --- |"]
    for change in artifacts.changes:
        action = change.action if dry_run or change.action == "unchanged" else change.action + "d"
        if dry_run and change.action != "unchanged":
            action = f"would {change.action}"
        version = _version(change)
        lines.append(f"| `{change.name}` | {action} | {version} |")
    lines.append("")
    for change in artifacts.changes:
        if change.diff:
            lines += [
                f"<details><summary><code>{change.name}</code>: {change.action}</summary>",
                "",
                "```diff",
                change.diff.rstrip("\n"),
                "```",
                "</details>",
                "",
            ]
    return lines


def _mermaid(artifacts: Artifacts) -> list[str]:
    """The plan as a graph; GitHub renders ```mermaid blocks."""
    from invoke_pachyderm.stages.graph import build_graph, to_mermaid

    return ["```mermaid", to_mermaid(build_graph(artifacts.specs, artifacts.changes)).rstrip("\n"), "```", ""]


def _version(change) -> str:
    if change.previous_version and change.version and change.previous_version != change.version:
        return f"{change.previous_version} → {change.version}"
    if change.version:
        return str(change.version)
    if change.previous_version:
        return f"{change.previous_version} (deployed)"
    return "–"


def _image_note(task: str, image, dry_run: bool | None) -> str:
    if image.skipped:
        return image.skipped
    if image.pushed:
        return "pushed"
    if image.built:
        return "built"
    if task == "deploy" and dry_run:
        return "not built (dry run)"
    return ""


def _code(value: Any) -> str:
    return f"`{value}`" if value else "–"


def publish_status(reporter: Reporter, project: str, rows: list[dict[str, Any]]) -> None:
    """`status` in the job summary: one row per pipeline."""
    if not reporter.environ.get("GITHUB_STEP_SUMMARY"):
        return
    lines = [f"### invoke-pachyderm status: project `{project}`", ""]
    if not rows:
        reporter.github_summary("\n".join(lines + ["No pipelines."]))
        return
    lines += ["| pipeline | version | state | commit | image |", "| --- | --- | --- | --- | --- |"]
    for row in rows:
        state = row["state"] + (f" ({row['reason']})".replace("|", "\\|") if row.get("reason") else "")
        lines.append(
            f"| `{row['pipeline']}` | {row['version']} | {state} | {_code((row.get('commit') or '')[:12])} "
            f"| {_code(row.get('image'))} |"
        )
    reporter.github_summary("\n".join(lines))
