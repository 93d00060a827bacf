"""Settings: the four layers, key and type checks, env parsing, and where pachd is."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from invoke_pachyderm.core.config import (
    DEFAULT_PACHD_ADDRESS,
    KEYS,
    ImageConfig,
    PachdTarget,
    is_ci,
    load_settings,
    resolve_pachd,
)
from invoke_pachyderm.core.errors import ConfigError


@pytest.fixture(autouse=True)
def _isolated(isolated_env):
    """Every test here runs isolated (see conftest.isolated_env)."""
    return isolated_env


@pytest.fixture
def project(tmp_path):
    directory = tmp_path / "project"
    directory.mkdir()
    return directory


def write_pyproject(project: Path, body: str) -> None:
    (project / "pyproject.toml").write_text(f"[project]\nname = 'demo'\n\n[tool.invoke-pachyderm]\n{body}\n")


def write_pach_config(path: Path, active: str | None, contexts: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    v2: dict = {"contexts": contexts}
    if active is not None:
        v2["active_context"] = active
    path.write_text(json.dumps({"v2": v2}))
    return path


# -- the four layers --------------------------------------------------------------------


def test_each_layer_overrides_the_one_before(project):
    write_pyproject(
        project,
        'image = "reg/from-pyproject"\nproject = "p-pyproject"\ntag = "{commit}-py"\ntimeout = 11\nout-dir = "out-py"',
    )
    settings = load_settings(
        project,
        invoke_config={"project": "p-invoke", "tag": "{commit}-invoke", "timeout": 22},
        environ={"INVOKE_PACHYDERM_TAG": "{commit}-env", "INVOKE_PACHYDERM_TIMEOUT": "33"},
        flags={"timeout": 44},
    )
    assert settings.image == "reg/from-pyproject"
    assert settings.project == "p-invoke"
    assert settings.tag == "{commit}-env"
    assert settings.timeout == 44
    assert settings.out_dir == "out-py"  # dashes in pyproject keys become underscores
    assert settings.sources["image"].startswith("pyproject.toml")
    assert settings.sources["project"] == "invoke config 'pachyderm'"
    assert settings.sources["tag"] == "environment"
    assert settings.sources["timeout"] == "task flag"
    assert settings.project_dir == project.resolve()


def test_flags_set_to_none_do_not_override(project):
    write_pyproject(project, 'image = "reg/a"')
    settings = load_settings(project, flags={"image": None, "tag": None}, environ={})
    assert settings.image == "reg/a"
    assert settings.tag == KEYS["tag"][1]
    assert "tag" not in settings.sources


def test_defaults_without_any_configuration(project):
    settings = load_settings(project, environ={})
    assert settings.tag == "{commit}"
    assert settings.out_dir == "build/pipelines"
    assert settings.project == "default"
    assert settings.spec_globs == ["templates/*.json.j2"]
    assert settings.image_configs == []
    with pytest.raises(ConfigError, match="no image configured"):
        settings.require_images()


def test_process_environment_is_read_when_not_given(project, monkeypatch):
    monkeypatch.setenv("INVOKE_PACHYDERM_PROJECT", "from-os-environ")
    assert load_settings(project).project == "from-os-environ"


def test_invoke_dataproxy_like_mappings_are_accepted(project):
    class Proxy:  # Invoke's DataProxy has items() but is not a Mapping
        def __init__(self, data):
            self._data = data

        def items(self):
            return self._data.items()

    settings = load_settings(project, invoke_config=Proxy({"build_args": Proxy({"A": "1"})}), environ={})
    assert settings.build_args == {"A": "1"}


# -- unknown keys and wrong types ---------------------------------------------------------


def test_unknown_pyproject_key_names_key_source_and_suggestion(project):
    write_pyproject(project, 'imgae = "reg/a"')
    with pytest.raises(ConfigError) as info:
        load_settings(project, environ={})
    message = str(info.value)
    assert "pyproject.toml" in message
    assert "'imgae'" in message
    assert "did you mean 'image'" in message
    assert info.value.exit_code == 2


def test_unknown_key_without_close_match_lists_known_keys(project):
    with pytest.raises(ConfigError) as info:
        load_settings(project, invoke_config={"zzzzzz": 1}, environ={})
    message = str(info.value)
    assert "invoke config 'pachyderm'" in message and "'zzzzzz'" in message
    assert "known keys:" in message and "pachd_address" in message


def test_unknown_environment_variable_suggests_the_variable(project):
    with pytest.raises(ConfigError, match=r"^environment: unknown variable INVOKE_PACHYDERM_IMAGES_TAG"):
        load_settings(project, environ={"INVOKE_PACHYDERM_IMAGES_TAG": "x"})
    with pytest.raises(ConfigError, match=r"did you mean 'INVOKE_PACHYDERM_TAG'"):
        load_settings(project, environ={"INVOKE_PACHYDERM_TGA": "{commit}"})


@pytest.mark.parametrize(
    "layer, key, value, wanted",
    [
        ("pyproject", "timeout", '"soon"', "int or float"),
        ("pyproject", "build_args", '["A=1"]', "table"),
        ("invoke", "images", {"name": "x"}, "array"),
        ("invoke", "pin_digest", "yes", "bool"),
        ("flags", "jobs", True, "int"),  # a bool is not an int here
        ("flags", "specs", 3, "str or array"),
    ],
)
def test_wrong_type_names_key_type_and_source(project, layer, key, value, wanted):
    kwargs: dict = {"environ": {}}
    if layer == "pyproject":
        write_pyproject(project, f"{key} = {value}")
        source = "pyproject.toml"
    elif layer == "invoke":
        kwargs["invoke_config"] = {key: value}
        source = "invoke config"
    else:
        kwargs["flags"] = {key: value}
        source = "task flag"
    with pytest.raises(ConfigError) as info:
        load_settings(project, **kwargs)
    message = str(info.value)
    assert source in message
    assert f"'{key}'" in message
    assert f"must be {wanted}" in message


def test_invalid_toml_is_a_config_error(project):
    (project / "pyproject.toml").write_text("[tool.invoke-pachyderm\nimage = 1\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(project, environ={})


def test_section_that_is_not_a_table(project):
    (project / "pyproject.toml").write_text('[tool]\ninvoke-pachyderm = "x"\n')
    with pytest.raises(ConfigError, match="must be a table"):
        load_settings(project, environ={})


@pytest.mark.parametrize("key", ["registry_password", "token"])
def test_wrong_type_for_a_secret_never_shows_the_value(project, key):
    secret = "hunter2-very-secret"
    with pytest.raises(ConfigError) as info:
        load_settings(project, invoke_config={key: [secret]}, environ={})
    message = str(info.value)
    assert secret not in message
    assert "***" in message
    assert f"'{key}'" in message


def test_secrets_are_listed_and_redacted(project):
    settings = load_settings(
        project, environ={"INVOKE_PACHYDERM_REGISTRY_PASSWORD": "s3cr3t!", "INVOKE_PACHYDERM_TOKEN": "tok"}
    )
    assert sorted(settings.secrets()) == ["s3cr3t!", "tok"]
    redacted = settings.redacted()
    assert redacted["registry_password"] == "***" and redacted["token"] == "***"
    assert "s3cr3t!" not in repr(redacted)


# -- environment parsing --------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [("true", True), ("1", True), ("YES", True), ("on", True), ("false", False), ("0", False), ("no", False), ("", False)],
)
def test_env_booleans(project, raw, expected):
    settings = load_settings(project, environ={"INVOKE_PACHYDERM_PIN_DIGEST": raw})
    assert settings.pin_digest is expected


def test_env_bad_boolean(project):
    with pytest.raises(ConfigError, match=r"INVOKE_PACHYDERM_WAIT='maybe' is not a boolean"):
        load_settings(project, environ={"INVOKE_PACHYDERM_WAIT": "maybe"})


def test_env_numbers(project):
    settings = load_settings(project, environ={"INVOKE_PACHYDERM_JOBS": "3", "INVOKE_PACHYDERM_TIMEOUT": "2.5"})
    assert settings.jobs == 3 and isinstance(settings.jobs, int)
    assert settings.timeout == 2.5
    with pytest.raises(ConfigError, match="INVOKE_PACHYDERM_JOBS='2.5' is not a number"):
        load_settings(project, environ={"INVOKE_PACHYDERM_JOBS": "2.5"})
    with pytest.raises(ConfigError, match="is not a number"):
        load_settings(project, environ={"INVOKE_PACHYDERM_TIMEOUT": "ten"})


def test_env_json_tables_and_arrays(project):
    images = [{"name": "a", "repository": "reg/a"}, {"name": "b", "repository": "reg/b", "context": "b"}]
    settings = load_settings(
        project,
        environ={
            "INVOKE_PACHYDERM_BUILD_ARGS": '{"VERSION": "1.2", "N": 3}',
            "INVOKE_PACHYDERM_IMAGES": json.dumps(images),
            "INVOKE_PACHYDERM_VARS": '{"replicas": 2}',
        },
    )
    assert settings.build_args == {"VERSION": "1.2", "N": 3}
    assert settings.vars == {"replicas": 2}
    assert [image.name for image in settings.image_configs] == ["a", "b"]
    assert settings.image_configs[1].context == "b"


def test_env_invalid_json(project):
    with pytest.raises(ConfigError, match=r"INVOKE_PACHYDERM_BUILD_ARGS must be JSON \(dict\)"):
        load_settings(project, environ={"INVOKE_PACHYDERM_BUILD_ARGS": "A=1"})


def test_env_json_of_the_wrong_type(project):
    with pytest.raises(ConfigError, match=r"environment: key 'build_args' must be table"):
        load_settings(project, environ={"INVOKE_PACHYDERM_BUILD_ARGS": '["A=1"]'})


def test_env_string_keys_are_taken_verbatim(project):
    settings = load_settings(project, environ={"INVOKE_PACHYDERM_SPECS": "specs/*.j2", "INVOKE_PACHYDERM_TAG": "true"})
    assert settings.spec_globs == ["specs/*.j2"]
    assert settings.tag == "true"


def test_env_test_variables_and_other_prefixes_are_ignored(project):
    settings = load_settings(
        project,
        environ={
            "INVOKE_PACHYDERM_TEST_REGISTRY": "127.0.0.1:5000",
            "INVOKE_PACHYDERM_TEST_ANYTHING": "x",
            "INVOKE_OTHER": "y",
            "PACHYDERM_IMAGE": "z",
        },
    )
    assert settings.values == {}


# -- images entries -------------------------------------------------------------------------


def test_images_entries_become_image_configs(project):
    write_pyproject(
        project,
        '[[tool.invoke-pachyderm.images]]\nname = "edges"\nrepository = "reg/edges"\n'
        'build_args = { N = 3 }\ntarget = "prod"\n'
        '[[tool.invoke-pachyderm.images]]\nname = "montage"\nrepository = "reg/montage"\ndockerfile = "m/Dockerfile"',
    )
    configs = load_settings(project, environ={}).image_configs
    assert configs[0] == ImageConfig(name="edges", repository="reg/edges", build_args={"N": "3"}, target="prod")
    assert configs[1].dockerfile == "m/Dockerfile" and configs[1].context == "."


def test_single_image_key_is_image_main(project):
    settings = load_settings(
        project, invoke_config={"image": "reg/x", "build_args": {"A": 1}, "target": "t", "context": "c"}, environ={}
    )
    (config,) = settings.require_images()
    assert config == ImageConfig(name="main", repository="reg/x", context="c", build_args={"A": "1"}, target="t")


@pytest.mark.parametrize(
    "entry, fragment",
    [
        ("oops", "images[1] must be a table"),
        ({"name": "b"}, "images[1]: missing 'repository'"),
        ({"repository": "reg/b"}, "images[1]: missing 'name'"),
        ({"name": "b", "repository": "reg/b", "dockerfiel": "D"}, "unknown key 'dockerfiel' (did you mean 'dockerfile'?)"),
        ({"name": "b", "repository": "reg/b", "build_args": "A=1"}, "key 'build_args' has the wrong type (str)"),
    ],
)
def test_invalid_images_entries(project, entry, fragment):
    images = [{"name": "a", "repository": "reg/a"}, entry]
    with pytest.raises(ConfigError) as info:
        load_settings(project, invoke_config={"images": images}, environ={})
    assert fragment in str(info.value)
    assert "invoke config 'pachyderm'" in str(info.value)


# -- pachd ----------------------------------------------------------------------------------


def test_default_pachd_address(project, isolated_env):
    target = resolve_pachd(load_settings(project, environ={}), environ={"HOME": str(isolated_env)})
    assert target.address == DEFAULT_PACHD_ADDRESS
    assert (target.host, target.port, target.tls, target.token) == ("localhost", 30650, False, None)
    assert target.source == "default"


def test_pachd_resolution_order(project, isolated_env):
    config = write_pach_config(
        isolated_env / ".pachyderm/config.json",
        "ctx",
        {"ctx": {"pachd_address": "grpc://from-context:1001", "session_token": "ctx-token"}},
    )
    environ = {"HOME": str(isolated_env), "PACHD_ADDRESS": "grpc://from-env:1002"}
    with_setting = load_settings(project, flags={"pachd_address": "grpc://from-setting:1003"}, environ={})

    target = resolve_pachd(with_setting, environ=environ)
    assert (target.host, target.port, target.source) == ("from-setting", 1003, "task flag")

    target = resolve_pachd(load_settings(project, environ={}), environ=environ)
    assert (target.host, target.port, target.source) == ("from-env", 1002, "PACHD_ADDRESS")

    target = resolve_pachd(load_settings(project, environ={}), environ={"HOME": str(isolated_env)})
    assert (target.host, target.port) == ("from-context", 1001)
    assert str(config) in target.source and "ctx" in target.source
    assert target.token == "ctx-token"


def test_home_is_read_from_the_process_environment(project, isolated_env, monkeypatch):
    write_pach_config(isolated_env / ".pachyderm/config.json", "c", {"c": {"pachd_address": "grpcs://home:443"}})
    target = resolve_pachd(load_settings(project, environ={}))
    assert (target.host, target.port, target.tls) == ("home", 443, True)


def test_pach_config_and_pach_context_override(project, tmp_path, isolated_env):
    write_pach_config(isolated_env / ".pachyderm/config.json", "c", {"c": {"pachd_address": "grpc://home:1"}})
    other = write_pach_config(
        tmp_path / "elsewhere.json",
        "one",
        {"one": {"pachd_address": "grpc://one:1"}, "two": {"pachd_address": "grpc://two:2", "session_token": "t2"}},
    )
    settings = load_settings(project, environ={})
    environ = {"HOME": str(isolated_env), "PACH_CONFIG": str(other)}
    assert resolve_pachd(settings, environ=environ).host == "one"
    target = resolve_pachd(settings, environ={**environ, "PACH_CONTEXT": "two"})
    assert (target.host, target.port, target.token) == ("two", 2, "t2")
    # an unknown context name means no context, not an error
    assert resolve_pachd(settings, environ={**environ, "PACH_CONTEXT": "nope"}).address == DEFAULT_PACHD_ADDRESS


def test_token_setting_beats_the_context_token(project, isolated_env):
    write_pach_config(isolated_env / ".pachyderm/config.json", "c", {"c": {"session_token": "ctx-token"}})
    settings = load_settings(project, environ={"INVOKE_PACHYDERM_TOKEN": "setting-token"})
    target = resolve_pachd(settings, environ={"HOME": str(isolated_env)})
    assert target.token == "setting-token"
    assert target.address == DEFAULT_PACHD_ADDRESS  # a context without an address gives the default


def test_unreadable_pach_config(project, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot read the Pachyderm config"):
        resolve_pachd(load_settings(project, environ={}), environ={"PACH_CONFIG": str(bad)})


@pytest.mark.parametrize(
    "address, host, port, tls",
    [
        ("grpc://pachd:30650", "pachd", 30650, False),
        ("grpcs://pachd.example.com:443", "pachd.example.com", 443, True),
        ("https://pachd.example.com:8443/", "pachd.example.com", 8443, True),
        ("http://10.0.0.1:80", "10.0.0.1", 80, False),
        ("pachd:1650", "pachd", 1650, False),
        ("grpcs://pachd", "pachd", 30650, True),
    ],
)
def test_pachd_address_forms(project, address, host, port, tls):
    target = resolve_pachd(load_settings(project, flags={"pachd_address": address}, environ={}), environ={})
    assert (target.host, target.port, target.tls) == (host, port, tls)


@pytest.mark.parametrize(
    "address, fragment",
    [
        ("tcp://pachd:30650", "has scheme 'tcp'"),
        ("grpc://pachd:port", "has a bad port 'port'"),
        ("grpc://pachd:", "has a bad port ''"),
        ("grpc://pachd:99999", "has a bad port '99999'"),
        ("grpc://pachd:0", "has a bad port '0'"),
        ("grpc://pachd:-1", "has a bad port '-1'"),
        ("grpc://:30650", "has no host"),
        ("grpc://pach d:30650", "has a bad host 'pach d'"),
    ],
)
def test_bad_pachd_addresses(project, address, fragment):
    with pytest.raises(ConfigError) as info:  # where the setting is read, not when pachd is first needed
        load_settings(project, environ={"INVOKE_PACHYDERM_PACHD_ADDRESS": address})
    assert fragment in str(info.value)
    assert str(info.value).startswith("environment: key 'pachd_address': ")


def test_bad_pachd_address_env_names_its_source(project):
    with pytest.raises(ConfigError, match=r"^PACHD_ADDRESS: pachd address 'ftp://x:1'"):
        resolve_pachd(load_settings(project, environ={}), environ={"PACHD_ADDRESS": "ftp://x:1"})


def test_pachd_target_repr_hides_the_token():
    target = PachdTarget(host="h", port=1, tls=True, token="super-secret-token", source="s")
    assert "super-secret-token" not in repr(target)
    assert "***" in repr(target) and "grpcs://h:1" in repr(target)
    assert "token=None" in repr(PachdTarget(host="h", port=1, tls=False, token=None, source="s"))


def test_is_ci():
    assert is_ci({"CI": "true"}) and is_ci({"GITHUB_ACTIONS": "true"})
    assert not is_ci({}) and not is_ci({"CI": "false"})


def test_server_cas_of_the_context_go_with_its_tls_address(project, isolated_env):
    import base64

    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    write_pach_config(
        isolated_env / ".pachyderm/config.json", "c",
        {"c": {"pachd_address": "grpcs://secure:443", "server_cas": base64.b64encode(pem).decode()}},
    )
    settings = load_settings(project, environ={})
    target = resolve_pachd(settings, environ={"HOME": str(isolated_env)})
    assert target.tls and target.root_certs == pem
    elsewhere = resolve_pachd(settings, environ={"HOME": str(isolated_env), "PACHD_ADDRESS": "grpcs://other:443"})
    assert elsewhere.root_certs is None  # another address does not inherit the context's CAs
    write_pach_config(isolated_env / ".pachyderm/config.json", "c",
                      {"c": {"pachd_address": "grpcs://secure:443", "server_cas": "not base64!"}})
    with pytest.raises(ConfigError, match="server_cas"):
        resolve_pachd(settings, environ={"HOME": str(isolated_env)})


@pytest.mark.parametrize("cpus, expected", [(2, 6), (None, 5), (64, 32)])
def test_default_jobs_overlap_builds_beyond_the_cpus(project, monkeypatch, cpus, expected):
    from invoke_pachyderm.stages import flow

    monkeypatch.setattr(flow.os, "cpu_count", lambda: cpus)
    assert flow.jobs(load_settings(project, environ={})) == expected
    assert flow.jobs(load_settings(project, environ={"INVOKE_PACHYDERM_JOBS": "1"})) == 1
