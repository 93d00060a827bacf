"""Deploy as plan -> apply (issue 14 item 2), on the real Docker Engine, registry and pachd double:
the specs are rendered once per deploy (twice only with `pin_digest`, whose digest the push
makes), the dry run's plan is what the deploy then applies, and no backend module imports the
stages back (flow.py sits above them)."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from project_helpers import make_project

PACKAGE = Path(__file__).resolve().parent.parent / "invoke_pachyderm"
# Modules that compose the stages (flow's callers); everything else is below flow.
ABOVE_FLOW = {"flow", "commands", "housekeeping", "tasks", "nox", "cli", "github_action", "program"}


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    return make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        pipelines=(("edges", "images"), ("montage", "images")),
    )


def deploy_in_process(project, monkeypatch, capsys, *flags: str) -> tuple[dict, int]:
    """`deploy --json` through the same command the adapters run, counting the template renderings."""
    from invoke_pachyderm.stages import flow
    from invoke_pachyderm.commands import COMMANDS, Request, execute

    for name, value in project.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(project.root)
    renders = []
    real = flow.render_specs

    def counting(*args, **kwargs):
        renders.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(flow, "render_specs", counting)  # a spy: the real renderer does the work
    values = {name: None for name in COMMANDS["deploy"].flags}
    values.update({"json": True, "skip_tests": True, **{flag: True for flag in flags}})  # tests: pytest owns stdio
    capsys.readouterr()
    code, error = execute(COMMANDS["deploy"], Request(project.root, values))
    assert code == 0, error
    return json.loads(capsys.readouterr().out), len(renders)


def test_a_deploy_renders_the_templates_once(project, cluster, monkeypatch, capsys):
    document, renders = deploy_in_process(project, monkeypatch, capsys)
    assert renders == 1
    assert {p["name"]: p["action"] for p in document["pipelines"]} == {"edges": "create", "montage": "create"}
    assert cluster.pipeline_versions() == {"edges": 1, "montage": 1}
    written = json.loads((project.root / "build/pipelines/edges.json").read_text())
    digest = written["metadata"]["annotations"]["invoke-pachyderm.io/digest"]
    assert digest == document["images"]["main"]["digest"]  # the push's digest, without a second rendering

    dry, renders = deploy_in_process(project, monkeypatch, capsys, "dry_run")
    assert renders == 1 and {p["action"] for p in dry["pipelines"]} == {"unchanged"}


def test_with_pin_digest_the_specs_are_rendered_again_after_the_push(
    tmp_path, services, registry, cluster, unique_repo, monkeypatch, capsys
):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
                           settings="pin_digest = true\n")
    document, renders = deploy_in_process(project, monkeypatch, capsys)
    assert renders == 2  # the digest in the image reference is known only after the push
    image = json.loads((project.root / "build/pipelines/edges.json").read_text())["transform"]["image"]
    assert image == f"{document['images']['main']['ref']}@{document['images']['main']['digest']}"


def comparable(pipelines: list[dict]) -> list[tuple]:
    """What a plan decides; `version` is pachd's answer to applying it."""
    return [(p["name"], p["action"], p["diff"], p["previous_version"], p["defaults_changed"]) for p in pipelines]


def test_the_deploy_applies_the_plan_its_dry_run_showed(project, cluster):
    first = project.invoke("deploy")
    assert first.code == 0, first.stderr
    template = project.root / "templates/montage.json.j2"
    template.write_text(template.read_text().replace('"description": ""', '"description": "a montage"'))
    project.pipeline("stats", "edges")
    project.commit("one pipeline changed, one new, one untouched")

    dry = project.invoke("deploy", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert cluster.pipeline_versions() == {"edges": 1, "montage": 1}  # the dry run changed nothing
    real = project.invoke("deploy", "--json")
    assert real.code == 0, real.stderr

    assert comparable(real.json["pipelines"]) == comparable(dry.json["pipelines"])
    assert [(p["name"], p["action"]) for p in dry.json["pipelines"]] == [
        ("edges", "unchanged"), ("montage", "update"), ("stats", "create")
    ]
    assert cluster.pipeline_versions() == {"edges": 1, "montage": 2, "stats": 1}
    assert dry.json["checks"] == real.json["checks"] and "input repos exist" in dry.json["checks"]
    assert dry.json["images"]["main"]["tag"] == real.json["images"]["main"]["tag"]


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in the file, `from a import b` as both a and a.b."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import at line {node.lineno}"
            found.append((node.lineno, node.module))
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def modules_under(folder: str):
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), path


def test_no_module_below_the_stages_imports_them():
    offenders = []
    for name, path in modules_under("."):
        if Path(name).stem in ABOVE_FLOW or "pachd_double" in name:
            continue
        for line, module in imported_modules(path):
            if module == "invoke_pachyderm.stages.flow":
                offenders.append(f"{name}: line {line}")
    assert offenders == []


def test_the_backends_and_core_never_call_up_into_the_stages_or_adapters():
    offenders = []
    for folder in ("backends", "core"):
        for name, path in modules_under(folder):
            for line, module in imported_modules(path):
                if module.startswith(("invoke_pachyderm.stages", "invoke_pachyderm.adapters")):
                    offenders.append(f"{name}: line {line}: {module}")
    assert offenders == []


def test_a_digest_annotation_of_any_image_is_volatile():
    from invoke_pachyderm.backends.pachd_forms import is_volatile_annotation, normalize_spec
    from invoke_pachyderm.core.artifacts import ANNOTATION_PREFIX

    assert is_volatile_annotation(ANNOTATION_PREFIX + "digest.b")
    assert is_volatile_annotation(ANNOTATION_PREFIX + "digest")
    assert not is_volatile_annotation(ANNOTATION_PREFIX + "image.b")
    assert not is_volatile_annotation("example.com/digest.b")
    spec = {"pipeline": {"name": "p"}, "metadata": {"annotations": {ANNOTATION_PREFIX + "digest.b": "sha256:1"}}}
    assert "metadata" not in normalize_spec(spec, "default")


def test_a_template_that_names_the_digest_gets_the_pushed_one(project, cluster, monkeypatch, capsys):
    project.pipeline("edges", "images", description="{{ images.main.digest }}")
    project.commit("the digest in a template")
    document, renders = deploy_in_process(project, monkeypatch, capsys)
    assert renders == 2  # rendered again after the push, as with pin_digest
    written = json.loads((project.root / "build/pipelines/edges.json").read_text())
    assert written["description"] == document["images"]["main"]["digest"]
