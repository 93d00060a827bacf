"""deploy begins connecting to pachd at once (stages/connection.EarlyConnection), but its errors come
where they came before: after the git and template checks, in the same words. And a deploy that
changes nothing sends pachd only reads it needs: no ListRepo."""
from __future__ import annotations

import socket
import threading
import time

import pytest
from project_helpers import make_project

from invoke_pachyderm.backends.pachd_early import CONNECT_TIMEOUT


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def silent_pachd():
    """A port that accepts connections and never answers: pachd behind a black hole."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def project_at(tmp_path, services, address: str, image: str = "localhost:5000/never-pushed"):
    return make_project(tmp_path, services, address, image)


def test_an_unreachable_pachd_is_reported_in_connects_words(tmp_path, services):
    port = closed_port()
    result = project_at(tmp_path, services, f"grpc://127.0.0.1:{port}").invoke("deploy", "--dry-run")
    assert result.code == 8, result.stderr
    assert f"cannot connect to pachd at grpc://127.0.0.1:{port} (address from PACHD_ADDRESS)" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_uncommitted_change_comes_before_an_unreachable_pachd(tmp_path, services):
    project = project_at(tmp_path, services, f"grpc://127.0.0.1:{closed_port()}")
    project.write("templates/late.json.j2", '{"pipeline": {"name": "late"}}')
    result = project.invoke("deploy", "--dry-run")
    assert result.code == 4, result.stderr
    assert "uncommitted changes" in result.stderr and "pachd" not in result.stderr


def test_a_bad_pachd_address_comes_after_a_template_error(tmp_path, services):
    project = project_at(tmp_path, services, "ftp://nowhere:1")
    project.write("templates/broken.json.j2", '{"pipeline": {{ ')
    project.commit("broken template")
    result = project.invoke("deploy", "--dry-run")
    assert result.code == 3, result.stderr
    assert "broken.json.j2" in result.stderr and "ftp" not in result.stderr
    # and alone it is the configuration error it always was
    project.write("templates/broken.json.j2", '{"pipeline": {"name": "broken"}, "transform": {"image": "x"}}')
    project.commit("fixed")
    alone = project.invoke("deploy", "--dry-run")
    assert alone.code == 2 and "pachd address 'ftp://nowhere:1' has scheme 'ftp'" in alone.stderr


def test_a_git_error_does_not_wait_for_a_pachd_that_never_answers(tmp_path, services, silent_pachd):
    project = project_at(tmp_path, services, f"grpc://127.0.0.1:{silent_pachd}")
    project.write("templates/late.json.j2", '{"pipeline": {"name": "late"}}')
    began = time.monotonic()
    result = project.invoke("deploy", "--dry-run")
    assert result.code == 4, result.stderr
    assert time.monotonic() - began < CONNECT_TIMEOUT  # the connection attempt is not waited for
    assert "Traceback" not in result.stderr and "Exception" not in result.stderr


def test_a_silent_pachd_is_reported_after_the_deadline(tmp_path, services, silent_pachd):
    result = project_at(tmp_path, services, f"grpc://127.0.0.1:{silent_pachd}").invoke("deploy", "--dry-run")
    assert result.code == 8, result.stderr
    assert f"pachd at grpc://127.0.0.1:{silent_pachd} (from PACHD_ADDRESS) does not answer within 10s" in result.stderr


def test_an_unchanged_deploy_lists_no_repos_and_a_change_does(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    assert project.invoke("deploy").code == 0
    seen = len(cluster.calls)
    again = project.invoke("deploy", "--json")
    assert again.code == 0, again.stderr
    assert [p["action"] for p in again.json["pipelines"]] == ["unchanged"]
    assert "ListRepo" not in cluster.calls[seen:] and "ListPipeline" in cluster.calls[seen:]
    # one connection per deploy: pachd is asked each of its first reads once
    assert cluster.calls[seen:].count("ListPipeline") == 1 and cluster.calls[seen:].count("GetVersion") == 1
    project.pipeline("edges", "images", description="changed")
    project.commit("describe")
    seen = len(cluster.calls)
    changed = project.invoke("deploy", "--json")
    assert changed.code == 0, changed.stderr
    assert [p["action"] for p in changed.json["pipelines"]] == ["update"]
    assert "ListRepo" in cluster.calls[seen:]


def imported_modules(stderr: str) -> set[str]:
    """Module names from PYTHONPROFILEIMPORTTIME's lines ("import time: self | cumulative | name")."""
    return {line.rsplit("|", 1)[1].strip() for line in stderr.splitlines() if line.startswith("import time:")}


def test_an_unchanged_deploy_on_pachd_2_8_never_loads_python_pachyderm(tmp_path, services, registry, cluster,
                                                                       unique_repo):
    """Its ~0.25 s import is most of a no-op's time: pachd is read with hand-encoded requests and the
    specs compared with pps_table; a change to apply loads it as before."""
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")
    assert project.invoke("deploy").code == 0
    profile = {"PYTHONPROFILEIMPORTTIME": "1"}
    again = project.invoke("deploy", "--json", env=profile)
    assert again.code == 0, again.stderr
    assert [p["action"] for p in again.json["pipelines"]] == ["unchanged"]
    loaded = imported_modules(again.stderr)
    assert "grpc" in loaded  # the profile is read right
    assert ("python_pachyderm" in loaded) is (not cluster.has_defaults)
    project.pipeline("edges", "images", description="changed")
    project.commit("describe")
    changed = project.invoke("deploy", "--json", env=profile)
    assert changed.code == 0, changed.stderr
    assert [p["action"] for p in changed.json["pipelines"]] == ["update"]
    assert "python_pachyderm" in imported_modules(changed.stderr)


def test_a_change_is_guessed_from_git_and_pachd_before_rendering(tmp_path, services, registry, cluster, unique_repo):
    """likely_change decides whether the connection thread imports python_pachyderm early: a wrong
    "no" makes a changed deploy wait for it, a wrong "yes" costs an unchanged one its time. It
    must say yes for a changed template, the settings or new code, and no for a commit of docs."""
    from invoke_pachyderm.backends.pachd import Cluster
    from invoke_pachyderm.core.config import PachdTarget, load_settings
    from invoke_pachyderm.stages.connection import likely_change
    from invoke_pachyderm.stages.flow import tag_stage

    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")

    def guess() -> bool:
        settings = load_settings(project.root)
        tagged = tag_stage(settings, allow_dirty=True)
        pachd = Cluster(PachdTarget(host="127.0.0.1", port=cluster.port, tls=False, token=None, source="test"), "default")
        pachd.prefetch()
        return likely_change(settings, pachd, tagged.git, [image.ref for image in tagged.images.values()])

    project.write(".dockerignore", "docs\n")  # the docs are no build input of the image
    project.commit("dockerignore")
    assert guess() is True  # nothing deployed yet
    assert project.invoke("deploy").code == 0
    if not cluster.has_defaults:
        assert guess() is True  # every comparison below 2.8 needs python_pachyderm
        return
    assert guess() is False  # the deployed commit itself
    project.write("docs/notes.md", "notes\n")
    project.commit("docs only")
    assert guess() is False
    project.write("docs/notes.md", "uncommitted\n")
    assert guess() is True  # a dirty tree
    project.commit("docs again")
    project.pipeline("edges", "images", description="changed")
    project.commit("a template")
    assert guess() is True
    assert project.invoke("deploy").code == 0
    assert guess() is False
    project.write("pyproject.toml", project.root.joinpath("pyproject.toml").read_text() + 'vars = {team = "x"}\n')
    project.commit("settings")
    assert guess() is True
    assert project.invoke("deploy").code == 0
    project.write("Dockerfile", project.root.joinpath("Dockerfile").read_text() + "\n# new code\n")
    project.commit("the image")
    assert guess() is True  # a new tag, in no deployed spec
