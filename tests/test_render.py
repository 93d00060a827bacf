"""Rendering spec templates: variables, errors with file:line, the sandbox, written files."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from invoke_pachyderm.core.artifacts import Artifacts, ImageArtifact
from invoke_pachyderm.core.config import load_settings
from invoke_pachyderm.core.errors import ConfigError, TemplateError
from invoke_pachyderm.core.gitinfo import GitInfo
from invoke_pachyderm.stages.render import find_templates, render_specs, template_variables, write_specs

COMMIT = "c0ffee" + "0123456789" * 3 + "abcd"
DIGEST = "sha256:" + "d" * 64


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in list(os.environ):
        if name.startswith("INVOKE_PACHYDERM_"):
            monkeypatch.delenv(name)


@pytest.fixture
def project(tmp_path) -> Path:
    path = tmp_path / "project"
    (path / "templates").mkdir(parents=True)
    return path


def settings_for(project_dir: Path, **config):
    return load_settings(project_dir, invoke_config=config, environ={})


def artifacts(*images: ImageArtifact, branch: str = "feature/x") -> Artifacts:
    git = GitInfo(commit=COMMIT, branch=branch, dirty=False, dirty_digest=None, repo_url=None)
    if not images:
        images = (ImageArtifact(name="main", repository="reg.example.com/edges", tag=COMMIT, digest=DIGEST),)
    return Artifacts(git=git, images={image.name: image for image in images})


def spec_text(name: str = "edges", annotations: str = "", image: str = "{{ image }}", repo: str = "images") -> str:
    """A valid pipeline spec template, one key per line so errors have a line to point at."""
    return (
        "{\n"
        f'  "pipeline": {{"name": "{name}"}},\n'
        f'  "metadata": {{"annotations": {{{annotations}}}}},\n'
        f'  "transform": {{"image": "{image}", "cmd": ["python", "/edges.py"]}},\n'
        f'  "input": {{"pfs": {{"repo": "{repo}", "glob": "/*"}}}}\n'
        "}\n"
    )


def write(project: Path, name: str, text: str) -> Path:
    path = project / "templates" / name
    path.write_text(text)
    return path


def render(project: Path, config: dict | None = None, arts: Artifacts | None = None):
    return render_specs(settings_for(project, **(config or {})), arts or artifacts())


# -- variables ----------------------------------------------------------------------------


def test_builtin_variables(project):
    names = ["image", "image_repository", "tag", "commit", "short_commit", "branch", "project"]
    annotations = ", ".join(f'"{n}": "{{{{ {n} }}}}"' for n in names)
    write(project, "edges.json.j2", spec_text(annotations=annotations))
    (spec,) = render(project, {"project": "vision"})
    assert spec.name == "edges"
    assert spec.source == "templates/edges.json.j2"
    assert spec.spec["metadata"]["annotations"] == {
        "image": f"reg.example.com/edges:{COMMIT}",
        "image_repository": "reg.example.com/edges",
        "tag": COMMIT,
        "commit": COMMIT,
        "short_commit": COMMIT[:12],
        "branch": "feature/x",
        "project": "vision",
    }
    assert spec.spec["transform"]["image"] == f"reg.example.com/edges:{COMMIT}"


def test_images_by_name_and_pinned_digests(project):
    annotations = (
        '"a": "{{ images.edges.ref }}", "b": "{{ images.montage.ref }}", '
        '"c": "{{ images.montage.tag }}", "d": "{{ images[\'edges\'].repository }}"'
    )
    write(project, "p.json.j2", spec_text(annotations=annotations))
    arts = artifacts(
        ImageArtifact(name="edges", repository="reg/edges", tag="t1", digest=DIGEST),
        ImageArtifact(name="montage", repository="reg/montage", tag="t2"),
    )
    (spec,) = render(project, arts=arts)
    assert spec.spec["metadata"]["annotations"] == {"a": "reg/edges:t1", "b": "reg/montage:t2", "c": "t2", "d": "reg/edges"}
    assert spec.spec["transform"]["image"] == "reg/edges:t1"  # `image` is the first image

    (pinned,) = render(project, {"pin_digest": True}, arts=arts)
    annotations = pinned.spec["metadata"]["annotations"]
    assert annotations["a"] == f"reg/edges:t1@{DIGEST}"
    assert annotations["b"] == "reg/montage:t2"  # no digest known: the plain reference
    assert pinned.spec["transform"]["image"] == f"reg/edges:t1@{DIGEST}"


def test_vars_are_template_variables(project):
    write(
        project,
        "p.json.j2",
        spec_text(annotations='"team": "{{ team }}", "n": "{{ replicas * 2 }}", "first": "{{ zones[0] }}"'),
    )
    (spec,) = render(project, {"vars": {"team": "vision", "replicas": 3, "zones": ["eu", "us"]}})
    assert spec.spec["metadata"]["annotations"] == {"team": "vision", "n": "6", "first": "eu"}


@pytest.mark.parametrize("name", ["image", "commit", "images", "project", "branch"])
def test_vars_shadowing_a_builtin_is_a_config_error(project, name):
    write(project, "p.json.j2", spec_text())
    with pytest.raises(ConfigError, match=f"vars: '{name}' would hide the built-in"):
        render(project, {"vars": {name: "x"}})


def test_vars_shadowing_a_builtin_that_has_no_value_is_still_refused(project):
    arts = Artifacts(git=GitInfo(COMMIT, "main", False, None, None))  # no image: `image` is None
    with pytest.raises(ConfigError, match="'image' would hide"):
        template_variables(settings_for(project, vars={"image": "mine"}), arts)


def test_without_images_the_image_variables_are_undefined(project):
    write(project, "p.json.j2", spec_text())
    arts = Artifacts(git=GitInfo(COMMIT, "main", False, None, None))
    with pytest.raises(TemplateError) as info:
        render(project, arts=arts)
    message = str(info.value)
    assert "templates/p.json.j2:4:" in message and "'image' is undefined" in message
    assert "known variables: branch, commit, images, project, short_commit" in message


def test_template_yielding_a_list(project):
    write(
        project,
        "many.json.j2",
        "[\n{% for n in ['a', 'b', 'c'] %}"
        '{"pipeline": {"name": "stage-{{ n }}"}, "transform": {"image": "{{ image }}"}, '
        '"input": {"pfs": {"repo": "in", "glob": "/*"}}}{{ "," if not loop.last }}\n'
        "{% endfor %}]\n",
    )
    specs = render(project)
    assert [s.name for s in specs] == ["stage-a", "stage-b", "stage-c"]
    assert all(s.source == "templates/many.json.j2" for s in specs)


def test_templates_render_in_sorted_order_across_globs(project):
    write(project, "b.json.j2", spec_text(name="b"))
    write(project, "a.json.j2", spec_text(name="a"))
    (project / "more").mkdir()
    (project / "more" / "c.json.j2").write_text(spec_text(name="c"))
    specs = render(project, {"specs": ["templates/*.json.j2", "more/*.j2", "templates/a.json.j2"]})
    assert [(s.name, s.source) for s in specs] == [
        ("c", "more/c.json.j2"),
        ("a", "templates/a.json.j2"),
        ("b", "templates/b.json.j2"),
    ]


# -- errors --------------------------------------------------------------------------------


def test_undefined_variable_names_file_and_line(project):
    write(project, "p.json.j2", spec_text(annotations='"x": "{{ nope }}"'))
    with pytest.raises(TemplateError) as info:
        render(project)
    message = str(info.value)
    assert message.startswith("templates/p.json.j2:3: ")
    assert "'nope' is undefined" in message
    assert "add others under `vars`" in message
    assert info.value.exit_code == 3


def test_undefined_attribute_names_file_and_line(project):
    write(project, "p.json.j2", spec_text(image="{{ images.nosuch.ref }}"))
    with pytest.raises(TemplateError, match=r"^templates/p\.json\.j2:4: .*nosuch"):
        render(project)


def test_undefined_variable_in_an_included_template(project):
    (project / "templates" / "parts").mkdir()
    (project / "templates" / "parts" / "cmd.j2").write_text('"python",\n"{{ missing_arg }}"')
    write(
        project,
        "p.json.j2",
        '{"pipeline": {"name": "p"},\n'
        ' "transform": {"image": "x", "cmd": [{% include "templates/parts/cmd.j2" %}]},\n'
        ' "input": {"pfs": {"repo": "r", "glob": "/*"}}}\n',
    )
    with pytest.raises(TemplateError) as info:
        render(project)
    assert "'missing_arg' is undefined" in str(info.value)
    assert str(info.value).startswith("templates/p.json.j2:")


def test_syntax_error_names_file_and_line(project):
    write(project, "p.json.j2", spec_text() + "{% if %}\n")
    with pytest.raises(TemplateError) as info:
        render(project)
    assert str(info.value).startswith("templates/p.json.j2:7: template syntax error:")


def test_unclosed_block_is_a_syntax_error(project):
    write(project, "p.json.j2", "{% for x in [1] %}\n" + spec_text())
    with pytest.raises(TemplateError, match=r"^templates/p\.json\.j2:\d+: template syntax error"):
        render(project)


def test_invalid_json_names_the_output_line(project):
    text = spec_text().replace('"cmd": ["python", "/edges.py"]', '"cmd": ["python" "/edges.py"]')
    write(project, "p.json.j2", text)
    with pytest.raises(TemplateError) as info:
        render(project)
    message = str(info.value)
    assert message.startswith("templates/p.json.j2: rendered output is not valid JSON at line 4,")
    assert '"transform"' in message  # the offending line is quoted


def test_invalid_json_at_the_end_of_the_output(project):
    write(project, "p.json.j2", '{"pipeline": {"name": "x"},\n')
    with pytest.raises(TemplateError, match=r"not valid JSON at line 2, column 1"):
        render(project)


def test_empty_output_is_invalid_json(project):
    write(project, "p.json.j2", "{# nothing #}")
    with pytest.raises(TemplateError, match="not valid JSON at line 1"):
        render(project)


@pytest.mark.parametrize(
    "expression",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ image.__class__ }}",
        "{{ images.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
    ],
)
def test_sandbox_blocks_unsafe_attribute_access(project, expression):
    write(project, "p.json.j2", spec_text(annotations=f'"x": "{expression}"'))
    with pytest.raises(TemplateError) as info:
        render(project)
    message = str(info.value)
    assert message.startswith("templates/p.json.j2:3:")
    assert "not allowed in templates" in message or "unsafe" in message or "undefined" in message
    assert "<class" not in message


def test_sandbox_blocks_format_string_escape(project):
    write(project, "p.json.j2", spec_text(annotations='"x": "{{ \'{0.__class__}\'.format(commit) }}"'))
    with pytest.raises(TemplateError, match="not allowed in templates"):
        render(project)


def test_non_object_specs_are_refused(project):
    write(project, "list.json.j2", '[{"pipeline": {"name": "a"}}, 3]')
    with pytest.raises(TemplateError, match=r"templates/list\.json\.j2: \$\[1\]: a pipeline spec must be a JSON object"):
        render(project)
    write(project, "list.json.j2", '"just a string"')
    with pytest.raises(TemplateError, match=r"templates/list\.json\.j2: \$: a pipeline spec must be a JSON object"):
        render(project)


def test_invalid_spec_is_a_template_error_naming_the_file(project):
    write(project, "p.json.j2", spec_text().replace('"transform"', '"transfrom"'))
    with pytest.raises(TemplateError) as info:
        render(project)
    assert str(info.value).startswith("templates/p.json.j2: ")
    assert "transfrom" in str(info.value)


def test_duplicate_pipeline_names_across_files(project):
    write(project, "a.json.j2", spec_text(name="edges"))
    write(project, "b.json.j2", spec_text(name="edges"))
    with pytest.raises(TemplateError) as info:
        render(project)
    assert str(info.value) == (
        "templates/b.json.j2: pipeline 'edges' is also defined in templates/a.json.j2; rename one"
    )


def test_duplicate_pipeline_names_within_one_file(project):
    write(project, "a.json.j2", "[" + spec_text(name="x") + "," + spec_text(name="x") + "]")
    with pytest.raises(TemplateError, match="pipeline 'x' is also defined in templates/a.json.j2"):
        render(project)


def test_no_template_matching_is_a_config_error(project):
    with pytest.raises(ConfigError) as info:
        render(project)
    assert "no pipeline spec template matches ['templates/*.json.j2']" in str(info.value)
    assert info.value.exit_code == 2
    (project / "templates" / "dir.json.j2").mkdir()  # a directory is not a template
    with pytest.raises(ConfigError):
        find_templates(settings_for(project))
    with pytest.raises(ConfigError, match=r"\['specs/\*\.j2'\]"):
        find_templates(settings_for(project, specs="specs/*.j2"))


# -- written files ----------------------------------------------------------------------------


def test_written_files_land_in_out_dir_by_pipeline_name(project):
    write(project, "a.json.j2", "[" + spec_text(name="edges") + "," + spec_text(name="montage", repo="edges") + "]")
    specs = render(project)
    out_dir = project / "build" / "pipelines"
    write_specs(specs, out_dir)
    assert sorted(p.name for p in out_dir.iterdir()) == ["edges.json", "montage.json"]
    for spec in specs:
        assert spec.path == out_dir / f"{spec.name}.json"
        assert json.loads(spec.path.read_text()) == spec.spec
    text = (out_dir / "edges.json").read_text()
    assert text.endswith("}\n") and '\n  "input"' in text  # pretty, sorted keys
    assert text.index('"input"') < text.index('"pipeline"') < text.index('"transform"')


def test_write_specs_overwrites_previous_output(project):
    write(project, "a.json.j2", spec_text(annotations='"v": "{{ tag }}"'))
    out_dir = project / "out"
    write_specs(render(project), out_dir)
    arts = artifacts(ImageArtifact(name="main", repository="reg/e", tag="second"))
    write_specs(render(project, arts=arts), out_dir)
    assert json.loads((out_dir / "edges.json").read_text())["metadata"]["annotations"] == {"v": "second"}
