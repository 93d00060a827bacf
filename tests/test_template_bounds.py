"""Templates are confined and bounded (issue 25): a template reads only regular, committed files of
the project outside `.git/`; a rendered spec, and every value a template makes on the way, is
capped (`max_spec_bytes`), rendering has a deadline (`render_timeout`), nesting is limited; YAML
refuses duplicate keys, values JSON has no form for and alias bombs. Every refusal is exit 3 with
one line naming the file, and nothing is written or applied. End to end through `invoke` on a real
Docker Engine, registry and the pachd double."""
from __future__ import annotations

import json
import os
import textwrap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from invoke_pachyderm.core.errors import EXIT_CODES
from project_helpers import make_project

CREDENTIAL = "ghp_canaryCredential0123456789"
SPEC = '{"pipeline": {"name": "%s"}, "description": "%s", "transform": {"image": "{{ image }}", "cmd": ["/busybox", "true"]}, "input": {"pfs": {"repo": "images", "glob": "/*"}}}\n'
YAML_SPEC = "pipeline: {name: bad}\ntransform: {image: '{{ image }}', cmd: [/busybox, 'true']}\ninput: {pfs: {repo: images, glob: /*}}\n"
BOMB = "lols:\n  a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"  {x}: &{x} [{', '.join(['*' + p] * 9)}]\n" for p, x in zip("abcdefgh", "bcdefghi")
)


def jinja(description: str) -> str:
    return SPEC % ("bad", description)


# (case id, template file, its text, other files, a part of the one error line)
CASES = [
    ("include-git-config", "bad.json.j2", jinja("{% include '.git/config' %}"), {},
     "templates/bad.json.j2:1: '.git/config' is inside .git/"),
    ("include-git-through-dots", "bad.json.j2", jinja("{% include 'templates/../.git/HEAD' %}"), {},
     "templates/bad.json.j2"),
    ("include-git-symlink", "bad.json.j2", jinja("{% include 'link' %}"), {"@link": ".git/config"},
     "'link' is inside .git/"),
    ("include-ignored", "bad.json.j2", jinja("{% include 'secret.env' %}"), {"secret.env": "TOKEN=x"},
     "'secret.env' is ignored by git"),
    ("include-in-ignored-folder", "bad.json.j2", jinja("{% include 'build/made.txt' %}"), {"build/made.txt": "x"},
     "'build/made.txt' is ignored by git"),
    ("include-fifo", "bad.json.j2", jinja("{% include 'pipe' %}"), {"|pipe": ""}, "'pipe' is a FIFO"),
    ("include-symlink-out", "bad.json.j2", jinja("{% include 'out' %}"), {"@out": "/etc/hostname"},
     "outside the project"),
    ("include-too-large", "bad.json.j2", jinja("{% include 'big.txt' %}"), {"big.txt": "x" * 1_100_000},
     "'big.txt' is larger than the spec size cap of 1048576 bytes"),
    ("jsonnet-importstr-git", "bad.jsonnet", "{ description: importstr '../.git/config' }", {},
     "'.git/config' is inside .git/"),
    ("jsonnet-import-fifo", "bad.jsonnet", "{ description: importstr 'pipe' }", {"|templates/pipe": ""},
     "'templates/pipe' is a FIFO"),
    ("jsonnet-importstr-ignored", "bad.jsonnet", "{ description: importstr '../secret.env' }",
     {"secret.env": "TOKEN=x"}, "'secret.env' is ignored by git"),
    ("jsonnet-deep", "bad.jsonnet", "local f(n) = if n == 0 then [] else [f(n - 1)]; f(100)", {},
     "nested more than 64 levels deep"),
    ("filter-center", "bad.json.j2", jinja("{{ 'a' | center(300000000) }}"), {},
     "center: an argument is larger than max_spec_bytes (1048576)"),
    ("filter-replace", "bad.json.j2", jinja("{{ ('a' * 100000) | replace('a', 'bbbbbbbbbbbbbbbbbbbbbb') }}"), {},
     "the replaced string would be larger than 1048576 bytes"),
    ("filter-join-of-map", "bad.json.j2", jinja("{{ range(100000) | map('string') | map('center', 50) | join }}"), {},
     "would be larger than 1048576 bytes"),
    ("filter-indent", "bad.json.j2", jinja("{{ ('a\\n' * 100000) | indent('x' * 100) }}"), {},
     "would be larger than 1048576 bytes"),
    ("filter-format", "bad.json.j2", jinja("{{ '%900000000d' | format(1) }}"), {},
     "a field width in the format string is larger than max_spec_bytes"),
    ("str-format-method", "bad.json.j2", jinja("{{ '{:>900000000}'.format(1) }}"), {},
     "a field width in the format string is larger than max_spec_bytes"),
    ("str-ljust-method", "bad.json.j2", jinja("{{ 'a'.ljust(900000000) }}"), {},
     "ljust: an argument is larger than max_spec_bytes"),
    ("percent-width", "bad.json.j2", jinja("{{ '%900000000d' % 1 }}"), {},
     "a field width in the format string is larger than max_spec_bytes"),
    ("chained-power", "bad.json.j2", jinja("{{ ((2 ** 256) ** 256) ** 256 }}"), {},
     "the power would have more than 4096 bits"),
    ("doubling-concat", "bad.json.j2",
     jinja("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"), {},
     "a string joined with `~` would be larger than 1048576 bytes"),
    ("doubling-plus", "bad.json.j2",
     jinja("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"), {},
     "would be larger than 1048576 bytes"),
    ("doubling-in-macro", "bad.json.j2",
     jinja("{% macro m(n) %}{% for i in range(n) %}{{ 'x' * 1000000 }}{% endfor %}{% endmacro %}{% set y = m(100) %}"), {},
     "the template wrote more than 8388608 bytes in all"),
    ("output-over-cap", "bad.json.j2", jinja("{% for i in range(3000) %}{{ 'x' * 1000 }}{% endfor %}"), {},
     "the rendered spec would be larger than 1048576 bytes"),
    ("deep-json", "bad.json.j2", "[" * 100000 + "]" * 100000, {}, "deeper than Python can parse"),
    ("deep-json-80", "bad.json.j2", "[" * 80 + "]" * 80, {}, "nested more than 64 levels deep"),
    ("yaml-alias-bomb", "bad.yaml", YAML_SPEC + BOMB, {},
     "the YAML expands (aliases included) to more than 1048576 bytes (max_spec_bytes)"),
    ("yaml-recursive-alias", "bad.yaml", YAML_SPEC + "description: &a [*a]\n", {},
     "an alias refers to a list or mapping that contains it"),
    ("yaml-duplicate-key", "bad.yaml", YAML_SPEC + "description: one\ndescription: two\n", {},
     "templates/bad.yaml:5: $.description: key 'description' appears twice in one mapping"),
    ("yaml-date", "bad.yaml", YAML_SPEC + "description: 2024-01-31\n", {},
     "templates/bad.yaml:4: $.description: a date or timestamp"),
    ("yaml-timestamp", "bad.yaml", YAML_SPEC + "description: 2024-01-31T12:00:00Z\n", {}, "a date or timestamp"),
    ("yaml-binary", "bad.yaml", YAML_SPEC + "description: !!binary aGVsbG8=\n", {}, "binary data (!!binary)"),
    ("yaml-set", "bad.yaml", YAML_SPEC + "description: !!set {a, b}\n", {}, "a set (!!set)"),
    ("yaml-python-tag", "bad.yaml", YAML_SPEC + "description: !!python/object/apply:os.system [ls]\n", {},
     "a value tagged !!python/object/apply:os.system"),
    ("yaml-non-string-key", "bad.yaml", YAML_SPEC + "metadata: {annotations: {1: one}}\n", {},
     "$.metadata.annotations: key '1' is not a string"),
    ("yaml-deep", "bad.yaml", "a: " + "[" * 100 + "]" * 100 + "\n", {}, "nested more than 64 levels deep"),
]


@pytest.fixture
def project(tmp_path, services, registry, unique_repo):
    project = make_project(
        tmp_path, services, "grpc://127.0.0.1:9", f"{registry.host}/{unique_repo}", pipelines=(),
        settings='specs = ["templates/*.json.j2", "templates/*.yaml", "templates/*.jsonnet"]\n',
    )
    project.write(".gitignore", "build/\nsecret.env\n")
    with open(project.root / ".git/config", "a") as config:
        config.write(f'[remote "origin"]\n\turl = https://ci:{CREDENTIAL}@example.com/team/edges.git\n')
    return project


def add_files(project, files: dict[str, str]) -> None:
    for name, text in files.items():
        if name.startswith("@"):
            os.symlink(text if text.startswith("/") else project.root / text, project.root / name[1:])
        elif name.startswith("|"):
            (project.root / name[1:]).parent.mkdir(parents=True, exist_ok=True)
            os.mkfifo(project.root / name[1:])
        else:
            project.write(name, text)


def assert_refused(result, fragment: str, project) -> None:
    assert result.code == 3, (result.code, result.stderr[-2000:])
    assert "Traceback" not in result.stderr
    assert len(result.errors) == 1, result.stderr[-2000:]
    assert result.errors[0].startswith("error: templates/bad."), result.errors
    assert fragment in result.errors[0], result.errors
    assert CREDENTIAL not in result.stderr + result.stdout
    assert not (project.root / "build/pipelines/bad.json").exists()


@pytest.mark.parametrize("case", CASES, ids=[case[0] for case in CASES])
def test_a_hostile_template_is_refused_in_one_line(project, case):
    _, name, text, files, fragment = case
    project.write(f"templates/{name}", text)
    add_files(project, files)
    project.commit("a hostile template")
    result = project.invoke("render-spec", timeout=120)
    assert_refused(result, fragment, project)


def test_the_render_deadline_stops_nested_loops_and_a_hanging_jsonnet(project):
    project.write("pyproject.toml", (project.root / "pyproject.toml").read_text() + "render_timeout = 1\n")
    project.write("templates/bad.json.j2", jinja(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"))
    project.commit("nested loops")
    result = project.invoke("render-spec", timeout=60)
    assert_refused(result, "rendering took longer than 1 s (render_timeout)", project)

    (project.root / "templates/bad.json.j2").unlink()
    project.write("templates/bad.jsonnet", '{ description: std.toString(std.length(std.repeat("ab", 50000000))) }')
    project.commit("a Jsonnet that runs for minutes")
    result = project.invoke("render-spec", timeout=60)
    assert_refused(result, "evaluating the Jsonnet took longer than 1 s (render_timeout)", project)


def test_max_spec_bytes_raises_the_cap_and_names_itself(project):
    project.write("templates/bad.json.j2", jinja("{{ 'x' * 1500000 }}"))
    project.commit("a spec of 1.5 MB")
    assert_refused(project.invoke("render-spec"), "repeating a sequence to 1500000 items is too large (the limit is max_spec_bytes, 1048576)", project)

    project.write("pyproject.toml", (project.root / "pyproject.toml").read_text() + "max_spec_bytes = 4194304\n")
    project.commit("raise the cap")
    result = project.invoke("render-spec")
    assert result.code == 0, result.stderr
    assert len(json.loads((project.root / "build/pipelines/bad.json").read_text())["description"]) == 1500000

    project.write("pyproject.toml", (project.root / "pyproject.toml").read_text().replace("4194304", "12"))
    project.commit("a cap too small")
    result = project.invoke("render-spec")
    assert result.code == 2 and "Traceback" not in result.stderr
    assert result.errors == [
        "error: pyproject.toml [tool.invoke-pachyderm]: key 'max_spec_bytes' must be from 1024 to 1073741824 bytes, got 12; "
        "e.g. max_spec_bytes = 4194304"
    ]


def test_what_templates_may_still_read_and_write(project):
    """Includes of committed files, Jsonnet libraries, YAML anchors and merge keys, loops and filters
    within the caps render as before."""
    project.write("templates/lib/env.j2", '"DEBUG": "{{ 1 + 1 }}"')
    project.write("templates/lib/p.libsonnet", "{ image:: std.extVar('image') }")
    good = SPEC % ("good", "{% for i in range(3) %}{{ ('x' ~ i) | upper | center(6) | trim }}{% endfor %}")
    project.write("templates/good.json.j2", good.replace('"cmd"', '"env": { {% include "templates/lib/env.j2" %} }, "cmd"'))
    project.write("templates/merged.yaml", textwrap.dedent("""\
        pipeline: {name: merged}
        metadata:
          annotations: &base {team: edges, tier: batch}
          labels:
            <<: *base
            tier: stream
        transform: {image: '{{ image }}', cmd: [/busybox, 'true']}
        input: {pfs: {repo: images, glob: /*}}
        """))
    project.write("templates/lib.jsonnet", "local lib = import 'lib/p.libsonnet';\n" + (
        "{ pipeline: { name: 'fromlib' }, transform: { image: lib.image, cmd: ['/busybox'] },"
        " input: { pfs: { repo: 'images', glob: '/*' } } }"))
    project.commit("templates within the caps")
    result = project.invoke("render-spec")
    assert result.code == 0, result.stderr
    good = json.loads((project.root / "build/pipelines/good.json").read_text())
    assert good["description"] == "X0X1X2" and good["transform"]["env"] == {"DEBUG": "2"}
    merged = json.loads((project.root / "build/pipelines/merged.json").read_text())
    assert merged["metadata"]["labels"] == {"team": "edges", "tier": "stream"}
    assert merged["metadata"]["annotations"]["tier"] == "batch"
    assert (project.root / "build/pipelines/fromlib.json").exists()


def test_the_token_of_a_pach_context_that_is_not_active_is_a_secret(project, tmp_path):
    config = tmp_path / "pach-config.json"
    config.write_text(json.dumps({"v2": {"active_context": "local", "contexts": {
        "local": {"pachd_address": "grpc://127.0.0.1:9", "session_token": "active-token-1234"},
        "prod": {"pachd_address": "grpc://prod:30650", "session_token": "prod-token-9f8e7d6c"},
    }}}))
    project.write("templates/bad.json.j2", jinja("{{ note }}"))
    project.write("pyproject.toml", (project.root / "pyproject.toml").read_text() + 'vars = { note = "prod-token-9f8e7d6c" }\n')
    project.commit("a template that prints a note")
    result = project.invoke("render-spec", env={"PACH_CONFIG": str(config)})
    assert_refused(result, "templates/bad.json.j2: $.description: the rendered spec holds the value of a secret", project)
    assert "prod-token-9f8e7d6c" not in result.stdout + result.stderr


# -- through a deploy: nothing applied ----------------------------------------------------------
@pytest.fixture
def deployed(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='specs = ["templates/*.json.j2", "templates/*.yaml"]\ntag = "inputs"\n',
    )
    project.write(".dockerignore", "templates\nbuild\n")
    with open(project.root / ".git/config", "a") as config:
        config.write(f'[remote "origin"]\n\turl = https://ci:{CREDENTIAL}@example.com/team/edges.git\n')
    project.commit("ignore templates in the image")
    first = project.invoke("deploy")
    assert first.code == 0, first.stderr
    return project


@pytest.mark.parametrize("name, text, fragment", [
    ("edges.json.j2", SPEC % ("edges", "{% include '.git/config' %}"), "'.git/config' is inside .git/"),
    ("bad.yaml", YAML_SPEC + BOMB, "the YAML expands (aliases included)"),
    ("bad.json.j2", jinja("{{ 'a' | center(300000000) }}"), "center: an argument is larger"),
], ids=["include-git-config", "yaml-alias-bomb", "filter-center"])
def test_a_deploy_of_a_hostile_template_applies_nothing(deployed, cluster, client, name, text, fragment):
    before = cluster.pipeline_versions()
    assert before == {"edges": 1}
    spec_before = next(client.inspect_pipeline("edges", details=True)).details.description
    deployed.write(f"templates/{name}", text)
    deployed.commit("a hostile template")

    plan = deployed.invoke("deploy", "--dry-run")
    assert plan.code == 3 and "Traceback" not in plan.stderr and len(plan.errors) == 1
    assert fragment in plan.errors[0]

    result = deployed.invoke("deploy")
    assert result.code == 3, result.stderr
    assert "Traceback" not in result.stderr and len(result.errors) == 1 and fragment in result.errors[0]
    assert CREDENTIAL not in result.stdout + result.stderr
    assert cluster.pipeline_versions() == before
    assert next(client.inspect_pipeline("edges", details=True)).details.description == spec_before
    assert [p.pipeline.name for p in client.list_pipeline()] == ["edges"]


# -- a property: hostile templates never give a traceback, nor apply anything when refused -----
INCLUDES = [".git/config", ".git/HEAD", "secret.env", "build/made.txt", "pipe", "out", "templates/lib/ok.txt"]
EXPRESSIONS = st.one_of(
    st.builds(lambda w: f"{{{{ 'a' | center({w}) }}}}", st.sampled_from([5, 10**5, 10**7, 3 * 10**8])),
    st.builds(lambda n, new: f"{{{{ ('ab' * {n}) | replace('a', '{new}') }}}}",
              st.sampled_from([1, 1000, 400000]), st.text("xyz", min_size=0, max_size=30)),
    st.builds(lambda n: f"{{{{ ('a\\n' * {n}) | indent('{'x' * 40}') }}}}", st.sampled_from([3, 50000])),
    st.builds(lambda w: f"{{{{ '%{w}d' | format(1) }}}}", st.sampled_from([3, 900000000])),
    st.builds(lambda w: f"{{{{ '{{:>{w}}}'.format(1) }}}}", st.sampled_from([3, 900000000])),
    st.builds(lambda bases: "{{ " + "(" * len(bases) + "2" + "".join(f" ** {b})" for b in bases) + " }}",
              st.lists(st.sampled_from([2, 64, 256, 257]), min_size=1, max_size=4)),
    st.builds(lambda ranges: "".join(f"{{% for i{k} in range({r}) %}}" for k, r in enumerate(ranges))
              + "x" + "{% endfor %}" * len(ranges),
              st.lists(st.sampled_from([2, 100, 100000]), min_size=1, max_size=3)),
    st.builds(lambda n: f"{{% set ns = namespace(s='ab') %}}{{% for i in range({n}) %}}{{% set ns.s = ns.s ~ ns.s %}}"
              "{% endfor %}{{ ns.s | length }}", st.integers(0, 40)),
    st.builds(lambda path: f"{{% include '{path}' %}}", st.sampled_from(INCLUDES)),
)


def yaml_template(levels: int, fanout: int, duplicate: bool, scalar: str, depth: int) -> str:
    lines = [YAML_SPEC.rstrip("\n"), "metadata:", "  annotations:", "    a0: &a0 lol"]
    for level in range(1, levels + 1):
        lines.append(f"    a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * fanout)}]")
    if duplicate:
        lines.append("    a0: again")
    lines.append(f"description: {scalar}")
    lines.append("labels: " + "[" * depth + "]" * depth)
    return "\n".join(lines) + "\n"


TEMPLATES = st.one_of(
    st.builds(lambda expression: ("h.json.j2", jinja(expression)), EXPRESSIONS),
    st.builds(lambda depth: ("h.json.j2", "[" * depth + SPEC % ("h", "deep") + "]" * depth),
              st.sampled_from([0, 1, 63, 64, 500, 50000])),
    st.builds(lambda *args: ("h.yaml", yaml_template(*args)), st.integers(0, 9), st.integers(1, 9), st.booleans(),
              st.sampled_from(["plain", "2024-01-31", "!!binary aGVsbG8=", "!!set {a, b}", "!!python/name:os.system",
                               "'quoted'", "&r [*r]", "{1: one}"]),
              st.sampled_from([0, 10, 70, 5000])),
    st.builds(lambda path, depth: ("h.jsonnet", f"{{ description: importstr '../{path}', x: {'[' * depth}{']' * depth} }}"),
              st.sampled_from(INCLUDES), st.sampled_from([0, 70])),
)


@pytest.fixture
def hostile(deployed, monkeypatch):
    add_files(deployed, {"secret.env": "TOKEN=x", "build/made.txt": "x", "|pipe": "", "@out": "/etc/hostname",
                         "templates/lib/ok.txt": "fine"})
    deployed.write("pyproject.toml", (deployed.root / "pyproject.toml").read_text().replace(
        'specs = ["templates/*.json.j2", "templates/*.yaml"]',
        'specs = ["templates/*.json.j2", "templates/*.yaml", "templates/*.jsonnet"]\nrender_timeout = 1'))
    deployed.commit("files a template must not read")
    for name, value in deployed.env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(deployed.root)
    return deployed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(template=TEMPLATES)
def test_hostile_templates_exit_with_a_documented_code_and_apply_nothing_when_refused(hostile, cluster, capsys, template):
    """In-process (commands.execute, as the invoke program runs it): a traceback is an exception here."""
    from invoke_pachyderm.commands import COMMANDS, Request, execute

    for old in (hostile.root / "templates").glob("h.*"):
        old.unlink()
    name, text = template
    hostile.write(f"templates/{name}", text)
    before = cluster.pipeline_versions()
    values = {flag: None for flag in COMMANDS["deploy"].flags}
    values.update({"skip_tests": True, "allow_dirty": True})
    code, error = execute(COMMANDS["deploy"], Request(hostile.root, values))
    output = capsys.readouterr()
    assert code == 0 or code in EXIT_CODES, (code, error)
    assert CREDENTIAL not in output.out + output.err
    if code != 0:
        assert "\n" not in error and error, error
        assert cluster.pipeline_versions() == before
