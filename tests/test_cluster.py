"""cluster.py against the pachd double: connection errors, transactions, normalisation."""
from __future__ import annotations

import grpc
import pytest

from invoke_pachyderm.core.artifacts import RenderedSpec
from invoke_pachyderm.backends.pachd import Cluster, _failed_request
from invoke_pachyderm.core.config import PachdTarget
from invoke_pachyderm.core.errors import PachdError


def spec(name, repo="images", image="busybox:1"):
    return {"pipeline": {"name": name}, "transform": {"image": image}, "input": {"pfs": {"repo": repo, "glob": "/*"}}}


def batch(*specs):
    return [(RenderedSpec(s["pipeline"]["name"], "test", s), s, False) for s in specs]


@pytest.fixture
def target(pachd):
    pachd.create_repo("images")
    return PachdTarget(host="127.0.0.1", port=pachd.port, tls=False, token=None, source="test")


def test_apply_creates_all_in_one_transaction(pachd, target):
    cluster = Cluster(target, "default")
    cluster.apply(batch(spec("a"), spec("b", repo="a")), reprocess=False)
    assert pachd.pipeline_versions() == {"a": 1, "b": 1}
    assert "StartTransaction" in pachd.calls and "FinishTransaction" in pachd.calls


def test_a_failed_finish_names_the_pipeline_and_applies_nothing(pachd, target):
    cluster = Cluster(target, "default")
    pachd.fail_next("FinishTransaction", grpc.StatusCode.INTERNAL, message="error running request 2 of 2: boom")
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


def test_pachd_stopping_mid_transaction_applies_nothing(pachd, target):
    cluster = Cluster(target, "default")
    pachd.stop_during_transaction()
    with pytest.raises(PachdError) as raised:
        cluster.apply(batch(spec("a"), spec("b")), reprocess=False)
    assert "nothing was changed" in str(raised.value)
    assert pachd.pipeline_versions() == {}
