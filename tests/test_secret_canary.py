"""Secret canaries through every output channel (issue 13), end to end through `invoke` in GitHub mode.

A pachd token and a multi-line registry password are set; every channel the tool writes to is
read back: stdout, stderr, --json, --debug, rendered spec files, GITHUB_OUTPUT, GITHUB_STEP_SUMMARY
and the git hook files. A canary value may appear only on an `::add-mask::` line, which must come
before any other output, and no mask may be a trivially short fragment.
"""
from __future__ import annotations

import json

import pytest

from invoke_pachyderm.testing.pachd_double import PachdDouble
from project_helpers import make_project

TOKEN = "canary-token-7d2f9b1a"
PASSWORD = "{\n  canary-password-line-2-Q9x7\n  canary-password-line-3-Z4k2\n}\n"
# What must never show, written out here rather than derived by the code under test.
NEEDLES = [TOKEN, PASSWORD, "canary-password-line-2-Q9x7", "canary-password-line-3-Z4k2"]
MASKS = {TOKEN, "canary-password-line-2-Q9x7", "canary-password-line-3-Z4k2"}


def leaks(text: str) -> list[str]:
    found = [needle for needle in NEEDLES if needle in text and "\n" in needle]
    for line in text.splitlines():
        if line.startswith("::add-mask::"):
            assert line.removeprefix("::add-mask::") in MASKS, f"unexpected mask: {line!r}"
            continue
        found += [line for needle in NEEDLES if needle in line]
    return found


def assert_masked_first(text: str) -> None:
    lines = text.splitlines()
    masks = [i for i, line in enumerate(lines) if line.startswith("::add-mask::")]
    assert {lines[i].removeprefix("::add-mask::") for i in masks} == MASKS, lines[:5]
    assert masks == list(range(len(masks))), "masks must come before anything else"


@pytest.fixture
def double(registry):
    with PachdDouble(tokens=[TOKEN]) as double:
        double.create_repo("images")
        yield double


def test_secret_canaries_never_leak_through_any_channel(tmp_path, services, registry, unique_repo, double):
    project = make_project(tmp_path, services, f"grpc://{double.address}", f"{registry.host}/{unique_repo}",
                           pipelines=())
    project.pipeline("edges", "images", description="{{ note | default('') }}")
    project.write(".gitignore", "build/\ninvoke.yaml\n")
    project.commit("a template that takes a note")
    output, summary = tmp_path / "github_output", tmp_path / "github_summary"
    env = {
        "GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": "push", "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary), "GITHUB_RUN_ID": "7",
        "INVOKE_PACHYDERM_TOKEN": TOKEN, "INVOKE_PACHYDERM_REGISTRY_USERNAME": "ci",
        "INVOKE_PACHYDERM_REGISTRY_PASSWORD": PASSWORD,
    }
    channels: dict[str, str] = {}

    deployed = project.invoke("deploy", env=env)
    assert deployed.code == 0, deployed.stderr
    assert_masked_first(deployed.stdout)
    channels["deploy stdout"], channels["deploy stderr"] = deployed.stdout, deployed.stderr

    planned = project.invoke("deploy", "--json", "--dry-run", env=env)
    assert planned.code == 0, planned.stderr
    assert planned.json["dry_run"] is True  # stdout is the one JSON document: the masks went to stderr
    assert_masked_first(planned.stderr)
    channels["--json stdout"], channels["--json stderr"] = planned.stdout, planned.stderr

    rendered = project.invoke("render-spec", env=env)
    assert rendered.code == 0, rendered.stderr
    channels["render-spec"] = rendered.stdout + rendered.stderr
    specs = sorted((project.root / "build").rglob("*.json"))
    assert specs
    for path in specs:
        channels[f"file {path.name}"] = path.read_text()

    installed = project.invoke("hooks.install", "--post-commit", env=env)
    assert installed.code == 0, installed.stderr
    channels["hooks.install"] = installed.stdout + installed.stderr
    for hook in ("pre-push", "post-commit"):
        channels[f"hook {hook}"] = (project.root / ".git" / "hooks" / hook).read_text()

    # --debug: Invoke logs its configuration (here an invoke.yaml holding the token) and the traceback.
    project.write("invoke.yaml", f"pachyderm:\n  token: {TOKEN}\n")
    debug = project.invoke("--debug", "deploy", env={**env, "PACHD_ADDRESS": "grpc://127.0.0.1:1"})
    assert debug.code != 0
    assert "Traceback" in debug.stderr and "invoke.config.merge" in debug.stderr
    assert "'token': '***'" in debug.stderr  # Invoke's own config log, redacted
    channels["--debug stdout"], channels["--debug stderr"] = debug.stdout, debug.stderr
    (project.root / "invoke.yaml").unlink()

    channels["GITHUB_OUTPUT"] = output.read_text()
    channels["GITHUB_STEP_SUMMARY"] = summary.read_text()
    assert "### invoke-pachyderm deploy" in channels["GITHUB_STEP_SUMMARY"]
    assert "commit=" in channels["GITHUB_OUTPUT"]
    for channel, text in channels.items():
        assert not leaks(text), f"{channel}: {leaks(text)}"


def test_a_spec_holding_a_secret_is_refused_and_nothing_is_written_or_applied(
    tmp_path, services, registry, unique_repo, double
):
    project = make_project(tmp_path, services, f"grpc://{double.address}", f"{registry.host}/{unique_repo}",
                           pipelines=())
    project.pipeline("edges", "images", description="{{ note | default('') }}")
    project.commit("a template that takes a note")
    env = {"INVOKE_PACHYDERM_TOKEN": TOKEN, "INVOKE_PACHYDERM_REGISTRY_USERNAME": "ci",
           "INVOKE_PACHYDERM_REGISTRY_PASSWORD": PASSWORD}
    for secret in (TOKEN, "canary-password-line-3-Z4k2"):
        vars_env = {**env, "INVOKE_PACHYDERM_VARS": json.dumps({"note": f"key {secret}"})}
        for task in ("render-spec", "deploy"):
            result = project.invoke(task, env=vars_env)
            assert result.code == 3, result.stdout + result.stderr
            (error,) = result.errors
            assert "templates/edges.json.j2: $.description:" in error
            assert "holds the value of a secret" in error and "`secrets` field" in error
            assert "Traceback" not in result.stderr
            assert not leaks(result.stdout + result.stderr)
    assert not (project.root / "build").exists()
    assert registry.tags(unique_repo) == []
    assert double.pipeline_versions() == {}
