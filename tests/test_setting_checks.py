"""Every setting is validated where it is read (issue 25, class 6): a bad value of any key, from
pyproject.toml, an environment table, an INVOKE_PACHYDERM_* variable or a task flag, is one error
line naming the source and the key, exit 2, no traceback, and nothing rendered, built, pushed or
deployed. Through the real `invoke`; the deploy cases on real Docker, the registry and the pachd
double (both versions)."""
from __future__ import annotations

import json
import math
import types
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings as hypothesis_settings, strategies as st

from invoke_pachyderm.core.config import IMAGE_KEYS, KEYS
from invoke_pachyderm.core.errors import EXIT_CODES
from project_helpers import make_project

IMAGE = "localhost:5000/edges"
NO_DOCKER = types.SimpleNamespace(docker_host="unix:///nonexistent/docker.sock")  # render-spec needs none
PYPROJECT = "pyproject.toml [tool.invoke-pachyderm]"
SECRET = "s3cr3t-Value"


def image_entry(**keys: str) -> str:
    fields = {"name": '"train"', "repository": f'"{IMAGE}"', **keys}
    return "[[tool.invoke-pachyderm.images]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items())


# (settings after [tool.invoke-pachyderm], extra environment, fragments of the one error line);
# the base settings are `image` (unless the row sets one) and test_command.
ROWS: dict[str, tuple[str, dict[str, str], list[str]]] = {
    "specs empty string": ('specs = ""', {}, [f"{PYPROJECT}: key 'specs' is empty"]),
    "specs of a number": ("specs = [1]", {}, ["key 'specs[0]' must be a glob string, got 1 (int)"]),
    "specs empty list": ("specs = []", {}, ["key 'specs' lists no template"]),
    "specs with an empty glob": ('specs = ["templates/*.j2", ""]', {}, ["key 'specs[1]' is empty"]),
    "specs with a NUL": ('specs = "templ\\u0000ates/*.j2"', {}, ["key 'specs'", "contains a NUL byte"]),
    "out_dir with a NUL": ('out_dir = "build\\u0000x"', {}, ["key 'out_dir'", "contains a NUL byte"]),
    "out_dir outside the project": ('out_dir = "../elsewhere"', {}, ["key 'out_dir' = '../elsewhere' leaves the project"]),
    "out_dir absolute": ('out_dir = "/tmp/specs"', {}, ["key 'out_dir' = '/tmp/specs' leaves the project: it is absolute"]),
    "out_dir empty": ('out_dir = ""', {}, ["key 'out_dir' is empty"]),
    "out_dir through a symlink out": ('out_dir = "outside/specs"', {}, ["key 'out_dir' = 'outside/specs' resolves to",
                                                                       "not a directory inside the project"]),
    "test_command empty": ('test_command = ""', {}, ["key 'test_command' is empty"]),
    "test_command blank": ('test_command = "   "', {}, ["key 'test_command' is empty"]),
    "test_command with a NUL": ('test_command = "py\\u0000test"', {}, ["key 'test_command'", "NUL byte"]),
    "generated_inputs with a NUL": ('generated_inputs = ["dist/\\u0000*.whl"]', {},
                                    ["key 'generated_inputs[0]'", "NUL byte"]),
    "generated_inputs of a number": ("generated_inputs = [3]", {}, ["key 'generated_inputs[0]' must be a glob string"]),
    "generated_inputs absolute": ('generated_inputs = ["/etc/*"]', {}, ["key 'generated_inputs[0]' = '/etc/*' leaves the project: it is absolute"]),
    "generated_inputs leaving": ('generated_inputs = ["../*.whl"]', {}, ["key 'generated_inputs[0]'", "leaves the project"]),
    "image with a space": ('image = "Bad Image"', {}, ["key 'image': 'Bad Image' is not a valid image repository"]),
    "image with a tag": (f'image = "{IMAGE}:v1"', {}, ["key 'image'", "has a tag", "set the tag with `tag`"]),
    "image with a digest": (f'image = "{IMAGE}@sha256:{"a" * 64}"', {}, ["key 'image'", "has a digest"]),
    "image in capitals": ('image = "localhost:5000/Edges"', {}, ["key 'image'", "repository paths are lowercase"]),
    "image empty": ('image = ""', {}, ["key 'image' is empty"]),
    "image port out of range": ('image = "localhost:99999/edges"', {}, ["key 'image'", "has port 99999"]),
    "image too long": ('image = "localhost:5000/' + "e" * 250 + '"', {}, ["key 'image'", "over Docker's limit of 255"]),
    "image host in capitals": ('image = "UPPER/edges"', {}, ["key 'image'", "takes 'UPPER' for a registry host"]),
    "image with a newline": (f'image = "{IMAGE}\\n"', {}, ["key 'image'", "control character"]),
    "token with a space": (f'token = "{SECRET} x"', {}, ["key 'token' contains whitespace"]),
    "token with a newline": (f'token = "{SECRET}\\n"', {}, ["key 'token' contains whitespace or a control character"]),
    "token empty": ('token = ""', {}, ["key 'token' is empty"]),
    "registry_password with a NUL": (f'registry_password = "{SECRET}\\u0000"', {},
                                     ["key 'registry_password' contains a NUL byte"]),
    "build-arg name with a dash": ('build_args = {"my-arg" = "1"}', {},
                                   ["key 'build_args': 'my-arg' is not a valid build-arg name (letters, digits and _"]),
    "build-arg name with a digit first": ('build_args = {"1ARG" = "1"}', {}, ["'1ARG' is not a valid build-arg name"]),
    "build-arg value with a NUL": ('build_args = {A = "x\\u0000y"}', {}, ["key 'build_args': build argument 'A'", "NUL"]),
    "build-arg value NaN": ("build_args = {A = nan}", {}, ["key 'build_args': build argument 'A' is nan"]),
    "image name with a space": ('image = "x"\n' + image_entry(name='"a b"'), {},
                                ["images[0]: key 'name': 'a b' is not a valid image name"]),
    "image name too long": (image_entry(name='"' + "n" * 64 + '"'), {}, ["images[0]: key 'name'", "at most 63"]),
    "images repository in capitals": (image_entry(repository='"localhost:5000/X"'), {},
                                      ["images[0]: key 'repository': 'localhost:5000/X'", "lowercase"]),
    "images repository with a tag": (image_entry(repository=f'"{IMAGE}:latest"'), {}, ["images[0]: key 'repository'", "tag"]),
    "images build-arg name": (image_entry(build_args='{"my-arg" = "1"}'), {},
                              ["images[0]: key 'build_args': 'my-arg' is not a valid build-arg name"]),
    "images dockerfile absolute": (image_entry(dockerfile='"/etc/passwd"'), {},
                                   ["images[0]: key 'dockerfile' = '/etc/passwd' leaves the project: it is absolute"]),
    "context too long": ('context = "' + "c" * 300 + '"', {}, ["key 'context' is too long for a path (at most 255 bytes a name"]),
    "out_dir too long": ('out_dir = "' + "o/" * 2100 + '"', {}, ["key 'out_dir' is too long for a path"]),
    "context with a NUL": ('context = "ctx\\u0000"', {}, ["key 'context'", "NUL byte"]),
    "context absolute": ('context = "/"', {}, ["key 'context' = '/' leaves the project: it is absolute"]),
    "dockerfile in the home directory": ('dockerfile = "~/Dockerfile"', {}, ["key 'dockerfile' = '~/Dockerfile' leaves the project: it is absolute"]),
    "target with a space": ('target = "my stage"', {}, ["key 'target': 'my stage' is not a Dockerfile stage name"]),
    "tag empty": ('tag = ""', {}, ["key 'tag' is empty"]),
    "hooks with a number": ('hooks = ["test", 1]', {}, ["key 'hooks[1]' must be a task invocation"]),
    "jobs too many": ("jobs = 100000", {}, ["key 'jobs' is 100000, over 256"]),
    "timeout over a week": ("timeout = 1e12", {}, ["key 'timeout'", "over a week"]),
    "pachd_address bad host": ('pachd_address = "grpc://pach d:1"', {}, ["key 'pachd_address'", "has a bad host 'pach d'"]),
    "smoke_data absolute": ('smoke_data = "/etc"', {}, ["key 'smoke_data' = '/etc' leaves the project: it is absolute"]),
    "owner empty": ('owner = ""', {}, ["key 'owner' is empty"]),
    "unknown key with a newline": ('"a\\nb" = 1', {}, [f"{PYPROJECT}: unknown key 'a\\nb'"]),
    "environment table's image": ('[tool.invoke-pachyderm.environments.prod]\nimage = "Bad/X:1"', {},
                                  ["environments.prod: key 'image': 'Bad/X:1' has a tag"]),
    "environment name": ('[tool.invoke-pachyderm.environments."a b"]\nproject = "x"', {},
                         ["key 'environments': 'a b' is not a valid environment name"]),
    "variable image": ("", {"INVOKE_PACHYDERM_IMAGE": "bad image"}, ["environment: key 'image': 'bad image'"]),
    "variable specs empty": ("", {"INVOKE_PACHYDERM_SPECS": ""}, ["environment: key 'specs' is empty"]),
    "variable token": ("", {"INVOKE_PACHYDERM_TOKEN": f"{SECRET}\t"}, ["environment: key 'token' contains whitespace"]),
    "variable build-arg name": ("", {"INVOKE_PACHYDERM_BUILD_ARGS": '{"my-arg": "1"}'},
                                ["environment: key 'build_args': 'my-arg' is not a valid build-arg name"]),
    "pach context project": ("", {"PACH_CONFIG": "pach.json"}, ["context 'c': key 'project': 'a b' is not a valid"]),
}


def bad_project(tmp_path: Path, body: str):
    image = "" if body.lstrip().startswith(("image =", "[[")) else f'image = "{IMAGE}"\n'
    project = make_project(tmp_path, NO_DOCKER, "grpc://127.0.0.1:1", IMAGE)
    project.write("pyproject.toml", f'[tool.invoke-pachyderm]\n{image}test_command = "true"\n{body}\n'
                  .replace('test_command = "true"\ntest_command', "test_command"))
    (tmp_path / "outside").mkdir()
    (project.root / "outside").symlink_to(tmp_path / "outside")
    project.write("pach.json", json.dumps({"v2": {"active_context": "c", "contexts": {"c": {"project": "a b"}}}}))
    project.commit("bad setting")
    return project


def assert_one_line(result, *fragments: str) -> str:
    assert result.code == 2, (result.code, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert len(result.errors) == 1, result.stderr
    (line,) = result.errors
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    assert SECRET not in result.stdout + result.stderr
    return line


@pytest.mark.parametrize("case", list(ROWS), ids=list(ROWS))
def test_a_bad_setting_is_one_line_naming_the_key(case, tmp_path):
    body, env, fragments = ROWS[case]
    project = bad_project(tmp_path, body)
    env = {k: str(project.root / v) if k == "PACH_CONFIG" else v for k, v in env.items()}
    result = project.invoke("render-spec", env=env)
    assert_one_line(result, *fragments)
    assert not (project.root / "build").exists() and not any((tmp_path / "outside").iterdir())


def test_a_task_flag_is_checked_like_a_setting(tmp_path):
    project = bad_project(tmp_path, "")
    result = project.invoke("render-spec", "--out-dir", "../elsewhere")
    assert_one_line(result, "task flag: key 'out_dir' = '../elsewhere' leaves the project")
    assert not (tmp_path / "elsewhere").exists()


# -- through deploy, on real Docker, the registry and the pachd double ------------------------
DEPLOY_ROWS = {
    "build-arg name": ('build_args = {"my-arg" = "1"}', {}, ["key 'build_args': 'my-arg' is not a valid build-arg name"]),
    "image with a tag": (None, {"INVOKE_PACHYDERM_IMAGE": "{repository}:v2"}, ["environment: key 'image'", "has a tag"]),
    "context outside the repository": ('context = ".."', {}, [
        "key 'context' = '..' resolves to", "outside the git repository", "images are built from commits"]),
    "pach context token with a newline": ("", {"PACH_CONFIG": "pach.json", "PACHD_ADDRESS": ""},
                                          ["context 'c': session_token contains whitespace or a control character"]),
}


@pytest.mark.parametrize("case", list(DEPLOY_ROWS), ids=list(DEPLOY_ROWS))
def test_a_bad_setting_stops_deploy_before_anything_is_built(case, tmp_path, services, registry, cluster, client,
                                                            docker_client, unique_repo):
    repository = f"{registry.host}/{unique_repo}"
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", repository)
    assert project.invoke("deploy").code == 0
    before = (registry.tags(unique_repo), {image.id for image in docker_client.images.list(name=repository)})
    spec = next(client.inspect_pipeline("edges", details=True))
    body, env, fragments = DEPLOY_ROWS[case]
    if body is not None:
        project.write("pyproject.toml", (project.root / "pyproject.toml").read_text() + body + "\n")
    project.write("app.py", "print('changed, so a deploy would build a new image')\n")
    contexts = {"c": {"pachd_address": f"grpc://{cluster.address}", "session_token": f"{SECRET}\n"}}
    project.write("pach.json", json.dumps({"v2": {"active_context": "c", "contexts": contexts}}))
    project.commit(case)
    env = {k: str(project.root / v) if k == "PACH_CONFIG" else v.format(repository=repository) for k, v in env.items()}
    result = project.invoke("deploy", env=env)
    assert_one_line(result, *fragments)
    assert (registry.tags(unique_repo), {image.id for image in docker_client.images.list(name=repository)}) == before
    after = next(client.inspect_pipeline("edges", details=True))
    assert (after.version, after.details.transform.image) == (spec.version, spec.details.transform.image)
    assert cluster.pipeline_versions() == {"edges": 1}


# -- a property: whatever the settings, a documented exit code and nothing applied on refusal --
HOSTILE = st.sampled_from([
    "", " ", "\t", "\n", "\0", "a\0b", "..", "../x", "/", "/etc/passwd", "~", "~/x", ".git", ".git/hooks", "*",
    "**", "[", "{commit}", "{", "x:y", "a@b", "UPPER", "localhost:0/x", "Ünïcödé", "a" * 300, "-", "--help",
    "$(touch pwned)", "'; rm -rf /", "\x1b[31m", "\u202e", "build/pipelines", "templates/*.json.j2", "REPOSITORY",
])
SCALARS = st.one_of(
    HOSTILE, st.text(max_size=12), st.booleans(), st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
)
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.one_of(HOSTILE, st.text(max_size=6)), inner, max_size=3)
), max_leaves=6)
# pachd's address and context have rows of their own: a random host would be looked up in DNS
KEY_NAMES = st.sampled_from(sorted(set(KEYS) - {"preview", "pachd_address", "pach_context"}) + ["out-dir", "unknown"])
# values that pass, so that examples get past the settings to git, Docker and pachd too
PLAUSIBLE: dict[str, list] = {
    "image": ["REPOSITORY"], "repository": ["REPOSITORY"], "name": ["main", "b"], "dockerfile": ["Dockerfile"],
    "context": ["."], "build_args": [{"A": "1", "B": 2}], "tag": ["{commit}", "inputs", "{short_commit}-x"],
    "specs": ["templates/*.json.j2", ["templates/*.j2"]], "out_dir": ["build/other"], "generated_inputs": [[]],
    "test_command": ["true"], "token": ["a-token"], "project": ["default"], "vars": [{"x": 1}],
    "registry_username": ["user"], "registry_password": ["pass word"], "pin_digest": [True, False],
    "jobs": [1, 3], "wait": [False], "timeout": [5, 0.5], "hooks": [["test"]], "owner": ["someone/else"],
    "smoke_before_deploy": [False], "smoke_data": ["tests/data"],
}


def value_for(key: str):
    return st.sampled_from(PLAUSIBLE[key]) if key in PLAUSIBLE else VALUES


STRINGS = st.one_of(HOSTILE, st.text(max_size=12))
OF_TYPE = {
    str: STRINGS, bool: st.booleans(), int: st.integers(-(2**63), 2**63 - 1), float: st.floats(),
    list: st.lists(st.one_of(STRINGS, st.integers(), st.floats(), st.booleans(), st.lists(STRINGS, max_size=1),
                             st.dictionaries(STRINGS, STRINGS, max_size=1)), min_size=1, max_size=3),
    dict: st.dictionaries(STRINGS, st.one_of(SCALARS, st.lists(SCALARS, max_size=2)), max_size=3),
}


def hostile_for(key: str):
    """Mostly of the key's own type (so the value gets past the type check to the code that
    uses it), sometimes anything."""
    types = (KEYS.get(key) or (IMAGE_KEYS.get(key) or ((str,),)))[0]
    typed = st.one_of(*(OF_TYPE[t] for t in types))
    return st.one_of(typed, typed, VALUES)


def tables(names):
    """One key of a hostile value, the others plausible: the bad value reaches what reads it."""
    return st.lists(names, unique=True, max_size=3).flatmap(
        lambda keys: st.fixed_dictionaries({k: hostile_for(k) if i == 0 else value_for(k) for i, k in enumerate(keys)}))


IMAGE_ENTRIES = st.lists(st.builds(lambda required, other: {**required, **other},
                                   st.fixed_dictionaries({"name": value_for("name"), "repository": value_for("repository")}),
                                   tables(st.sampled_from(sorted(IMAGE_KEYS)))), max_size=2)
TABLES = tables(KEY_NAMES).flatmap(
    lambda table: st.just(table) | IMAGE_ENTRIES.map(lambda images: {**table, "images": images}))


def toml_string(text: str) -> str:
    """A TOML basic string: control characters (DEL too) escaped, the rest as it is."""
    return '"' + "".join(
        "\\" + c if c in '"\\' else f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in text
    ) + '"'


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{toml_string(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_table(table: dict) -> str:
    return "".join(f"{toml_string(key)} = {toml_value(value)}\n" for key, value in table.items())


@pytest.fixture
def property_project(tmp_path, services, registry, cluster, unique_repo, monkeypatch):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    for name, value in project.env.items():
        monkeypatch.setenv(name, value)
    return project


NOTHING_STARTED = (2, 3, 4, 64)  # refused before anything was pushed or applied


@hypothesis_settings(max_examples=60, deadline=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(table=TABLES, environment=st.dictionaries(st.sampled_from(["prod", "staging"]), TABLES, max_size=1))
def test_any_settings_give_a_documented_exit_code_and_apply_nothing_when_refused(
    property_project, registry, unique_repo, cluster, capsys, table, environment
):
    """In-process, through commands.execute (what the `invoke` task runs): a subprocess per
    example would spend most of its time importing. Every repository that can be valid is the
    test registry's, so an example that passes deploys there and nowhere else."""
    from invoke_pachyderm.commands import COMMANDS, Request, execute

    text = toml_table({"image": "REPOSITORY", **table})
    for name, env_table in environment.items():
        text += f"[tool.invoke-pachyderm.environments.{toml_string(name)}]\n" + toml_table(env_table)
    text = "[tool.invoke-pachyderm]\n" + text.replace("REPOSITORY", f"{registry.host}/{unique_repo}")
    (property_project.root / "pyproject.toml").write_text(text)
    before = (registry.tags(unique_repo), cluster.pipeline_versions())
    values = {name: None for name in COMMANDS["deploy"].flags}
    values.update({"json": True, "skip_tests": True, "allow_dirty": True, "env": next(iter(environment), None)})
    code, _ = execute(COMMANDS["deploy"], Request(property_project.root, values))  # a bug raises, with its traceback
    capsys.readouterr()
    event(f"exit {code}")
    assert code == 0 or code in EXIT_CODES, code
    if code in NOTHING_STARTED:
        assert (registry.tags(unique_repo), cluster.pipeline_versions()) == before
    elif code not in (0, 9, 130):  # 9: applied, then unhealthy
        assert cluster.pipeline_versions() == before[1]
