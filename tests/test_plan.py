"""Plan: specs normalised as pachd stores them, diffs, and the order pipelines are deployed in."""
from __future__ import annotations

import copy
import json

import pytest

from invoke_pachyderm.core.artifacts import RenderedSpec
from invoke_pachyderm.core.errors import TemplateError
from invoke_pachyderm.backends.pachd_forms import normalize_pair, normalize_spec
from invoke_pachyderm.core.artifacts import ANNOTATION_PREFIX
from invoke_pachyderm.stages.plan import dependency_order, plan_changes, spec_diff

PROJECT = "default"


def rendered_spec(name: str = "edges", repo: str = "images", **extra) -> dict:
    """A spec as a user writes it: only what they care about."""
    return {
        "pipeline": {"name": name},
        "transform": {"image": "reg/edges:abc", "cmd": ["python3", "/edges.py"]},
        "input": {"pfs": {"repo": repo, "glob": "/*"}},
        **extra,
    }


def deployed_spec(name: str = "edges", repo: str = "images") -> dict:
    """The same spec as pachd returns it: project filled in, defaults written out, keys reordered."""
    return {
        "datum_tries": "3",
        "input": {
            "pfs": {
                "branch": "master",
                "glob": "/*",
                "name": repo,
                "project": PROJECT,
                "repo": repo,
                "repo_type": "user",
            }
        },
        "output_branch": "master",
        "pipeline": {"name": name, "project": {"name": PROJECT}},
        "reprocess_spec": "until_success",
        "autoscaling": False,
        "parallelism_spec": {},
        "transform": {"cmd": ["python3", "/edges.py"], "image": "reg/edges:abc", "err_cmd": []},
        "salt": "b2f1c9e0",
        "metadata": {
            "annotations": {
                ANNOTATION_PREFIX + "commit": "1" * 40,
                ANNOTATION_PREFIX + "branch": "main",
                ANNOTATION_PREFIX + "ci-run": "https://ci/run/1",
                ANNOTATION_PREFIX + "tool-version": "0.1.0",
            }
        },
    }


def norm(spec: dict) -> dict:
    return normalize_spec(spec, PROJECT)


# -- normalisation ----------------------------------------------------------------------------


def test_deployed_and_rendered_forms_of_one_spec_are_equal():
    assert norm(deployed_spec()) == norm(rendered_spec())


def test_normalize_does_not_modify_its_argument():
    spec = rendered_spec(metadata={"annotations": {ANNOTATION_PREFIX + "commit": "x"}})
    before = copy.deepcopy(spec)
    norm(spec)
    assert spec == before


def test_key_order_does_not_count():
    spec = rendered_spec()
    reordered = {key: spec[key] for key in reversed(list(spec))}
    reordered["transform"] = {"cmd": spec["transform"]["cmd"], "image": spec["transform"]["image"]}
    assert list(reordered) != list(spec)
    assert norm(reordered) == norm(spec)
    assert spec_diff(norm(spec), norm(reordered), "edges") == ""


@pytest.mark.parametrize(
    "explicit",
    [
        {"output_branch": "master"},
        {"datum_tries": 3},
        {"datum_tries": "3"},
        {"reprocess_spec": "until_success"},
    ],
)
def test_pachd_defaults_written_out_are_no_change(explicit):
    assert norm(rendered_spec(**explicit)) == norm(rendered_spec())


@pytest.mark.parametrize(
    "changed",
    [
        {"output_branch": "staging"},
        {"datum_tries": 5},
        {"reprocess_spec": "every_job"},
    ],
)
def test_non_default_values_are_changes(changed):
    assert norm(rendered_spec(**changed)) != norm(rendered_spec())


def test_pfs_branch_name_project_and_repo_type_defaults():
    explicit = rendered_spec()
    explicit["input"]["pfs"].update(branch="master", name="images", project=PROJECT, repo_type="user")
    assert norm(explicit) == norm(rendered_spec())
    other_branch = rendered_spec()
    other_branch["input"]["pfs"]["branch"] = "dev"
    assert norm(other_branch) != norm(rendered_spec())
    other_name = rendered_spec()
    other_name["input"]["pfs"]["name"] = "in"
    assert norm(other_name) != norm(rendered_spec())
    other_project = rendered_spec()
    other_project["input"]["pfs"]["project"] = "elsewhere"
    assert norm(other_project) != norm(rendered_spec())


def test_pfs_defaults_inside_cross_union_join_group():
    def inputs(extra: dict) -> dict:
        return {
            "cross": [
                {"pfs": {"repo": "a", "glob": "/*", **extra}},
                {"union": [{"pfs": {"repo": "b", "glob": "/", **extra}}]},
                {"join": [{"pfs": {"repo": "c", "glob": "/(*)", "join_on": "$1"}}]},
                {"group": [{"pfs": {"repo": "d", "glob": "/(*)", "group_by": "$1", **extra}}]},
            ]
        }

    plain = rendered_spec()
    plain["input"] = inputs({})
    explicit = rendered_spec()
    explicit["input"] = inputs({"branch": "master", "project": PROJECT})
    explicit["input"]["cross"][2]["join"][0]["pfs"]["branch"] = "master"
    assert norm(explicit) == norm(plain)


def test_inputs_sorted_by_name_before_names_are_filled_in():
    """pps.SortInput runs in setInputDefaults before unnamed inputs get their repo as name, so an
    unnamed input ("") sorts before a named one whatever its repo (src/pps/util.go SortInput)."""
    rendered = rendered_spec()
    rendered["input"] = {"cross": [{"pfs": {"repo": "zebra", "glob": "/*", "name": "b"}},
                                   {"pfs": {"repo": "yak", "glob": "/*"}},
                                   {"pfs": {"repo": "ant", "glob": "/*", "name": "a"}}]}
    order = [child["pfs"]["name"] for child in norm(rendered)["input"]["cross"]]
    assert order == ["yak", "a", "b"]
    # the deployed side was sorted by pachd already: it is not sorted again by its filled-in names
    deployed = copy.deepcopy(norm(rendered))
    before, after = normalize_pair(deployed, rendered, PROJECT)
    assert before == after
    named = copy.deepcopy(rendered)
    named["input"]["cross"][1]["pfs"]["name"] = "yak"  # same name as the default, new position
    assert normalize_pair(deployed, named, PROJECT)[0] != normalize_pair(deployed, named, PROJECT)[1]


def test_trigger_input_gets_pachd_trigger_branch():
    """setInputDefaults: "<pipeline>-trigger-<n>" counted per repo from 1, trigger.branch "master"."""
    rendered = rendered_spec()
    rendered["input"] = {"cross": [{"pfs": {"repo": "images", "glob": "/*", "name": "x", "trigger": {"size": "1M"}}},
                                   {"pfs": {"repo": "images", "glob": "/", "name": "y", "trigger": {"all": True}}}]}
    pfs = [child["pfs"] for child in norm(rendered)["input"]["cross"]]
    assert [p["branch"] for p in pfs] == ["edges-trigger-1", "edges-trigger-2"]
    assert [p["trigger"]["branch"] for p in pfs] == ["master", "master"]


@pytest.mark.parametrize("glob, cleaned", [("*", "/*"), ("abc/", "/abc"), ("/", "/"), ("/a//b/", "/a/b"),
                                           ("./x", "/x"), ("/(*)", "/(*)")])
def test_glob_cleaned_like_pfsfile_clean_path(glob, cleaned):
    rendered = rendered_spec()
    rendered["input"]["pfs"]["glob"] = glob
    assert norm(rendered)["input"]["pfs"]["glob"] == cleaned


def test_cron_start_and_repo_defaults():
    rendered = rendered_spec()
    rendered["input"] = {"cron": {"name": "tick", "spec": "@every 60s"}}
    deployed = copy.deepcopy(rendered)
    deployed["input"]["cron"].update(repo="edges_tick", start="2024-01-31T12:00:00Z", project=PROJECT)
    before, after = normalize_pair(deployed, rendered, PROJECT)
    assert before == after
    # an explicit start is a real change (pachd keeps it; only an absent one becomes "now")
    explicit = copy.deepcopy(rendered)
    explicit["input"]["cron"]["start"] = "2025-01-01T00:00:00Z"
    before, after = normalize_pair(deployed, explicit, PROJECT)
    assert before != after
    same = copy.deepcopy(explicit)
    same["input"]["cron"]["start"] = "2024-01-31T12:00:00Z"
    assert normalize_pair(deployed, same, PROJECT)[0] == normalize_pair(deployed, same, PROJECT)[1]
    moved = copy.deepcopy(rendered)
    moved["input"]["cron"]["repo"] = "elsewhere"
    assert norm(moved) != norm(rendered)
    respec = copy.deepcopy(rendered)
    respec["input"]["cron"]["spec"] = "@every 120s"
    assert norm(respec) != norm(rendered)


def test_git_input_branch_default():
    with_git = rendered_spec(input={"git": {"url": "https://github.com/o/r.git", "name": "r"}})
    explicit = copy.deepcopy(with_git)
    explicit["input"]["git"]["branch"] = "master"
    assert norm(explicit) == norm(with_git)


def test_service_type_default():
    service = rendered_spec(service={"internal_port": 8000, "external_port": 30080})
    explicit = copy.deepcopy(service)
    explicit["service"]["type"] = "NodePort"
    assert norm(explicit) == norm(service)


def test_default_user_image():
    no_image = rendered_spec()
    del no_image["transform"]["image"]
    explicit = rendered_spec()
    explicit["transform"]["image"] = "ubuntu:20.04"
    assert norm(no_image) == norm(explicit)


def test_volatile_provenance_annotations_do_not_count():
    one = rendered_spec(metadata={"annotations": {ANNOTATION_PREFIX + "commit": "1" * 40, ANNOTATION_PREFIX + "branch": "a"}})
    two = rendered_spec(metadata={"annotations": {ANNOTATION_PREFIX + "commit": "2" * 40, ANNOTATION_PREFIX + "deployed-from": "x"}})
    assert norm(one) == norm(two) == norm(rendered_spec())
    assert "metadata" not in norm(one)


def test_user_annotations_and_labels_count():
    mine = rendered_spec(metadata={"annotations": {"team": "vision", ANNOTATION_PREFIX + "commit": "1"}})
    theirs = rendered_spec(metadata={"annotations": {"team": "audio", ANNOTATION_PREFIX + "commit": "2"}})
    assert norm(mine) != norm(theirs)
    assert norm(mine)["metadata"] == {"annotations": {"team": "vision"}}
    labelled = rendered_spec(metadata={"labels": {"tier": "gold"}})
    assert norm(labelled) != norm(rendered_spec())
    empty_value = rendered_spec(metadata={"annotations": {"reviewed": ""}})
    assert norm(empty_value) != norm(rendered_spec())


@pytest.mark.parametrize("value", ["0", "", "false"])
def test_environment_variables_count_even_when_empty_or_zero(value):
    with_env = rendered_spec()
    with_env["transform"]["env"] = {"DEBUG": value}
    assert norm(with_env) != norm(rendered_spec())
    assert norm(with_env)["transform"]["env"] == {"DEBUG": value}


def test_request_only_fields_do_not_count():
    request = rendered_spec(update=True, reprocess=True, dry_run=True, salt="abc", spec_commit={"id": "x"})
    assert norm(request) == norm(rendered_spec())


def test_empty_and_false_values_are_dropped_like_protobuf_json():
    noisy = rendered_spec(autoscaling=False, parallelism_spec={}, description="", s3_out=False)
    noisy["transform"]["err_cmd"] = []
    assert norm(noisy) == norm(rendered_spec())
    assert norm(rendered_spec(autoscaling=True)) != norm(rendered_spec())


# -- diffs and plans ----------------------------------------------------------------------------


def test_a_real_change_shows_in_the_unified_diff():
    deployed = norm(deployed_spec())
    changed = rendered_spec()
    changed["transform"]["image"] = "reg/edges:def"
    diff = spec_diff(deployed, norm(changed), "edges")
    lines = diff.splitlines()
    assert lines[0] == "--- deployed/edges" and lines[1] == "+++ rendered/edges"
    assert '-    "image": "reg/edges:abc"' in lines
    assert '+    "image": "reg/edges:def"' in lines
    changed_lines = [line for line in lines[2:] if line[:1] in "+-"]
    assert len(changed_lines) == 2  # nothing but the real change


def test_diff_of_a_new_pipeline_adds_every_line():
    after = norm(rendered_spec())
    diff = spec_diff(None, after, "edges")
    added = [line[1:] for line in diff.splitlines()[3:] if line.startswith("+")]
    assert "\n".join(added) == json.dumps(after, indent=2, sort_keys=True)
    assert not any(line.startswith("-") for line in diff.splitlines()[2:])


def test_diff_of_identical_specs_is_empty():
    assert spec_diff(norm(deployed_spec()), norm(rendered_spec()), "edges") == ""


def specs(*pairs: tuple[str, str | list[str]]) -> list[RenderedSpec]:
    out = []
    for name, inputs in pairs:
        repos = [inputs] if isinstance(inputs, str) else inputs
        spec = rendered_spec(name)
        spec["input"] = {"cross": [{"pfs": {"repo": repo, "glob": "/*"}} for repo in repos]}
        out.append(RenderedSpec(name=name, source=f"templates/{name}.json.j2", spec=spec))
    return out


def test_plan_changes_create_update_unchanged_and_force():
    rendered = specs(("new", "images"), ("same", "images"), ("changed", "images"))
    rendered_norm = {spec.name: norm(spec.spec) for spec in rendered}
    deployed_norm = {"same": rendered_norm["same"], "changed": norm(rendered_spec("changed", repo="other"))}
    changes = {c.name: c for c in plan_changes(rendered, deployed_norm, rendered_norm)}
    assert changes["new"].action == "create" and "+++ rendered/new" in changes["new"].diff
    assert changes["same"].action == "unchanged" and changes["same"].diff == ""
    assert changes["changed"].action == "update"
    removed = [line for line in changes["changed"].diff.splitlines() if line.startswith("-")]
    assert any('"repo": "other"' in line for line in removed)
    forced = {c.name: c for c in plan_changes(rendered, deployed_norm, rendered_norm, force=True)}
    assert forced["same"].action == "update" and forced["same"].diff == ""


def test_plan_of_a_redeploy_from_another_commit_is_unchanged():
    rendered = [RenderedSpec("edges", "t", rendered_spec(metadata={"annotations": {ANNOTATION_PREFIX + "commit": "2" * 40}}))]
    (change,) = plan_changes(rendered, {"edges": norm(deployed_spec())}, {"edges": norm(rendered[0].spec)})
    assert change.action == "unchanged"


# -- dependency order -----------------------------------------------------------------------------


def test_chain_given_in_reverse_comes_out_ordered():
    ordered = dependency_order(specs(("c", "b"), ("b", "a"), ("a", "images")))
    assert [spec.name for spec in ordered] == ["a", "b", "c"]


def test_diamond_dependencies():
    ordered = [s.name for s in dependency_order(specs(("join", ["left", "right"]), ("right", "src"), ("left", "src"), ("src", "raw")))]
    assert ordered[0] == "src" and ordered[-1] == "join"
    assert set(ordered) == {"src", "left", "right", "join"}


def test_external_repos_and_self_reads_are_not_dependencies():
    ordered = dependency_order(specs(("b", ["a", "external"]), ("a", ["a", "raw"])))
    assert [spec.name for spec in ordered] == ["a", "b"]


def test_order_keeps_every_spec_object():
    given = specs(("b", "a"), ("a", "images"))
    ordered = dependency_order(given)
    assert sorted(map(id, ordered)) == sorted(map(id, given))


def test_a_cycle_names_the_pipelines():
    with pytest.raises(TemplateError) as info:
        dependency_order(specs(("x", "z"), ("y", "x"), ("z", "y"), ("free", "images")))
    message = str(info.value)
    assert "cycle" in message
    for name in ("x", "y", "z"):
        assert f"{name} -> " in message or f" -> {name}" in message
    assert "free" not in message
    assert info.value.exit_code == 3


def test_two_pipeline_cycle():
    with pytest.raises(TemplateError, match=r"(a -> b -> a|b -> a -> b)"):
        dependency_order(specs(("a", "b"), ("b", "a")))
