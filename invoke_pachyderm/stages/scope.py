"""One scope per deploy: every pipeline a command writes is in the deploy's project.

The project comes from the settings alone (`project`, the environment's, or `pr-N` of a preview).
A spec may not send its pipeline elsewhere with its own `pipeline.project`: the owner checks,
prune and teardown look in the deploy's project only, so a pipeline written anywhere else would be
written unchecked (over another team's) and left behind. Its pfs inputs may still read other projects.
"""
from __future__ import annotations

from typing import Any, Iterable

from invoke_pachyderm.core.errors import TemplateError


def spec_project(spec: Any) -> str:
    """The project a spec names for its own pipeline ("" when it names none: the deploy's)."""
    pipeline = spec.get("pipeline") if isinstance(spec, dict) else None
    project = pipeline.get("project") if isinstance(pipeline, dict) else None
    name = project.get("name") if isinstance(project, dict) else None
    return name if isinstance(name, str) else ""


def refuse_other_projects(settings, specs: Iterable) -> None:
    """A rendered spec whose `pipeline.project.name` is set and is not the deploy's project: refused."""
    for spec in specs:
        named = spec_project(spec.spec)
        if not named or named == settings.project:
            continue
        where = settings.sources.get("project") or "no `project` setting"
        base = " (the base project: a preview never writes there)" if named == settings.base_project else ""
        raise TemplateError(
            f"{spec.source}: $.pipeline.project.name: pipeline '{spec.name}' names project '{named}'{base}, but this "
            f"deploy writes only to project '{settings.project}' (from {where}); remove pipeline.project from "
            "the template: the project comes from the `project` setting, --env or --preview "
            "(inputs may still read other projects); nothing was deployed"
        )
