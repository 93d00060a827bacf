"""Every fault a clean exit (issue 13): bad settings and templates, a daemon or registry dying
part-way, Ctrl-C. Each case runs `invoke` as a user would and checks the exit code, the one
error line, that there is no traceback, and that nothing was pushed or deployed.
Real Docker Engine, real registry, the pachd double; faults come from a proxy in front of them."""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from fault_proxy import BAD_GATEWAY, CUT, STALL, FaultProxy, unix_socket_path
from fixtures_services import write_busybox_context
from invoke_pachyderm.core.errors import EXIT_CODES
from project_helpers import VENV_BIN, Result, make_project


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    return make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")


def set_settings(project, settings: str) -> None:
    path = project.root / "pyproject.toml"
    path.write_text(path.read_text() + settings)


def one_clean_error(result: Result, code: int, *fragments: str) -> str:
    assert result.code == code, (result.code, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr
    assert len(result.errors) == 1, result.stderr
    (line,) = result.errors
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


def nothing_applied(registry, unique_repo, cluster, before=None) -> None:
    assert registry.tags(unique_repo) == []
    assert cluster.pipeline_versions() == (before or {})


# -- bad input: settings and templates -----------------------------------------------------

TEMPLATE_START = '{\n  "pipeline": {"name": "edges"},\n  "transform": {"image": "{{ image }}", "cmd": ["/busybox", "true"]},\n'
TEMPLATE_END = '  "input": {"pfs": {"repo": "images", "glob": "/*"}}\n}\n'

BAD_INPUTS = {
    # name: (settings appended to [tool.invoke-pachyderm], template body or None, exit code, fragments)
    "absolute spec glob": ('specs = "/etc/*.j2"\n', None, 2, ["'/etc/*.j2' leaves the project", "relative"]),
    "spec glob leaving the project": ('specs = "../*.j2"\n', None, 2, ["'../*.j2' leaves the project"]),
    "missing build context": ('context = "no-such-dir"\n', None, 2, ["build context 'no-such-dir' is not a directory"]),
    "missing Dockerfile": ('dockerfile = "Nope.Dockerfile"\n', None, 2, ["Dockerfile 'Nope.Dockerfile' not found"]),
    "range(10**8) in a template": (
        "", TEMPLATE_START + '  "description": "{% for i in range(10**8) %}x{% endfor %}",\n' + TEMPLATE_END,
        3, ["templates/edges.json.j2:4: too large for the template sandbox", "Range too big"],
    ),
    "10**(10**10) in a template": (
        "", TEMPLATE_START + '  "description": "{{ 10**(10**10) }}",\n' + TEMPLATE_END,
        3, ["templates/edges.json.j2", "exponent", "too large"],
    ),
    "string repeated 10**9 times": (
        "", TEMPLATE_START + '  "description": "{{ \'x\' * 10**9 }}",\n' + TEMPLATE_END,
        3, ["templates/edges.json.j2:4", "too large"],
    ),
    "negative timeout": ("timeout = -5\n", None, 2, ["key 'timeout' must be a positive number of seconds, got -5"]),
    "NaN timeout": ("timeout = nan\n", None, 2, ["key 'timeout' must be a positive number of seconds, got nan"]),
    "infinite timeout": ("timeout = inf\n", None, 2, ["key 'timeout' must be a positive number"]),
    "zero jobs": ("jobs = 0\n", None, 2, ["key 'jobs' must be at least 1"]),
    "negative jobs": ("jobs = -3\n", None, 2, ["key 'jobs' must be at least 1", "got -3"]),
    "nested build_args": (
        'build_args = { VERSION = { major = 1 } }\n', None, 2,
        ["key 'build_args': build argument 'VERSION' must be a string or number, got a table"],
    ),
    "a list in an image's build_args": (
        '[[tool.invoke-pachyderm.images]]\nname = "main"\nrepository = "localhost:5000/x"\n'
        'build_args = { PACKAGES = ["a", "b"] }\n', None, 2,
        ["images[0]: key 'build_args': build argument 'PACKAGES' must be a string or number, got an array"],
    ),
    "two images with one name": (
        '[[tool.invoke-pachyderm.images]]\nname = "main"\nrepository = "localhost:5000/a"\n'
        '[[tool.invoke-pachyderm.images]]\nname = "main"\nrepository = "localhost:5000/b"\n', None, 2,
        ["images[1] and images[0] are both named 'main'"],
    ),
    "project name with a space and a slash": (
        'project = "a b/.."\n', None, 2, ["'a b/..' is not a valid Pachyderm project name"],
    ),
    "project name starting with a dash": ('project = "-team"\n', None, 2, ["'-team' is not a valid Pachyderm project name"]),
    "project name over pachd's limit": ('project = "' + "p" * 52 + '"\n', None, 2, ["longer than pachd's limit of 51"]),
    "duplicate JSON key": (
        "", TEMPLATE_START + '  "input": {"pfs": {"repo": "images", "glob": "/*", "glob": "/"}}\n}\n',
        3, ["templates/edges.json.j2: $.input.pfs: key 'glob' appears twice"],
    ),
    "a pipeline reading its own output": (
        "", TEMPLATE_START + '  "input": {"cross": [{"pfs": {"repo": "images", "glob": "/*"}}, '
        '{"pfs": {"repo": "edges", "glob": "/"}}]}\n}\n',
        3, ["$.input.cross[1].pfs.repo: pipeline 'edges' reads its own output repo 'edges'"],
    ),
    "out_dir inside .git": ('out_dir = ".git"\n', None, 2, ["key 'out_dir' = '.git' is inside .git"]),
    "out_dir deeper inside .git": ('out_dir = "./.git/hooks"\n', None, 2, ["is inside .git"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_one_line_and_changes_nothing(case, project, registry, unique_repo, cluster):
    settings, template, code, fragments = BAD_INPUTS[case]
    set_settings(project, settings)
    if template is not None:
        project.write("templates/edges.json.j2", template)
    project.commit(case)
    result = project.invoke("deploy", timeout=120)
    one_clean_error(result, code, *fragments)
    nothing_applied(registry, unique_repo, cluster)


def test_a_symlink_does_not_let_a_template_include_a_host_file(tmp_path, project, registry, unique_repo, cluster):
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text("TOP-SECRET-HOST-CONTENT")
    (project.root / "templates" / "notes.txt").symlink_to(host_file)
    project.write(
        "templates/edges.json.j2",
        TEMPLATE_START + '  "description": "{% include \'templates/notes.txt\' %}",\n' + TEMPLATE_END,
    )
    project.commit("include through a symlink")
    for args in (("render-spec",), ("deploy",)):
        result = project.invoke(*args)
        one_clean_error(result, 3, "templates/edges.json.j2:4:", "'templates/notes.txt' resolves to", "outside the project")
        assert "TOP-SECRET" not in result.stdout + result.stderr
    assert not (project.root / "build").exists()
    nothing_applied(registry, unique_repo, cluster)


def test_a_template_symlinked_from_outside_the_project_is_refused(tmp_path, project):
    outside = tmp_path / "elsewhere.json.j2"
    outside.write_text(TEMPLATE_START + TEMPLATE_END)
    (project.root / "templates" / "edges.json.j2").unlink()
    (project.root / "templates" / "edges.json.j2").symlink_to(outside)
    project.commit("template is a symlink out")
    one_clean_error(project.invoke("render-spec", "--check"), 3, "resolves to", "outside the project")


@pytest.mark.parametrize(
    "args, code, fragment",
    [
        (("--timeout", "nan"), 64, "'nan' must be a number of seconds greater than 0"),
        (("--timeout=-inf",), 64, "'-inf' must be a number of seconds greater than 0"),
        (("--rollback-on-failure", "--no-wait"), 2, "--rollback-on-failure needs --wait"),
    ],
    ids=["timeout nan", "timeout -inf", "rollback without wait"],
)
def test_bad_deploy_flags_are_one_line(args, code, fragment, project, registry, unique_repo, cluster):
    one_clean_error(project.invoke("deploy", *args), code, fragment)
    nothing_applied(registry, unique_repo, cluster)


# -- a daemon or a registry dying part-way --------------------------------------------------


def slow_build_context(project, seconds: float = 3) -> None:
    """A Dockerfile whose RUN step (a sleep) takes a while; unique so no cache answers it."""
    write_busybox_context(project.root, run_seconds=seconds, extra_files={"unique.txt": uuid.uuid4().hex})
    project.commit("slow build")


def test_the_docker_daemon_dying_mid_build_names_the_step(project, services, registry, unique_repo, cluster):
    slow_build_context(project)
    proxy = FaultProxy(unix_socket_path(services.docker_host), CUT, from_server=b" : RUN")
    try:
        result = project.invoke("deploy", env={"DOCKER_HOST": f"tcp://{proxy.address}"})
    finally:
        proxy.close()
    assert proxy.fired.is_set()
    one_clean_error(
        result, 6, f"image {registry.host}/{unique_repo}:{project.head}",
        "the connection to the Docker daemon broke during the build, at Step ", " : RUN", "nothing was pushed",
    )
    nothing_applied(registry, unique_repo, cluster)


def test_the_registry_dying_mid_push_names_the_image_and_layer(project, registry, unique_repo, cluster):
    proxy = FaultProxy(registry.host, BAD_GATEWAY, from_client=b"/blobs/uploads/")
    try:
        set_settings(project, "")
        text = (project.root / "pyproject.toml").read_text().replace(registry.host, proxy.address)
        project.write("pyproject.toml", text)
        project.commit("push through the proxy")
        result = project.invoke("deploy")
    finally:
        proxy.close()
    assert proxy.fired.is_set()
    line = one_clean_error(result, 7, f"push of {proxy.address}/{unique_repo}:{project.head} failed at layer")
    # then the daemon's own words, which vary with where the connection broke ("received unexpected
    # HTTP status: 502 Bad Gateway", or Go's "readLoopPeekFailLocked: <nil>"): only that there are some
    layer, _, detail = line.partition(" failed at layer ")[2].partition(": ")
    assert layer and detail.strip(), line
    nothing_applied(registry, unique_repo, cluster)


# -- Ctrl-C ---------------------------------------------------------------------------------


def interrupt(project, *args: str, when, env=None, timeout: float = 120) -> Result:
    """Run invoke, send SIGINT once `when(stderr so far)` is true (checked on each stderr line)."""
    process = subprocess.Popen(
        [str(VENV_BIN / "invoke"), *args], cwd=project.root, env={**project.env, **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    stdout: list[str] = []
    reader = threading.Thread(target=lambda: stdout.append(process.stdout.read()), daemon=True)
    reader.start()
    stderr = ""
    sent = False
    for line in process.stderr:
        stderr += line
        if not sent and when(stderr):
            process.send_signal(signal.SIGINT)
            sent = True
    process.wait(timeout=timeout)
    reader.join(timeout=10)
    assert sent, stderr
    return Result(process.returncode, "".join(stdout), stderr)


def test_ctrl_c_during_the_build_exits_130_with_nothing_pushed(project, registry, unique_repo, cluster):
    slow_build_context(project, seconds=30)
    result = interrupt(project, "deploy", when=lambda err: " : RUN" in err)
    one_clean_error(
        result, 130, "interrupted during the build and push",
        f"nothing was pushed: {registry.host}/{unique_repo}:{project.head}", "no pipeline was changed",
    )
    nothing_applied(registry, unique_repo, cluster)


def test_ctrl_c_during_the_build_task(project, registry, unique_repo):
    slow_build_context(project, seconds=30)
    result = interrupt(project, "build", when=lambda err: " : RUN" in err)
    one_clean_error(result, 130, "interrupted during the build; no image was built; nothing was pushed or changed")
    assert registry.tags(unique_repo) == []


def test_ctrl_c_during_the_push_exits_130_with_nothing_pushed(project, registry, unique_repo, cluster):
    proxy = FaultProxy(registry.host, STALL, from_client=b"/blobs/uploads/")
    try:
        text = (project.root / "pyproject.toml").read_text().replace(registry.host, proxy.address)
        project.write("pyproject.toml", text)
        project.commit("push through the proxy")
        assert project.invoke("build").code == 0
        result = interrupt(project, "push", when=lambda err: proxy.fired.wait(30))
    finally:
        proxy.close()
    one_clean_error(result, 130, "interrupted during the push", f"nothing was pushed: {proxy.address}/{unique_repo}")
    nothing_applied(registry, unique_repo, cluster)


def test_ctrl_c_during_the_transaction_applies_nothing(project, registry, unique_repo, cluster):
    assert project.invoke("deploy").code == 0
    project.write("code.txt", "v2\n")
    second = project.commit("v2")
    cluster.set_delay(30, method="BatchTransaction")  # the one RPC that changes the pipelines
    result = interrupt(project, "deploy", when=lambda err: "== apply" in err)
    one_clean_error(
        result, 130, "interrupted during the transaction", f"pushed {registry.host}/{unique_repo}:{second}",
        "read back from pachd: the transaction was not applied, no pipeline was changed",
    )
    assert cluster.pipeline_versions() == {"edges": 1}


def test_ctrl_c_while_waiting_says_the_deploy_was_applied(project, cluster):
    cluster.start_delay = 120
    result = interrupt(project, "deploy", "--wait", when=lambda err: "== wait" in err)
    one_clean_error(
        result, 130, "interrupted during the wait for RUNNING", "the deploy was applied: edges version 1",
        "stopped waiting for RUNNING",
    )
    assert cluster.pipeline_versions() == {"edges": 1}


def test_ctrl_c_elsewhere_exits_130(project):
    project.write("pyproject.toml", (project.root / "pyproject.toml").read_text().replace(
        'test_command = "true"', 'test_command = "sleep 60"'))
    project.commit("slow tests")
    result = interrupt(project, "test", when=lambda err: "== test" in err)
    one_clean_error(result, 130, "interrupted: `test` stopped before it finished")


# -- the documented table -------------------------------------------------------------------


@pytest.mark.parametrize("document", ["README.md", "docs/exit-codes.md"])
def test_every_exit_code_is_in_the_documented_tables(document):
    text = (Path(__file__).resolve().parent.parent / document).read_text()
    documented = {int(code) for code in re.findall(r"^\| (\d+) \|", text, flags=re.MULTILINE)}
    assert set(EXIT_CODES) | {0, 1} == documented


_INTERRUPTED_CALLS = '''
import gc, os, random, signal, sys, threading
from invoke_pachyderm.backends.pachd import Cluster
from invoke_pachyderm.core.config import PachdTarget

target = PachdTarget("127.0.0.1", int(sys.argv[1]), False, None, "test")
for i in range(int(sys.argv[2])):
    cluster = Cluster(target, "default")
    timer = threading.Timer(random.uniform(0, 0.03), os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()  # inside: on a loaded machine the signal can come before start() returns
        while True:
            cluster.states([])
    except KeyboardInterrupt:
        pass
    del cluster
    gc.collect()  # the channel's close: it hung when the interrupt landed inside the stream
print("done")
'''


def test_ctrl_c_during_pachd_calls_never_hangs(cluster):
    """Ctrl-C landing anywhere in the wait loop's ListPipeline stream, then the channel collected:
    without pachd.interrupt_after_call this hung within a few rounds (grpc's close waited forever)."""
    result = subprocess.run(
        [sys.executable, "-c", _INTERRUPTED_CALLS, str(cluster.port), "40"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "done"
