"""Fast CI (issue 6): never build or push twice, content-addressed reuse, failed look-ups are
errors, many images in parallel with prefixed logs, and a start-up that imports neither docker
nor python_pachyderm. Real Docker Engine + registries + the pachd double; nothing here is timed
(the timings are in benchmarks/run.py and BENCHMARKS.md)."""
from __future__ import annotations

import base64
import http.server
import json
import subprocess
import threading
import time
from types import SimpleNamespace

import pytest

from fixtures_services import write_busybox_context
from invoke_pachyderm.core.artifacts import ImageArtifact
from invoke_pachyderm.core.errors import RegistryError
from invoke_pachyderm.backends.docker_images import registry_digest
from invoke_pachyderm.backends.registry import direct_digest
from project_helpers import VENV_BIN, make_project


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    return make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}")


def deploy_json(project, *args, env=None):
    result = project.invoke("deploy", "--json", *args, env=env)
    assert result.code == 0, result.stderr
    return result.json, result.stderr


def final_lines(stderr: str) -> list[str]:
    """The one closing line each image gets."""
    return [line for line in stderr.splitlines() if "built+pushed " in line or "skipped: " in line]


def image_id(docker_client, ref):
    return docker_client.images.get(ref).id


# -- never build or push twice ----------------------------------------------------------------
def test_second_deploy_of_the_same_commit_builds_and_pushes_nothing(project, registry, unique_repo, docker_client, cluster):
    first, stderr = deploy_json(project)
    main = first["images"]["main"]
    assert (main["built"], main["pushed"], main["skipped"]) == (True, True, None)
    assert [line.split(" ")[0] for line in final_lines(stderr)] == ["built+pushed"]
    ref, digest = main["ref"], main["digest"]
    assert registry.manifest_digest(unique_repo, project.head) == digest
    built_id = image_id(docker_client, ref)

    second, stderr = deploy_json(project)
    main = second["images"]["main"]
    assert (main["built"], main["pushed"], main["skipped"]) == (False, False, "already in registry")
    assert main["digest"] == digest
    (line,) = final_lines(stderr)
    assert line.startswith("skipped: already in the registry") and ref in line and digest in line
    assert "Step " not in stderr and "Pushed" not in stderr  # no build or push output at all
    assert image_id(docker_client, ref) == built_id
    assert registry.manifest_digest(unique_repo, project.head) == digest
    assert registry.tags(unique_repo) == [project.head]
    assert [p["action"] for p in second["pipelines"]] == ["unchanged"]
    assert cluster.pipeline_versions() == {"edges": 1}

    # The registry answered for itself, so the daemon was not needed at all.
    third, _ = deploy_json(project, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert third["images"]["main"]["skipped"] == "already in registry"
    assert third["images"]["main"]["digest"] == digest


def test_rebuild_forces_a_build_and_a_push(project, registry, unique_repo, docker_client, cluster):
    first, _ = deploy_json(project)
    ref, digest = first["images"]["main"]["ref"], first["images"]["main"]["digest"]
    built_id = image_id(docker_client, ref)
    time.sleep(1.1)  # a created label taken from the clock would now differ

    again, stderr = deploy_json(project, "--rebuild")
    main = again["images"]["main"]
    assert (main["built"], main["pushed"], main["skipped"]) == (True, True, None)
    # The labels come from the commit, so the daemon's cache gives the very same image (issue 12).
    assert main["digest"] == digest
    assert registry.manifest_digest(unique_repo, project.head) == main["digest"]
    assert image_id(docker_client, ref) == built_id
    assert [line.split(" ")[0] for line in final_lines(stderr)] == ["built+pushed"]
    # Same commit, same tag, same spec: nothing restarts.
    assert cluster.pipeline_versions() == {"edges": 1}


# -- content-addressed tags ------------------------------------------------------------------
def test_inputs_tag_reuses_the_image_across_spec_docs_and_test_commits(
    tmp_path, services, registry, cluster, client, unique_repo
):
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        settings='tag = "inputs"\n', pipelines=(("edges", "images"), ("montage", "images")),
    )
    project.write(".dockerignore", "templates\ndocs\ntests\nbuild\n*.md\n")
    project.commit("dockerignore")
    first, _ = deploy_json(project)
    tag = first["images"]["main"]["tag"]
    assert tag.startswith("inputs-")
    image = first["images"]["main"]["ref"]
    assert cluster.pipeline_versions() == {"edges": 1, "montage": 1}

    project.write("docs/usage.md", "# How to run\n")
    project.write("tests/test_edges.py", "def test_nothing():\n    pass\n")
    project.write("README.md", "A project.\n")
    project.commit("docs and tests only")
    second, stderr = deploy_json(project)
    main = second["images"]["main"]
    assert main["tag"] == tag and main["ref"] == image
    assert (main["built"], main["pushed"], main["skipped"]) == (False, False, "already in registry")
    assert {p["name"]: p["action"] for p in second["pipelines"]} == {"edges": "unchanged", "montage": "unchanged"}
    assert cluster.pipeline_versions() == {"edges": 1, "montage": 1}
    assert registry.tags(unique_repo) == [tag]

    template = project.root / "templates/montage.json.j2"
    template.write_text(template.read_text().replace('"description": ""', '"description": "a montage"'))
    project.commit("spec of one pipeline only")
    third, _ = deploy_json(project)
    assert third["images"]["main"]["skipped"] == "already in registry" and not third["images"]["main"]["pushed"]
    assert {p["name"]: p["action"] for p in third["pipelines"]} == {"edges": "unchanged", "montage": "update"}
    assert cluster.pipeline_versions() == {"edges": 1, "montage": 2}
    for name in ("edges", "montage"):
        assert next(client.inspect_pipeline(name, details=True)).details.transform.image == image

    project.write("transform.txt", "new code\n")  # in the build context: a new image
    project.commit("code")
    fourth, _ = deploy_json(project)
    main = fourth["images"]["main"]
    assert main["tag"] != tag and (main["built"], main["pushed"]) == (True, True)
    assert cluster.pipeline_versions() == {"edges": 2, "montage": 3}


# -- a failed look-up is an error, never "absent" ---------------------------------------------
def test_auth_registry_without_credentials_fails_the_look_up(tmp_path, services, auth_registry, cluster, unique_repo, docker_client):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{auth_registry.host}/{unique_repo}")
    result = project.invoke("deploy")
    assert result.code == 7, result.stderr
    errors = result.errors
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "cannot look up" in errors[0] and "credentials" in errors[0]
    assert "built+pushed" not in result.stderr and "Step " not in result.stderr
    with pytest.raises(Exception):
        image_id(docker_client, f"{auth_registry.host}/{unique_repo}:{project.head}")  # nothing was built
    assert cluster.pipeline_versions() == {}


def test_auth_registry_with_credentials_skips_the_second_time(tmp_path, services, auth_registry, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{auth_registry.host}/{unique_repo}")
    credentials = {
        "INVOKE_PACHYDERM_REGISTRY_USERNAME": auth_registry.username,
        "INVOKE_PACHYDERM_REGISTRY_PASSWORD": auth_registry.password,
    }
    first, _ = deploy_json(project, env=credentials)
    assert first["images"]["main"]["pushed"]
    second, _ = deploy_json(project, env=credentials)
    assert second["images"]["main"]["skipped"] == "already in registry"
    assert second["images"]["main"]["digest"] == auth_registry.manifest_digest(unique_repo, project.head)
    # Wrong credentials: an error, not "absent" (and so not a build either).
    result = project.invoke("deploy", env={**credentials, "INVOKE_PACHYDERM_REGISTRY_PASSWORD": "wrong"})
    assert result.code == 7 and "cannot look up" in result.stderr, result.stderr


def test_credentials_from_the_docker_config_serve_look_up_and_push(tmp_path, services, auth_registry, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{auth_registry.host}/{unique_repo}")
    token = base64.b64encode(f"{auth_registry.username}:{auth_registry.password}".encode()).decode()
    docker_config = tmp_path / "home" / ".docker" / "config.json"
    docker_config.parent.mkdir(parents=True)
    docker_config.write_text(json.dumps({"auths": {auth_registry.host: {"auth": token}}}))
    first, _ = deploy_json(project)
    assert first["images"]["main"]["pushed"]
    second, _ = deploy_json(project)
    assert second["images"]["main"]["skipped"] == "already in registry"


def test_unreachable_registry_is_an_error_not_absent(tmp_path, services, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"127.0.0.1:1/{unique_repo}")
    result = project.invoke("deploy")
    assert result.code == 7, result.stderr
    errors = result.errors
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert "cannot look up 127.0.0.1:1/" in errors[0] and "connection refused" in errors[0]
    assert "Step " not in result.stderr
    assert cluster.pipeline_versions() == {}


@pytest.fixture
def not_a_registry():
    """A web server that answers 404 with an HTML page ("File not found") to everything."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    server.RequestHandlerClass.log_message = lambda *args: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_look_up_classification_against_the_daemon(docker_client, registry, auth_registry, not_a_registry, unique_repo):
    """What the daemon answers, case by case: only the registry's "manifest unknown" is absent."""
    def artifact(host, tag="1"):
        return ImageArtifact(name="main", repository=f"{host}/{unique_repo}", tag=tag)

    assert registry_digest(docker_client, artifact(registry.host), None) is None  # 404 manifest unknown
    assert registry_digest(docker_client, artifact(auth_registry.host), auth_registry.auth_config) is None
    assert direct_digest(artifact(registry.host), None) is None  # the fast path never says "absent"
    cases = {
        "no credentials": (artifact(auth_registry.host), None, "no basic auth credentials"),
        "wrong credentials": (artifact(auth_registry.host), {"username": "ci-user", "password": "x"}, "unauthorized"),
        "unreachable": (artifact("127.0.0.1:1"), None, "connection refused"),
        # a 404 from something that is not a registry: the daemon's 500 mentions "not found"
        "not a registry": (artifact(not_a_registry), None, "error parsing http 404 response body"),
    }
    for case, (image, auth, words) in cases.items():
        assert direct_digest(image, auth) is None, case
        with pytest.raises(RegistryError) as raised:
            registry_digest(docker_client, image, auth)
        assert raised.value.exit_code == 7
        assert words in str(raised.value).lower(), (case, str(raised.value))


# -- many images ------------------------------------------------------------------------------
def test_several_images_are_built_in_parallel_with_prefixed_logs(tmp_path, services, registry, cluster, client, unique_repo):
    project = make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        pipelines=(),
    )
    for name in ("api", "worker"):
        write_busybox_context(project.root / name, extra_files={f"{name}.txt": f"{name}\n"})
    project.write("pyproject.toml", f"""[tool.invoke-pachyderm]
test_command = "true"
jobs = 2

[[tool.invoke-pachyderm.images]]
name = "api"
repository = "{registry.host}/{unique_repo}-api"
context = "api"
dockerfile = "api/Dockerfile"

[[tool.invoke-pachyderm.images]]
name = "worker"
repository = "{registry.host}/{unique_repo}-worker"
context = "worker"
dockerfile = "worker/Dockerfile"
""")
    project.pipeline("serve", "images", image_var="images.api.ref")
    project.pipeline("crunch", "images", image_var="images.worker.ref")
    project.commit("two images")

    document, stderr = deploy_json(project)
    for name in ("api", "worker"):
        image = document["images"][name]
        assert (image["built"], image["pushed"]) == (True, True)
        assert registry.tags(f"{unique_repo}-{name}") == [project.head]
        lines = [line for line in stderr.splitlines() if line.startswith(f"[{name}] ")]
        assert any("Step " in line for line in lines), stderr  # the build log, prefixed
        pushed = [line for line in lines if "built+pushed" in line]
        assert len(pushed) == 1, stderr
        assert pushed[0].startswith(f"[{name}] built+pushed {image['ref']} {image['digest']} in "), stderr
    assert next(client.inspect_pipeline("serve", details=True)).details.transform.image == document["images"]["api"]["ref"]
    assert next(client.inspect_pipeline("crunch", details=True)).details.transform.image == document["images"]["worker"]["ref"]

    again, stderr = deploy_json(project)
    assert {name: image["skipped"] for name, image in again["images"].items()} == {
        "api": "already in registry", "worker": "already in registry"
    }
    assert sorted(line.split(" ", 2)[:2] for line in final_lines(stderr)) == [["[api]", "skipped:"], ["[worker]", "skipped:"]]


# -- quick start-up ---------------------------------------------------------------------------
PROBE = """
import atexit, json, sys
def report():
    with open({out!r}, "w") as handle:
        json.dump(sorted(m for m in sys.modules if m.split(".")[0] in ("docker", "python_pachyderm", "grpc")), handle)
atexit.register(report)
from invoke.main import program
program.run(["invoke", *{args!r}])
"""


@pytest.mark.parametrize("args", [["--list"], ["--help", "deploy"], ["render-spec"]], ids=" ".join)
def test_list_help_and_render_spec_import_neither_docker_nor_pachyderm(tmp_path, args):
    no_services = SimpleNamespace(docker_host="unix:///nonexistent/docker.sock")
    project = make_project(tmp_path, no_services, "grpc://127.0.0.1:1", "127.0.0.1:1/never/pushed")
    out = tmp_path / "modules.json"
    completed = subprocess.run(
        [str(VENV_BIN / "python"), "-c", PROBE.format(out=str(out), args=args)],
        cwd=project.root, env=project.env, capture_output=True, text=True, timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    if args == ["render-spec"]:
        assert (project.root / "build/pipelines/edges.json").is_file()
    assert json.loads(out.read_text()) == []
