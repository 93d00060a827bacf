"""The render cache (issue 12): an unchanged template is not rendered or validated again, in a
fresh process too, so an unchanged redeploy imports neither Jinja2 nor jsonschema; any change of
the template or the variables renders and validates again."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import json, sys
from pathlib import Path
from invoke_pachyderm.artifacts import Artifacts, ImageArtifact
from invoke_pachyderm.config import load_settings
from invoke_pachyderm.errors import TemplateError
from invoke_pachyderm.gitinfo import GitInfo
from invoke_pachyderm.render import render_specs, write_specs

project, tag = Path(sys.argv[1]), sys.argv[2]
settings = load_settings(project, environ={})
git = GitInfo(commit="0" * 40, branch="main", dirty=False, dirty_digest=None, repo_url=None)
artifacts = Artifacts(git=git, images={"main": ImageArtifact("main", "reg/app", tag)})
try:
    specs = render_specs(settings, artifacts)
except TemplateError as error:
    print(json.dumps({"error": str(error)}))
    raise SystemExit(0)
write_specs(specs, project / settings.out_dir)
print(json.dumps({"images": [s.spec["transform"]["image"] for s in specs],
                  "imported": [m for m in ("jinja2", "jsonschema") if m in sys.modules]}))
"""

SPEC = '{"pipeline": {"name": "%s"}, "transform": {"image": "{{ image }}"%s}, "input": {"pfs": {"repo": "a", "glob": "/*"}}}'


@pytest.fixture
def project(tmp_path) -> Path:
    root = tmp_path / "project"
    (root / "templates").mkdir(parents=True)
    (root / "pyproject.toml").write_text('[tool.invoke-pachyderm]\nimage = "reg/app"\n')
    (root / "templates/a.json.j2").write_text(SPEC % ("a", ""))
    (root / "templates/b.json.j2").write_text(SPEC % ("b", ""))
    return root


def render(project: Path, tag: str = "t1") -> dict:
    env = {"HOME": str(project.parent / "home"), "PATH": "/usr/bin:/bin"}
    completed = subprocess.run([sys.executable, "-c", SCRIPT, str(project), tag], env=env,
                               capture_output=True, text=True, check=True)
    return json.loads(completed.stdout)


def test_an_unchanged_render_needs_neither_jinja_nor_jsonschema(project):
    # `{{ image }}` alone needs no Jinja (render_simple); validating needs jsonschema, once.
    assert render(project) == {"images": ["reg/app:t1", "reg/app:t1"], "imported": ["jsonschema"]}
    assert render(project) == {"images": ["reg/app:t1", "reg/app:t1"], "imported": []}
    assert render(project, tag="t2") == {"images": ["reg/app:t2", "reg/app:t2"], "imported": ["jsonschema"]}


def test_a_changed_template_is_rendered_and_validated_again(project):
    render(project)
    (project / "templates/b.json.j2").write_text(SPEC % ("b", ', "cmd": "not a list"'))
    assert render(project)["error"].startswith("templates/b.json.j2: $.transform.cmd: expected a list")


def test_templates_with_statements_are_always_rendered(project):
    (project / "templates/inc.txt").write_text("one")
    (project / "templates/a.json.j2").write_text(
        '{"pipeline": {"name": "a"}, "description": "{% include \'templates/inc.txt\' %}",'
        ' "transform": {"image": "{{ image }}"}, "input": {"pfs": {"repo": "a", "glob": "/*"}}}'
    )
    render(project)
    (project / "templates/inc.txt").write_text("two")  # the template's own text did not change
    assert render(project)["imported"] == ["jinja2", "jsonschema"]


@pytest.mark.parametrize(
    "template",
    [
        '{"a": "{{ image }}", "b": "{{images.main.ref}}", "c": "{{ tag }}-{{ tag }}"}',
        '{"a": "{{ image | upper }}"}',  # a filter: Jinja
        '{"a": "{{ images.main.items }}"}',  # a dict's method, as Jinja sees it
        '{"a": {{ n }}}',  # not a string: Jinja
        '{"a": "{{ nope }}"}',  # undefined: Jinja words the error
        '{# c #}{"a": "{{ image }}"}',
    ],
)
def test_the_plain_path_agrees_with_jinja(tmp_path, template):
    from invoke_pachyderm.errors import TemplateError
    from invoke_pachyderm.render import make_environment, render_simple, render_template

    path = tmp_path / "t.json.j2"
    path.write_text(template)
    variables = {"image": "reg/app:1", "tag": "1", "n": 3, "images": {"main": {"ref": "reg/app:1"}}}
    try:
        expected = render_template(make_environment(tmp_path), path, "t.json.j2", variables)
    except TemplateError:
        expected = None
    simple = render_simple(path, "t.json.j2", variables)
    assert simple is None or simple == expected
    assert (simple is not None) == (template.startswith('{"a": "{{ image }}"'))
