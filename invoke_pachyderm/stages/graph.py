"""The plan as a picture: input repos -> pipelines, each pipeline marked with what a deploy does to it.

Built from the same plan as `deploy --dry-run` (`flow.plan_graph`: `flow.plan`), so the picture and the
deploy cannot disagree. Rendered as Mermaid (GitHub and GitLab render it in Markdown) or Graphviz DOT.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from invoke_pachyderm.core.artifacts import PipelineChange, RenderedSpec

ACTIONS = ("create", "update", "unchanged", "delete")
# Past tense for a plan that was applied; the dry-run words otherwise.
LABELS = {"create": "create", "update": "update", "unchanged": "unchanged", "delete": "deleted from templates"}
STYLES = {  # fill, stroke, dashed
    "create": ("#d3f9d8", "#2b8a3e", False),
    "update": ("#fff3bf", "#e67700", False),
    "unchanged": ("#f1f3f5", "#868e96", False),
    "delete": ("#ffe3e3", "#c92a2a", True),
}


@dataclass
class PipelineNode:
    name: str
    action: str  # one of ACTIONS
    inputs: list[str]  # repos read: input repos or other pipelines' output repos


@dataclass
class PlanGraph:
    pipelines: list[PipelineNode] = field(default_factory=list)

    @property
    def names(self) -> set[str]:
        return {p.name for p in self.pipelines}

    @property
    def repos(self) -> list[str]:
        """Repos read that no pipeline of the graph produces: the inputs of the project."""
        produced = self.names
        return sorted({repo for p in self.pipelines for repo in p.inputs if repo not in produced})

    def edges(self) -> list[tuple[str, str]]:
        return [(repo, p.name) for p in self.pipelines for repo in p.inputs]

    def to_json(self) -> dict[str, Any]:
        return {
            "repos": self.repos,
            "pipelines": [{"name": p.name, "action": p.action, "inputs": p.inputs} for p in self.pipelines],
            "edges": [{"from": a, "to": b} for a, b in self.edges()],
        }


def build_graph(
    specs: Iterable[RenderedSpec], changes: Iterable[PipelineChange], deleted: Mapping[str, Mapping] | None = None
) -> PlanGraph:
    """`deleted`: name -> deployed spec of pipelines this project deployed that no template renders now."""
    actions = {change.name: change.action for change in changes}
    graph = PlanGraph()
    for spec in specs:
        graph.pipelines.append(PipelineNode(spec.name, actions.get(spec.name, "unchanged"), spec.input_repos))
    for name, deployed_spec in sorted((deleted or {}).items()):
        inputs = RenderedSpec(name=name, source="deployed", spec=dict(deployed_spec)).input_repos
        graph.pipelines.append(PipelineNode(name, "delete", inputs))
    return graph


def owned_but_not_rendered(deployed: Mapping[str, Any], specs: Iterable[RenderedSpec], owner) -> dict[str, dict]:
    """Pipelines this project owns (ownership.py: the owner annotation) that no template renders:
    what `deploy --prune` would delete. Other owners' and hand-made pipelines are never claimed."""
    from invoke_pachyderm.stages.ownership import owned

    rendered = {spec.name for spec in specs}
    return {name: pipeline.spec for name, pipeline in owned(deployed, owner).items() if name not in rendered}


# -- Mermaid --------------------------------------------------------------------------
def to_mermaid(graph: PlanGraph) -> str:
    ids = _ids(graph)
    lines = ["flowchart LR"]
    for repo in graph.repos:
        lines.append(f'  {ids["repo", repo]}[("{_mermaid_text(repo)}")]')
    for node in graph.pipelines:
        lines.append(f'  {ids["pipeline", node.name]}["{_mermaid_text(node.name)}<br/>{LABELS[node.action]}"]:::{node.action}')
    for source, target in graph.edges():
        arrow = "-.->" if STYLES[_action(graph, target)][2] else "-->"
        lines.append(f"  {_node_id(ids, graph, source)} {arrow} {ids['pipeline', target]}")
    for action in ACTIONS:
        fill, stroke, dashed = STYLES[action]
        dash = ",stroke-dasharray:5 5" if dashed else ""
        lines.append(f"  classDef {action} fill:{fill},stroke:{stroke},color:#212529{dash}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


# -- DOT ------------------------------------------------------------------------------
def to_dot(graph: PlanGraph) -> str:
    ids = _ids(graph)
    lines = ["digraph pipelines {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for repo in graph.repos:
        lines.append(f'  {ids["repo", repo]} [shape=cylinder, label={_dot_text(repo)}];')
    for node in graph.pipelines:
        fill, stroke, dashed = STYLES[node.action]
        style = '"filled,dashed"' if dashed else "filled"
        label = _dot_text(f"{node.name}\n{LABELS[node.action]}")
        lines.append(
            f'  {ids["pipeline", node.name]} [shape=box, style={style}, fillcolor="{fill}", '
            f'color="{stroke}", label={label}, class="{node.action}"];'
        )
    for source, target in graph.edges():
        style = " [style=dashed]" if STYLES[_action(graph, target)][2] else ""
        lines.append(f"  {_node_id(ids, graph, source)} -> {ids['pipeline', target]}{style};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# -- shared ---------------------------------------------------------------------------
def _ids(graph: PlanGraph) -> dict[tuple[str, str], str]:
    """Numbered ids: pipeline and repo names may share a name, and '-' is not safe everywhere."""
    ids = {("repo", repo): f"r{index}" for index, repo in enumerate(graph.repos)}
    ids.update({("pipeline", p.name): f"p{index}" for index, p in enumerate(graph.pipelines)})
    return ids


def _node_id(ids, graph: PlanGraph, repo: str) -> str:
    return ids["pipeline", repo] if repo in graph.names else ids["repo", repo]


def _action(graph: PlanGraph, name: str) -> str:
    return next(p.action for p in graph.pipelines if p.name == name)


FORMATS = {"mermaid": to_mermaid, "dot": to_dot}
