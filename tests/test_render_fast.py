"""Templates whose only Jinja is `{{ a.b }}` are filled in without jinja2 (issue 12): the text must
be exactly what Jinja renders, and every check after rendering must still fire."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from invoke_pachyderm.core.errors import TemplateError
from invoke_pachyderm.stages.jinja_sandbox import render_text
from invoke_pachyderm.stages.render import fill_simple, render_specs

from test_render import artifacts, project, settings_for, spec_text, write  # noqa: F401 (project: a fixture)

REPO = Path(__file__).resolve().parent.parent
VARIABLES = {
    "image": "reg.example/edges:abc",
    "commit": "abc",
    "images": {"main": {"ref": "reg.example/edges:abc", "tag": "abc", "digest": None}},
    "replicas": 3,
    "ratio": 0.5,
    "debug": False,
    "nested": {"deep": {"value": "x"}, "items": {"a": "b"}, "_hidden": "h"},
    "listed": ["a", "b"],
    "true_name": "t",
}

FILLED = [  # (template, what it renders to): no Jinja needed
    ('{"image": "{{ image }}"}\n', '{"image": "reg.example/edges:abc"}\n'),
    ("{{image}}{{ commit }}", "reg.example/edges:abcabc"),
    ("{{ images.main.ref }}", "reg.example/edges:abc"),
    ("{{\n  images.main.tag\n}}", "abc"),
    ("{{ replicas }} {{ ratio }} {{ debug }}", "3 0.5 False"),
    ("{{ nested.deep.value }} {{ nested._hidden }}", "x h"),
    ('{"a": {"b": 1}}}} }', '{"a": {"b": 1}}}} }'),  # closing braces are text
    ("{{ true_name }}", "t"),
    ("no jinja at all\n\n", "no jinja at all\n\n"),
    ("tail {{ image }}}", "tail reg.example/edges:abc}"),
    ("{ {{ image }}", "{ reg.example/edges:abc"),
    ("é {{ image }} ✓", "é reg.example/edges:abc ✓"),
]

LEFT_TO_JINJA = [  # (template, why)
    "{% if debug %}x{% endif %}",  # a block
    "{# a comment #}",
    "{{- image }}",  # whitespace control
    "{{ image -}}\n",
    "{{ image | upper }}",  # a filter
    "{{ replicas + 1 }}",
    "{{ images['main'].ref }}",
    "{{ nested.items }}",  # a dict method: Jinja's getattr finds it before the item
    "{{ images.main.digest }}",  # None
    "{{ listed }}",  # a list prints as its repr: left to Jinja
    "{{ range }}",  # a Jinja global, not a variable
    "{{ true }}",  # a constant
    "{{{ image }}",  # Jinja reads `{{` then `{ image }`
    "a\r\nb {{ image }}",  # Jinja turns \r\n into \n
    "{{ undefined_name }}",
    "{{ images.other.ref }}",
    "{{ image }",  # unclosed
]


@pytest.mark.parametrize("template, expected", FILLED)
def test_simple_templates_are_filled_exactly_as_jinja_renders_them(tmp_path, template, expected):
    path = tmp_path / "t.json.j2"
    path.write_bytes(template.encode("utf-8"))
    filled = fill_simple(path, tmp_path.resolve(), VARIABLES)
    assert filled == expected
    assert filled == render_text(tmp_path, path, "t.json.j2", VARIABLES)


@pytest.mark.parametrize("template", LEFT_TO_JINJA)
def test_anything_else_is_left_to_jinja(tmp_path, template):
    path = tmp_path / "t.json.j2"
    path.write_bytes(template.encode("utf-8"))
    assert fill_simple(path, tmp_path.resolve(), VARIABLES) is None


def test_a_variable_named_like_a_jinja_constant_is_left_to_jinja(tmp_path):
    path = tmp_path / "t.json.j2"
    path.write_text("{{ none }}")
    assert fill_simple(path, tmp_path.resolve(), {"none": "x"}) is None


def test_a_simple_template_renders_without_importing_jinja2(project):
    write(project, "edges.json.j2", spec_text(image="{{ images.main.ref }}"))
    code = (
        "import sys\n"
        "sys.path.insert(0, 'tests')\n"
        "from pathlib import Path\n"
        "from test_render import artifacts, settings_for\n"
        "from invoke_pachyderm.stages.render import render_specs\n"
        f"specs = render_specs(settings_for(Path({str(project)!r})), artifacts())\n"
        "print(specs[0].spec['transform']['image'])\n"
        "print(sorted(m for m in ('jinja2', 'jsonschema') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["reg.example.com/edges:" + artifacts().images["main"].tag, "[]"]


# -- the checks after rendering fire for filled templates as for rendered ones ------------------
def test_a_duplicate_key_in_a_simple_template_is_refused(project):
    write(project, "edges.json.j2", spec_text().replace('"input"', '"transform": {}, "input"'))
    with pytest.raises(TemplateError, match=r"templates/edges.json.j2: \$: key 'transform' appears twice"):
        render_specs(settings_for(project), artifacts())


def test_a_nested_duplicate_key_is_refused_with_its_path(project):
    # the whole document is walked for the key's path only when a duplicate was seen while parsing
    text = spec_text().replace('"input"', '"input": {"cross": [{"pfs": {"repo": "a", "glob": "/*", "glob": "/"}}]}, "x"')
    write(project, "edges.json.j2", text)
    with pytest.raises(TemplateError, match=r"templates/edges.json.j2: \$.input.cross\[0\].pfs: key 'glob' appears twice"):
        render_specs(settings_for(project), artifacts())


def test_a_key_written_twice_keeps_json_loads_value_and_place():
    from invoke_pachyderm.stages.render import _object_keeping_duplicates

    pairs = [("a", 1), ("b", 2), ("a", 3), ("b", 4)]
    kept = _object_keeping_duplicates(pairs)
    assert list(kept.items()) == list(json.loads('{"a": 1, "b": 2, "a": 3, "b": 4}').items()) == [("a", 3), ("b", 4)]
    assert kept.duplicate == "a"
    assert type(_object_keeping_duplicates([("a", 1)])) is dict


def test_a_schema_error_in_a_simple_template_is_explained(project):
    write(project, "edges.json.j2", spec_text().replace('"cmd"', '"cmdd"'))
    with pytest.raises(TemplateError, match=r"templates/edges.json.j2: \$.transform.cmdd: unknown field 'cmdd' "
                                            r"\(did you mean 'cmd'\?\)"):
        render_specs(settings_for(project), artifacts())


def test_a_simple_yaml_template_is_parsed_as_yaml(project):
    write(project, "edges.yaml.j2", "pipeline:\n  name: edges\ntransform:\n  image: '{{ image }}'\n  cmd: [sh]\n"
                                    "input:\n  pfs: {repo: images, glob: /*}\n")
    [spec] = render_specs(settings_for(project, specs=["templates/*.yaml.j2"]), artifacts())
    assert spec.spec["transform"] == {"image": artifacts().images["main"].ref, "cmd": ["sh"]}


def test_a_simple_template_reached_through_a_symlink_out_of_the_project_is_refused(tmp_path, project):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "edges.json.j2").write_text(spec_text())
    (project / "templates").rmdir()
    (project / "templates").symlink_to(outside, target_is_directory=True)
    with pytest.raises(TemplateError, match="resolves to .*, outside the project"):
        render_specs(settings_for(project), artifacts())


def test_a_symlink_inside_the_project_is_followed(project):
    (project / "shared.json.j2").write_text(spec_text())
    (project / "templates" / "edges.json.j2").symlink_to(project / "shared.json.j2")
    [spec] = render_specs(settings_for(project), artifacts())
    assert json.dumps(spec.spec).count(artifacts().images["main"].ref) == 1


def test_write_specs_leaves_an_unchanged_file_alone_and_rewrites_a_changed_one(project):
    from invoke_pachyderm.stages.render import write_specs

    write(project, "a.json.j2", spec_text(name="a"))
    write(project, "b.json.j2", spec_text(name="b"))
    out = project / "build"
    write_specs(render_specs(settings_for(project), artifacts()), out)
    os.utime(out / "a.json", ns=(1, 1))
    os.utime(out / "b.json", ns=(1, 1))
    (out / "b.json").write_text("edited by hand\n")
    os.utime(out / "b.json", ns=(1, 1))
    specs = render_specs(settings_for(project), artifacts())
    write_specs(specs, out)
    assert (out / "a.json").stat().st_mtime_ns == 1  # not rewritten
    assert json.loads((out / "b.json").read_text()) == specs[1].spec
    assert [s.path for s in specs] == [out / "a.json", out / "b.json"]


def test_template_real_paths_resolve_each_folder_once_and_agree_with_realpath(tmp_path):
    """render_specs resolves a folder once and each plain file by name: the answer must be
    os.path.realpath's, whether the folder, the file or both are symlinks."""
    from invoke_pachyderm.stages.render import _RealPaths

    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "sub" / "a.json.j2").write_text("{}")
    (real / "b.json.j2").write_text("{}")
    (tmp_path / "linked").symlink_to(real, target_is_directory=True)
    (real / "sub" / "to_b.json.j2").symlink_to(real / "b.json.j2")
    (real / "sub" / "dangling.json.j2").symlink_to(tmp_path / "nowhere")
    paths = [tmp_path / "linked" / "sub" / name for name in ("a.json.j2", "to_b.json.j2", "dangling.json.j2")]
    paths += [tmp_path / "linked" / "b.json.j2", real / "sub" / "a.json.j2", tmp_path / "linked" / "sub" / ".."]
    real_path = _RealPaths()
    for path in paths * 2:  # the second round from the folder cache
        assert real_path(path) == os.path.realpath(path), path


def test_inside_answers_as_path_parents():
    from pathlib import Path, PurePosixPath

    from invoke_pachyderm.stages.source import _inside

    paths = ["/", "//", "//a", "/a", "/a/b", "/ab", "/a/b/..", "/a/./b", "/a//b", "a", "a/b", ".", "/A"]
    for one in paths:
        for other in paths:
            path, root = Path(one), Path(other)
            expected = path == root or root in path.parents
            assert _inside(path, root) == expected, (one, other)
            assert _inside(PurePosixPath(one), PurePosixPath(other)) == expected


def test_one_template_scan_globs_once_and_only_within(project):
    from invoke_pachyderm.backends.build_context import one_template_scan, resolved, spec_templates
    from invoke_pachyderm.stages.render import find_templates

    write(project, "edges.json.j2", spec_text())
    settings = settings_for(project)
    before = find_templates(settings)
    with one_template_scan():
        assert spec_templates(settings) == before
        write(project, "added.json.j2", spec_text().replace('"edges"', '"added"'))
        assert find_templates(settings) == spec_templates(settings) == before  # the plan's one list
        assert resolved(before) == [path.resolve() for path in before]
    after = find_templates(settings)  # outside a scan (watch, a later deploy): globbed again
    assert len(after) == len(before) + 1
    with one_template_scan():
        assert find_templates(settings) == after
