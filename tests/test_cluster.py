"""cluster.py against the pachd double: connection errors, transactions, normalisation."""
from __future__ import annotations

import threading

import grpc
import pytest

from invoke_pachyderm.core.artifacts import RenderedSpec
from invoke_pachyderm.backends.pachd import Cluster, _failed_request
from invoke_pachyderm.core.config import PachdTarget
from invoke_pachyderm.core.errors import PachdError, PartlyApplied


def spec(name, repo="images", image="busybox:1"):
    return {"pipeline": {"name": name}, "transform": {"image": image}, "input": {"pfs": {"repo": repo, "glob": "/*"}}}


def batch(*specs):
    return [(RenderedSpec(s["pipeline"]["name"], "test", s), s, False) for s in specs]


@pytest.fixture
def target(pachd):
    pachd.create_repo("images")
    return PachdTarget(host="127.0.0.1", port=pachd.port, tls=False, token=None, source="test")


def writes(pachd) -> list[str]:
    """The calls that could change something (pachd >= 2.8 dry runs aside)."""
    reads = {"GetVersion", "ListPipeline", "ListRepo", "GetClusterDefaults", "GetProjectDefaults"}
    return [c for c in pachd.calls if c not in reads and not (c == "CreatePipelineV2" and pachd.has_defaults)]


def test_apply_creates_all_in_one_batch(pachd, target):
    cluster = Cluster(target, "default")
    many = [spec("p0")] + [spec(f"p{i}", repo=f"p{i - 1}") for i in range(1, 30)]
    cluster.apply(batch(*many), reprocess=False)
    assert pachd.pipeline_versions() == {f"p{i}": 1 for i in range(30)}
    assert writes(pachd) == ["BatchTransaction"]  # no StartTransaction, no append per pipeline
    if pachd.has_defaults:  # one dry run each, for pachd's own effective spec
        assert pachd.calls.count("CreatePipelineV2") == 30


def test_updates_go_in_one_batch_too(pachd, target):
    cluster = Cluster(target, "default")
    cluster.apply(batch(spec("a"), spec("b", repo="a")), reprocess=False)
    updates = [(r, {**body, "description": "v2"}, True) for r, body, _ in batch(spec("a"), spec("b", repo="a"))]
    cluster.apply(updates, reprocess=False)
    assert pachd.pipeline_versions() == {"a": 2, "b": 2}
    assert writes(pachd) == ["BatchTransaction", "BatchTransaction"]
    assert cluster.deployed()["b"].spec.get("description") == "v2"


def test_a_failing_request_in_the_batch_applies_nothing(pachd, target):
    """pachd runs the batch in one SQL transaction: the third create fails (its input repo does
    not exist), so the first two are not made either; the error names the pipeline."""
    cluster = Cluster(target, "default")
    with pytest.raises(PachdError) as raised:
        cluster.apply(batch(spec("a"), spec("b"), spec("c", repo="nowhere")), reprocess=False)
    assert "at pipeline c" in str(raised.value) and "nothing was changed" in str(raised.value)
    assert pachd.pipeline_versions() == {}
    assert writes(pachd) == ["BatchTransaction"]


def test_the_guard_runs_right_before_the_batch_and_can_stop_it(pachd, target):
    cluster = Cluster(target, "default")
    seen = []

    def guard():
        seen.append(list(writes(pachd)))
        raise PachdError("another deploy is running")

    with pytest.raises(PachdError, match="another deploy"):
        cluster.apply(batch(spec("a"), spec("b")), reprocess=False, before_finish=guard)
    assert seen == [[]]  # every dry run was done, nothing was sent yet
    assert writes(pachd) == [] and pachd.pipeline_versions() == {}


def test_pachd_checks_only_its_handlers_make_keep_the_per_pipeline_path(pachd, target):
    """A batch skips the CreatePipeline(V2) handler's checks (api_server.go validateSecret, up to
    2.11 validateEnterpriseChecks): a spec naming a Kubernetes secret goes through the handler,
    in a started transaction, still all or nothing."""
    cluster = Cluster(target, "default")
    secret = {**spec("b"), "transform": {"image": "busybox:1", "secrets": [{"name": "s", "env_var": "S", "key": "k"}]}}
    cluster.apply(batch(spec("a"), secret), reprocess=False)
    assert pachd.pipeline_versions() == {"a": 1, "b": 1}
    assert "BatchTransaction" not in pachd.calls
    assert "StartTransaction" in pachd.calls and "FinishTransaction" in pachd.calls


def test_a_create_past_the_community_pipeline_limit_goes_through_the_handler(pachd, target):
    """Up to pachd 2.11, CreatePipeline refuses a create once the cluster has 16 pipelines and no
    licence; a batch would not ask. The double (no enterprise service) lets the handler pass."""
    cluster = Cluster(target, "default")
    cluster.apply(batch(*[spec(f"p{i}") for i in range(16)]), reprocess=False)
    cluster.apply(batch(spec("late")), reprocess=False)
    assert pachd.pipeline_versions()["late"] == 1
    below_212 = cluster.version < (2, 12)
    assert pachd.calls.count("BatchTransaction") == (1 if below_212 else 2)
    assert ("StartTransaction" in pachd.calls) == below_212


def test_a_failed_finish_names_the_pipeline_and_applies_nothing(pachd, target):
    cluster = Cluster(target, "default")
    pachd.fail_next("BatchTransaction", grpc.StatusCode.INTERNAL, message="error running request 2 of 2: boom")
    with pytest.raises(PachdError) as raised:
        cluster.apply(batch(spec("a"), spec("b")), reprocess=False)
    assert "at pipeline b" in str(raised.value) and "nothing was changed" in str(raised.value)
    assert pachd.pipeline_versions() == {}


def test_wrong_order_in_a_transaction_is_refused_by_pachd(pachd, target):
    cluster = Cluster(target, "default")
    with pytest.raises(PachdError) as raised:
        cluster.apply(batch(spec("b", repo="a"), spec("a")), reprocess=False)
    assert "pipeline b" in str(raised.value) and "NOT_FOUND" in str(raised.value)
    assert pachd.pipeline_versions() == {}


def test_compared_specs_ignore_key_forms_and_pachd_defaults(pachd, target):
    cluster = Cluster(target, "default")
    cluster.apply(batch(spec("a")), reprocess=False)
    deployed = cluster.deployed()["a"]
    camel = {"pipeline": {"name": "a"}, "transform": {"image": "busybox:1"},
             "input": {"pfs": {"glob": "/*", "repo": "images"}}}
    before, after = cluster.compare_forms(deployed, camel)
    assert before == after
    # a value equal to pachd's default, or a zero value written out, stores the same effective
    # spec: no update (it would only restart the pipeline)
    pinned = {**camel, "datumTries": "3", "description": "", "autoscaling": False}
    before, after = cluster.compare_forms(deployed, pinned)
    assert before == after


def test_explicit_false_against_a_true_default_is_a_change(pachd, target):
    """pachd >= 2.8: `"autoscaling": false` overrides a project default of true, so writing it out
    changes the effective spec; below 2.8 false is the only meaning and nothing changes."""
    if pachd.has_defaults:
        pachd.set_project_defaults('{"createPipelineRequest": {"autoscaling": true}}')
    cluster = Cluster(target, "default")
    cluster.apply(batch(spec("a")), reprocess=False)
    deployed = cluster.deployed()["a"]
    before, after = cluster.compare_forms(deployed, {**spec("a"), "autoscaling": False})
    assert (before != after) == pachd.has_defaults


def test_a_pipeline_made_by_the_legacy_create_is_not_restarted_for_zero_values(pachd, target):
    """Made with CreatePipeline (an older client): pachd >= 2.8 stored protojson of the request,
    without `"description": ""`; the rendered spec has it. Same effective spec: unchanged."""
    import python_pachyderm

    client = python_pachyderm.Client(host="127.0.0.1", port=pachd.port)
    cluster = Cluster(target, "default")
    client.create_pipeline_from_request(cluster.request(spec("a"), update=False, reprocess=False))
    deployed = cluster.deployed()["a"]
    before, after = cluster.compare_forms(deployed, {**spec("a"), "description": ""})
    assert before == after
    before, after = cluster.compare_forms(deployed, {**spec("a"), "description": "new"})
    assert before != after
    before, after = cluster.compare_forms(deployed, spec("a", image="busybox:2"))
    assert before != after
    assert cluster.has_defaults == pachd.has_defaults


def test_unreachable_pachd_is_a_pachd_error():
    target = PachdTarget(host="127.0.0.1", port=1, tls=False, token=None, source="test")
    with pytest.raises(PachdError) as raised:
        Cluster(target, "default")
    assert "127.0.0.1:1" in str(raised.value)


class _Error:
    def __init__(self, details):
        self._details = details

    def details(self):
        return self._details


def test_failed_request_maps_pachd_numbering_from_one():
    specs = batch(spec("a"), spec("b"), spec("c"))
    assert _failed_request(_Error("error running request 1 of 3: x"), specs) == "a"
    assert _failed_request(_Error("error running request 3 of 3: x"), specs) == "c"
    assert _failed_request(_Error("error running request 3 of 4: x"), specs) is None
    assert _failed_request(_Error("something else"), specs) is None


SECRET = {"transform": {"image": "busybox:1", "secrets": [{"name": "s", "env_var": "S", "key": "k"}]}}


@pytest.mark.parametrize("finish", ["BatchTransaction", "FinishTransaction"])
def test_pachd_stopping_mid_transaction_and_coming_back_is_read_back_as_nothing_applied(pachd, target, finish):
    """A secret makes the deploy append to a started transaction (see _needs_handler_checks)."""
    cluster = Cluster(target, "default")
    second = {**spec("b"), **SECRET} if finish == "FinishTransaction" else spec("b")
    pachd.stop_during_transaction()
    restart = threading.Timer(0.2, pachd.start)  # within the read-back's tries
    restart.start()
    with pytest.raises(PachdError) as raised:
        cluster.apply(batch(spec("a"), second), reprocess=False)
    restart.join()
    assert type(raised.value) is PachdError and raised.value.exit_code == 8
    assert f"went away during {finish}" in str(raised.value)
    assert str(raised.value).endswith("read back from pachd: the transaction was not applied, no pipeline was changed")
    assert pachd.pipeline_versions() == {}


def test_pachd_stopping_mid_transaction_for_good_is_unknown_not_nothing_applied(pachd, target):
    cluster = Cluster(target, "default")
    pachd.stop_during_transaction()
    with pytest.raises(PartlyApplied) as raised:
        cluster.apply(batch(spec("a"), spec("b")), reprocess=False)
    assert raised.value.exit_code == 13
    assert "whether the transaction was applied is unknown: a, b; check with `invoke status`" in str(raised.value)
    assert "nothing was changed" not in str(raised.value)
    pachd.start()
    assert pachd.pipeline_versions() == {}


def test_an_update_whose_version_before_is_not_given_is_unknown(pachd, target):
    cluster = Cluster(target, "default")
    cluster.apply(batch(spec("a")), reprocess=False)
    pachd.fail_next("BatchTransaction", grpc.StatusCode.UNAVAILABLE, message="Socket closed")
    with pytest.raises(PartlyApplied, match="applied: none; not applied: b; unknown: a$"):
        cluster.apply([(RenderedSpec("a", "test", spec("a")), spec("a"), True), *batch(spec("b"))], reprocess=False)
    with pytest.raises(PachdError, match="the transaction was not applied, no pipeline was changed$"):
        pachd.fail_next("BatchTransaction", grpc.StatusCode.DEADLINE_EXCEEDED, message="Deadline Exceeded")
        cluster.apply([(RenderedSpec("a", "test", spec("a")), spec("a"), True)], reprocess=False, before={"a": 1})


def test_a_call_that_never_connected_is_not_read_back(pachd, target):
    """A call that failed to connect sent nothing, so nothing was applied: no read-back, no exit 13."""
    cluster = Cluster(target, "default")
    pachd.fail_next("BatchTransaction", grpc.StatusCode.UNAVAILABLE, message="failed to connect to all addresses")
    with pytest.raises(PachdError) as raised:
        cluster.apply(batch(spec("a")), reprocess=False)
    assert type(raised.value) is PachdError and str(raised.value).endswith("; nothing was changed")
    calls = pachd.calls
    assert calls[calls.index("BatchTransaction") + 1:] == []


def test_versions_after_apply_read_back_when_the_answer_is_lost(pachd, target):
    cluster = Cluster(target, "default")
    cluster.apply(batch(spec("a")), reprocess=False)
    pachd.fail_next("ListPipeline", grpc.StatusCode.UNAVAILABLE, message="Socket closed")
    assert cluster.versions_after_apply(["a"]) == {"a": 1}
    pachd.fail_next("ListPipeline", grpc.StatusCode.UNAVAILABLE, count=10, message="Socket closed")
    with pytest.raises(PartlyApplied, match=r"the transaction was applied \(a\), but not with which versions"):
        cluster.versions_after_apply(["a"])


def test_a_batched_pipeline_stores_the_specs_createpipelinev2_would(pachd, target):
    """pachd >= 2.8: the user JSON as sent, and pachd's effective spec (from its dry run): the same
    details and, as a message, the same effective spec as a CreatePipelineV2 outside a batch."""
    import json

    from google.protobuf import json_format
    from python_pachyderm.proto.v2.pps import pps_pb2

    if not pachd.has_defaults:
        pytest.skip("user and effective specs arrived in pachd 2.8")
    pachd.set_project_defaults('{"createPipelineRequest": {"autoscaling": true, "datumTries": 5}}')
    cluster = Cluster(target, "default")
    body = {**spec("batched"), "autoscaling": False}
    cluster.apply(batch(body), reprocess=False)
    assert "BatchTransaction" in pachd.calls
    cluster._create_v2({**spec("direct"), "autoscaling": False}, update=False, reprocess=False, transaction_id=None)
    deployed = cluster.deployed()
    batched, direct = deployed["batched"], deployed["direct"]

    assert json.loads(batched.user_spec_json) == {**body, "pipeline": {"name": "batched", "project": {"name": "default"}}}

    def effective(p):
        message = json_format.Parse(p.effective_spec_json, pps_pb2.CreatePipelineRequest())
        message.ClearField("pipeline")
        return message

    assert effective(batched) == effective(direct)
    assert effective(batched).datum_tries == 5 and not effective(batched).autoscaling
    assert {**batched.spec, "pipeline": None} == {**direct.spec, "pipeline": None}
    assert not cluster.defaults_changed(batched)


def test_a_dry_run_sent_ahead_serves_a_spec_that_only_gained_annotations(pachd, target):
    """deploy sends the dry runs during the build (dry_run_ahead); the pushed digest then adds
    annotations. The stored specs are those a fresh CreatePipelineV2 would store, with one dry
    run per pipeline; a spec that changed otherwise is dry-run again."""
    import json

    from google.protobuf import json_format
    from python_pachyderm.proto.v2.pps import pps_pb2

    if not pachd.has_defaults:
        pytest.skip("dry runs arrived in pachd 2.8")
    pachd.set_project_defaults('{"createPipelineRequest": {"autoscaling": true, "datumTries": 5, '
                               '"metadata": {"annotations": {"team": "vision", "digest": "from defaults"}}}}')
    cluster = Cluster(target, "default")
    planned = {name: {**spec(name), "metadata": {"annotations": {"commit": "c1"}}} for name in ("a", "b")}
    cluster.dry_run_ahead(planned)
    final_a = {**planned["a"], "metadata": {"annotations": {"commit": "c1", "digest": "sha256:1"}}}
    final_b = {**planned["b"], "transform": {"image": "busybox:2"}, "metadata": {"annotations": {"commit": "c1"}}}
    cluster.apply(batch(final_a, final_b), reprocess=False)
    assert pachd.calls.count("CreatePipelineV2") == 3  # a's answer reused, b's sent again
    cluster._create_v2({**final_a, "pipeline": {"name": "direct"}}, update=False, reprocess=False, transaction_id=None)
    deployed = cluster.deployed()

    def effective(p):
        message = json_format.Parse(p.effective_spec_json, pps_pb2.CreatePipelineRequest())
        message.ClearField("pipeline")
        return message

    assert effective(deployed["a"]) == effective(deployed["direct"])
    assert dict(effective(deployed["a"]).metadata.annotations) == {"team": "vision", "commit": "c1", "digest": "sha256:1"}
    assert json.loads(deployed["a"].user_spec_json)["metadata"] == final_a["metadata"]
    assert effective(deployed["b"]).transform.image == "busybox:2"


@pytest.mark.parametrize("final", [
    {"metadata": {"annotations": {"commit": "c1", "digest": "d"}}, "x": 1},
    {"metadata": {"annotations": {"commit": "c2", "digest": "d"}}},
    {"metadata": {"annotations": {"digest": "d"}}},
    {"metadata": {"annotations": {"commit": "c1", "digest": 5}}},
    {"metadata": {"annotations": {"commit": "c1"}, "labels": {"a": "b"}}},
])
def test_only_added_string_annotations_reuse_a_dry_run(final):
    from invoke_pachyderm.backends.pachd import added_annotations

    sent = {"metadata": {"annotations": {"commit": "c1"}}}
    assert added_annotations(sent, {"metadata": {"annotations": {"commit": "c1", "digest": "d"}}}) == {"digest": "d"}
    assert added_annotations(sent, sent) == {}
    assert added_annotations(sent, final) is None


def test_dry_runs_sent_ahead_are_sent_again_when_the_defaults_changed_meanwhile(pachd, target):
    from google.protobuf import json_format
    from python_pachyderm.proto.v2.pps import pps_pb2

    if not pachd.has_defaults:
        pytest.skip("defaults arrived in pachd 2.8")
    pachd.set_project_defaults('{"createPipelineRequest": {"datumTries": 5}}')
    cluster = Cluster(target, "default")
    cluster.dry_run_ahead({"a": spec("a")})
    pachd.set_project_defaults('{"createPipelineRequest": {"datumTries": 7}}')  # during the build
    cluster.apply(batch(spec("a")), reprocess=False)
    assert pachd.calls.count("CreatePipelineV2") == 2
    stored = json_format.Parse(cluster.deployed()["a"].effective_spec_json, pps_pb2.CreatePipelineRequest())
    assert stored.datum_tries == 7


def test_no_dry_run_is_sent_ahead_for_a_project_apply_has_yet_to_make(pachd, target):
    """A preview deploy's project is made by apply: its defaults cannot be read during the plan,
    so nothing is sent ahead, and the plan does not fail for it."""
    if not pachd.has_defaults:
        pytest.skip("dry runs arrived in pachd 2.8")
    cluster = Cluster(target, "pr-7")
    cluster.dry_run_ahead({"a": spec("a")})
    assert "CreatePipelineV2" not in pachd.calls and not cluster._ahead


def test_a_dry_run_sent_ahead_that_failed_is_asked_again_at_apply(pachd, target):
    """A dry run sent ahead, minutes before apply, can fail on what has changed since (pachd was
    briefly unavailable here): apply asks it again rather than fail the deploy."""
    if not pachd.has_defaults:
        pytest.skip("dry runs arrived in pachd 2.8")
    cluster = Cluster(target, "default")
    pachd.fail_next("CreatePipelineV2", grpc.StatusCode.UNAVAILABLE)
    cluster.dry_run_ahead({"a": spec("a")})
    cluster.apply(batch(spec("a")), reprocess=False)
    assert pachd.pipeline_versions() == {"a": 1}
    assert pachd.calls.count("CreatePipelineV2") == 2


def test_a_dry_run_that_fails_at_apply_still_fails_the_deploy(pachd, target):
    if not pachd.has_defaults:
        pytest.skip("dry runs arrived in pachd 2.8")
    cluster = Cluster(target, "default")
    pachd.fail_next("CreatePipelineV2", grpc.StatusCode.INVALID_ARGUMENT, count=2, message="bad spec")
    cluster.dry_run_ahead({"a": spec("a")})
    with pytest.raises(PachdError, match="pipeline a failed: INVALID_ARGUMENT: bad spec; nothing was changed"):
        cluster.apply(batch(spec("a")), reprocess=False)
    assert pachd.pipeline_versions() == {}
