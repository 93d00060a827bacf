"""Issue 12 end to end, through `invoke deploy` on the real Docker Engine, registry and the pachd
double: with the default settings a spec-only commit bumps only its pipeline, and every deployed
image reference is a commit SHA that `git show` opens; each stage's time is reported."""
from __future__ import annotations

import re

import pytest

from project_helpers import make_project

SHA = re.compile(r"[0-9a-f]{40}")
STAGES = ("tag", "render", "pachd", "registry", "build", "push", "plan", "apply")


@pytest.fixture
def project(tmp_path, services, registry, cluster, unique_repo):
    return make_project(
        tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
        pipelines=(("edges", "images"), ("montage", "images"), ("stats", "images")),
    )


def deployed_images(client) -> dict[str, str]:
    return {
        name: next(client.inspect_pipeline(name, details=True)).details.transform.image
        for name in ("edges", "montage", "stats")
    }


def test_a_spec_only_commit_bumps_only_its_pipeline_and_tags_stay_commits(project, cluster, client, registry, unique_repo):
    first = project.invoke("deploy", "--json")
    assert first.code == 0, first.stderr
    code_commit = project.head
    assert cluster.pipeline_versions() == {"edges": 1, "montage": 1, "stats": 1}

    template = project.root / "templates/montage.json.j2"
    template.write_text(template.read_text().replace('"description": ""', '"description": "a montage"'))
    spec_commit = project.commit("spec of one pipeline only")
    second = project.invoke("deploy", "--json")
    assert second.code == 0, second.stderr
    main = second.json["images"]["main"]
    assert main["tag"] == code_commit != spec_commit
    assert (main["built"], main["pushed"], main["skipped"]) == (False, False, "already in registry")
    assert {p["name"]: p["action"] for p in second.json["pipelines"]} == {
        "edges": "unchanged", "montage": "update", "stats": "unchanged"
    }
    assert cluster.pipeline_versions() == {"edges": 1, "montage": 2, "stats": 1}
    assert second.json["commit"] == spec_commit  # the deploy still records the commit it shipped

    # New code: one new image, every pipeline moves to it.
    project.write("transform.txt", "new code\n")
    code_commit = project.commit("code")
    third = project.invoke("deploy")
    assert third.code == 0, third.stderr
    assert cluster.pipeline_versions() == {"edges": 2, "montage": 3, "stats": 2}

    for reference in [*deployed_images(client).values(), *(f"x:{t}" for t in registry.tags(unique_repo))]:
        tag = reference.rsplit(":", 1)[1]
        assert SHA.fullmatch(tag), reference
        assert project.git("cat-file", "-t", tag) == "commit"  # `git show` opens it
    assert set(deployed_images(client).values()) == {f"{registry.host}/{unique_repo}:{code_commit}"}


def test_each_stage_is_timed_in_json_and_summed_up_in_one_human_line(project):
    result = project.invoke("deploy", "--json")
    assert result.code == 0, result.stderr
    timings = result.json["timings"]
    assert set(STAGES) <= set(timings) and all(seconds >= 0 for seconds in timings.values())

    again = project.invoke("deploy")
    assert again.code == 0, again.stderr
    last = again.stdout.splitlines()[-1]
    assert re.fullmatch(r"\w+ \d+\.\d\d s( · \w+ \d+\.\d\d s)*", last), last
    assert last.startswith("tag ") and " registry " in last and " build " not in last  # nothing was built


def test_new_code_in_one_image_bumps_only_the_pipelines_running_it(tmp_path, services, registry, cluster, unique_repo):
    from fixtures_services import write_busybox_context

    images = "".join(
        f'\n[[tool.invoke-pachyderm.images]]\nname = "{name}"\nrepository = "{registry.host}/{unique_repo}-{name}"\n'
        f'context = "{name}"\ndockerfile = "{name}/Dockerfile"\n'
        for name in ("a", "b")
    )
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
                           settings=images, pipelines=())
    for name in ("a", "b"):
        write_busybox_context(project.root / name, extra_files={"code.txt": f"{name} v1\n"})
        project.pipeline(f"runs-{name}", "images", image_var=f"images.{name}.ref")
    project.commit("two images")
    assert project.invoke("deploy").code == 0
    assert cluster.pipeline_versions() == {"runs-a": 1, "runs-b": 1}

    write_busybox_context(project.root / "a", extra_files={"code.txt": "a v2\n"})
    changed = project.commit("new code in image a")
    result = project.invoke("deploy", "--json")
    assert result.code == 0, result.stderr
    assert result.json["images"]["a"]["tag"] == changed and result.json["images"]["b"]["built"] is False
    assert cluster.pipeline_versions() == {"runs-a": 2, "runs-b": 1}


# -- the build begins during the plan; nothing is pushed before the plan and the tests passed ----
WAIT_FOR_IMAGE = """
import sys, time, docker
client = docker.from_env()
for _ in range(600):
    if client.images.list(name=sys.argv[1]):
        print("the image was built while the tests ran")
        sys.exit(3)
    time.sleep(0.1)
sys.exit(4)
"""


def test_the_build_runs_beside_the_tests_and_failing_tests_push_nothing(tmp_path, services, registry, cluster, unique_repo):
    repository = f"{registry.host}/{unique_repo}"
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", repository)
    project.write("wait_for_image.py", WAIT_FOR_IMAGE)
    pyproject = project.root / "pyproject.toml"
    # the tests exit 3 only once the image exists: they end only if the build ran meanwhile
    pyproject.write_text(pyproject.read_text().replace(
        'test_command = "true"', f'test_command = "python wait_for_image.py {repository}"'))
    project.commit("slow failing tests")

    result = project.invoke("deploy", timeout=120)
    assert result.code == 5, result.stderr
    assert result.errors == [f"error: tests failed: `python wait_for_image.py {repository}` exited 3; "
                             "nothing was pushed or deployed"]
    assert "the image was built while the tests ran" in result.stdout
    assert registry.tags(unique_repo) == []  # built, never pushed
    assert cluster.pipeline_versions() == {}


def test_a_refused_plan_pushes_nothing_though_the_build_had_begun(tmp_path, services, registry, cluster, unique_repo):
    project = make_project(tmp_path, services, f"grpc://{cluster.address}", f"{registry.host}/{unique_repo}",
                           pipelines=(("edges", "no-such-repo"),))
    result = project.invoke("deploy")
    assert result.code != 0 and len(result.errors) == 1, result.stderr
    assert "no-such-repo" in result.errors[0] and "Traceback" not in result.stderr
    assert registry.tags(unique_repo) == []
    assert cluster.pipeline_versions() == {}


def test_the_build_lines_print_in_the_build_stage_though_it_began_earlier(project):
    result = project.invoke("deploy")
    assert result.code == 0, result.stderr
    lines = result.stderr.splitlines() + result.stdout.splitlines()
    stage = next(i for i, line in enumerate(lines) if line.startswith("== build and push"))
    steps = [i for i, line in enumerate(lines) if line.startswith("Step ")]
    applied = next(i for i, line in enumerate(lines) if line.startswith("== apply"))
    assert steps and stage < min(steps) and max(steps) < applied, "\n".join(lines)
