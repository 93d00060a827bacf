"""Flags parse like a careful command line: a typo never builds, pushes or deploys.

Every run goes through the real `invoke` program in a scratch project, against the real Docker
Engine, registry and the pachd double."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from invoke_pachyderm.core.flags import FlagTask
from invoke_pachyderm.tasks import ns
from project_helpers import make_project

README = Path(__file__).resolve().parent.parent / "README.md"
USAGE = 64


def every_task() -> dict[str, FlagTask]:
    return {name: ns[name] for name in ns.task_names}


def switches(task: FlagTask) -> list[str]:
    return ["--" + name.replace("_", "-") for name, flag in task.flags.items() if flag.is_switch]


def misspelled(flag: str) -> str:
    """`--dry-run` -> `--dryrun`, `--json` -> `--jsno`: the typos people make."""
    word = flag[2:]
    if "-" in word:
        return "--" + word.replace("-", "", 1)
    if word[-1] != word[-2]:
        return "--" + word[:-2] + word[-1] + word[-2]
    return "--" + word[:-1]


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('test_command = "true"', 'test_command = "touch tests-ran"'))
    project.write(".gitignore", "build/\ntests-ran\n")
    project.commit("the tests leave a mark")
    return project


def assert_nothing_happened(project, registry, cluster, docker_client, unique_repo, argv):
    what = " ".join(argv)
    assert registry.tags(unique_repo) == [], f"`{what}` pushed"
    assert cluster.pipeline_versions() == {}, f"`{what}` deployed"
    assert docker_client.images.list(name=f"{registry.host}/{unique_repo}") == [], f"`{what}` built"
    assert not (project.root / "tests-ran").exists(), f"`{what}` ran the tests"
    assert not (project.root / "build").exists(), f"`{what}` rendered specs"
    hooks = project.root / ".git/hooks"
    assert not (hooks / "pre-push").exists() and not (hooks / "post-commit").exists(), f"`{what}` installed a hook"
    assert project.git("status", "--porcelain") == "", f"`{what}` wrote files"


@pytest.mark.parametrize("task_name", sorted(every_task()))
def test_a_misspelled_flag_after_any_switch_runs_nothing(task_name, project, registry, cluster, docker_client, unique_repo):
    task = every_task()[task_name]
    runs = [[task_name, flag, misspelled(flag)] for flag in switches(task)]
    runs += [[task_name, "--no-" + name, misspelled("--" + name)] for name, f in task.flags.items() if f.negatable]
    if task_name == "deploy":
        runs.append(["deploy", "--skip-tests", "--dryrun"])  # the line that once deployed for real
        runs.append(["deploy", "--skip-tests", "--purge"])  # --prune is a real flag since issue 11
    assert runs
    for argv in runs:
        result = project.invoke(*argv)
        # Invoke's own parse error: plain `invoke` exits 1 for it (see README, exit codes)
        assert result.code == 1, (argv, result.stdout, result.stderr)
        assert f"No idea what '{argv[-1]}' is!" in result.stderr, argv
        assert_nothing_happened(project, registry, cluster, docker_client, unique_repo, argv)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["deploy", "--timeout", "soon"], "deploy --timeout: 'soon' is not a number"),
        (["deploy", "--timeout", "0"], "deploy --timeout: '0' must be a number of seconds greater than 0"),
        (["deploy", "--timeout=-5", "--dry-run"], "deploy --timeout: '-5' must be"),
        (["deploy", "--timeout", "nan"], "deploy --timeout: 'nan' must be"),
        (["render-spec", "--out-dir", "--chek"], "render-spec --out-dir: '--chek' looks like a flag"),
        (["render-spec", "--out-dir="], "render-spec --out-dir: needs a value"),
        (["rollback", "--to", "--json"], None),  # a flag where a value belongs: Invoke says so
    ],
)
def test_a_bad_value_is_a_usage_error_before_anything_runs(argv, message, project, registry, cluster, docker_client, unique_repo):
    result = project.invoke(*argv)
    if message is None:
        assert result.code == 1 and "needed value" in result.stderr, result.stderr
    else:
        assert result.code == USAGE, result.stderr
        assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
        assert message in result.stderr and "Traceback" not in result.stderr
    assert_nothing_happened(project, registry, cluster, docker_client, unique_repo, argv)


def test_a_value_after_a_switch_is_not_taken_as_its_value(project, registry, cluster, docker_client, unique_repo):
    for argv in (["render-spec", "--check=nah"], ["deploy", "--dry-run=false"], ["deploy", "--wait", "false"]):
        result = project.invoke(*argv)
        assert result.code == 1 and "No idea what" in result.stderr, (argv, result.stderr)
        assert_nothing_happened(project, registry, cluster, docker_client, unique_repo, argv)


def test_help_shows_each_flags_type_and_default_and_no_surprising_short_flags(project):
    for name, task in every_task().items():
        result = project.invoke("--help", name)
        assert result.code == 0, result.stderr
        options = " ".join(result.stdout.split("Options:")[1].split())  # unwrap the help column
        for attr, flag in task.flags.items():
            assert f"[{flag.type}; default: {flag.default}]" in options, (name, attr)
        shorts = set(re.findall(r"(?<![\w-])-(\w)[ ,]", options))
        assert shorts == ({"n"} if "dry_run" in task.flags else set()), (name, shorts)  # -n: --dry-run only
    deploy_help = " ".join(project.invoke("--help", "deploy").stdout.split())
    assert "--[no-]wait" in deploy_help and "-n, --dry-run" in deploy_help
    assert "[switch; default: off]" in deploy_help and "[number > 0; default: setting `timeout` (600)]" in deploy_help


def readme_flags() -> dict[str, set[str]]:
    """Task -> the flags the README's "Tasks and flags" tables name."""
    section = README.read_text().split("## Tasks and flags")[1].split("\n## ")[0]
    found: dict[str, set[str]] = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"`[\w.-]+`", cells[0]):  # the task table
            found.setdefault(cells[0].strip("`"), set()).update(re.findall(r"`(--[\w-]+)", cells[2]))
        elif len(cells) == 2 and cells[0].startswith("`-"):  # the deploy flags table
            found.setdefault("deploy", set()).update(re.findall(r"(?<![\w-])(--?[\w-]+)", cells[0].split("(")[0]))
    return found


def test_every_flag_the_readme_names_is_a_flag_of_its_task(project):
    flags = readme_flags()
    assert {"--dry-run", "-n", "--no-wait", "--timeout", "--skip-tests"} <= flags["deploy"]
    assert flags["render-spec"] == {"--check", "--out-dir", "--env", "--preview", "--json"}
    for name, named in flags.items():
        options = project.invoke("--help", name).stdout.split("Options:")[1]
        specs = [re.split(r"\s{3,}", line.strip())[0] for line in options.splitlines() if line.startswith("  -")]
        specs = [re.sub(r"--\[no-\]([\w-]+)", r"--\1 --no-\1", spec) for spec in specs]
        offered = set(re.findall(r"(?<![\w-])(--?[\w-]+)", " ".join(specs)))
        assert named <= offered, (name, named - offered)


def test_the_readme_examples_work(project, registry, cluster, unique_repo):
    dry = project.invoke("deploy", "--dry-run", "--json")
    assert dry.code == 0, dry.stderr
    assert dry.json["dry_run"] is True and cluster.pipeline_versions() == {}
    assert project.invoke("--dry", "deploy").code == 0
    short = project.invoke("deploy", "-n")
    assert short.code == 0 and "edges: create" in short.stdout and cluster.pipeline_versions() == {}
    assert project.invoke("render-spec", "--check").code == 0
    assert project.invoke("render-spec", "--out-dir", "build/elsewhere").code == 0
    assert (project.root / "build/elsewhere/edges.json").is_file()

    (project.root / "tests-ran").unlink(missing_ok=True)
    deployed = project.invoke("deploy", "--skip-tests", "--no-wait", "--timeout", "30", env={"CI": "true"})
    assert deployed.code == 0, deployed.stderr
    assert "wait for pipelines" not in deployed.stderr  # --no-wait beat CI's default
    assert not (project.root / "tests-ran").exists()
    assert cluster.pipeline_versions() == {"edges": 1}
    assert project.head in registry.tags(unique_repo)

    project.write("code.txt", "second\n")
    project.commit("second")
    waited = project.invoke("deploy", "--wait", "--timeout", "20", "--force")
    assert waited.code == 0, waited.stderr
    assert "wait for pipelines" in waited.stderr and (project.root / "tests-ran").exists()
    assert cluster.pipeline_versions() == {"edges": 2}


def test_wait_not_given_falls_back_to_the_setting(project, cluster):
    pyproject = project.root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text() + "wait = true\ntimeout = 20\n")
    project.commit("wait by default")
    result = project.invoke("deploy", "--skip-tests")
    assert result.code == 0, result.stderr
    assert "wait for pipelines" in result.stderr  # the setting applied: the flag was not given
    project.write("code.txt", "again\n")
    project.commit("again")
    result = project.invoke("deploy", "--skip-tests", "--no-wait")
    assert result.code == 0, result.stderr
    assert "wait for pipelines" not in result.stderr


def test_a_task_called_from_python_checks_its_flags_too(tmp_path):
    from invoke import Context
    from invoke.exceptions import Exit

    from invoke_pachyderm.tasks import render_spec

    with pytest.raises(Exit) as raised:
        render_spec(Context(), check="nah")
    assert raised.value.code == USAGE
    assert raised.value.message == (
        "error: render-spec --check: 'nah' is not a boolean; use one of true, 1, yes, false, 0, no"
    )


def test_the_usage_exit_code_is_documented():
    table = README.read_text().split("## Exit codes")[1]
    assert re.search(rf"^\| {USAGE} \| .*usage", table, re.M | re.I)



def test_the_invoke_pachyderm_command_has_the_usage_code_and_suggests(tmp_path):
    from scaffold_helpers import CLI

    result = subprocess.run([str(CLI), "init", str(tmp_path / "p"), "--nmae", "demo"], capture_output=True, text=True)
    assert result.returncode == USAGE
    assert "unrecognized arguments: --nmae demo (did you mean --name?)" in result.stderr
    assert not (tmp_path / "p").exists()
    abbreviated = subprocess.run([str(CLI), "init", str(tmp_path / "p"), "--forc"], capture_output=True, text=True)
    assert abbreviated.returncode == USAGE and not (tmp_path / "p").exists()  # no prefix matching


@pytest.mark.parametrize(
    "stage, argv, message",
    [
        ("deploy", ["--skip-tests", "--dryrun"], "unrecognized arguments: --dryrun (did you mean --dry-run?)"),
        ("deploy", ["--dry"], "unrecognized arguments: --dry (did you mean --dry-run?)"),
        ("deploy", ["--timeout", "0"], "argument --timeout: '0' must be a number of seconds greater than 0"),
        ("render_spec", ["--out-dir", "--chek"], "argument --out-dir: expected one argument"),
    ],
)
def test_nox_sessions_refuse_the_same_typos(tmp_path, stage, argv, message):
    from invoke_pachyderm.nox import run_stage

    failures: list[str] = []
    run_stage(stage, tmp_path, argv, failures.append)  # the parse fails before settings are even read
    assert len(failures) == 1 and message in failures[0], failures
