"""The no-op shortcuts in backends/pachd.py give the verdict the full comparison gives.

`Reference` is a Cluster with the shortcuts turned off (our own code, not pachd or python-pachyderm):
every case is judged both ways against the pachd double, and each test also checks which way the
shortcut went, so both its hit and its fall-back are exercised."""
from __future__ import annotations

import json

import pytest
from google.protobuf import json_format
from python_pachyderm.proto.v2.pps import pps_pb2

from invoke_pachyderm.backends.pachd import Cluster
from invoke_pachyderm.backends.pachd_forms import message_form
from invoke_pachyderm.backends.pachd_v28 import specs_in_wire, specs_of
from invoke_pachyderm.core.artifacts import ANNOTATION_PREFIX, RenderedSpec
from invoke_pachyderm.core.config import PachdTarget
from invoke_pachyderm.core.errors import PachdError

DESCRIPTOR = pps_pb2.CreatePipelineRequest.DESCRIPTOR


class Reference(Cluster):
    def _stored_as_sent(self, deployed, body):
        return None

    def _same_effective_as_dicts(self, deployed):
        return False


def spec(name="a", **extra):
    return {"pipeline": {"name": name}, "transform": {"image": "busybox:1", "cmd": ["sh"]},
            "input": {"pfs": {"repo": "images", "glob": "/*"}},
            "metadata": {"annotations": {ANNOTATION_PREFIX + "commit": "c1", "team": "x"}}, **extra}


@pytest.fixture
def target(pachd):
    pachd.create_repo("images")
    return PachdTarget(host="127.0.0.1", port=pachd.port, tls=False, token=None, source="test")


def deploy(cluster, body):
    cluster.apply([(RenderedSpec(body["pipeline"]["name"], "test", body), body, False)], reprocess=False)
    return cluster.deployed()[body["pipeline"]["name"]]


def with_annotations(body, **annotations):
    return {**body, "metadata": {"annotations": annotations}}


# (rendered spec, whether the shortcut can decide it, unchanged?)
CASES = {
    "identical": (spec(), True, True),
    "only the commit annotation differs": (
        with_annotations(spec(), **{ANNOTATION_PREFIX + "commit": "c2", "team": "x"}), True, True),
    "another annotation differs": (with_annotations(spec(), **{ANNOTATION_PREFIX + "commit": "c1", "team": "y"}), False, False),
    "description added": (spec(description="new"), False, False),
    "a zero value written out": (spec(description=""), False, True),
    "camelCase keys": ({**spec(), "datumTries": "3"}, False, True),
    "image changed": ({**spec(), "transform": {"image": "busybox:2", "cmd": ["sh"]}}, False, False),
}


@pytest.mark.parametrize("case", CASES)
def test_compare_forms_shortcut_gives_the_full_verdict(pachd, target, case):
    rendered, decided, unchanged = CASES[case]
    cluster, reference = Cluster(target, "default"), Reference(target, "default")
    deployed = deploy(cluster, spec())
    before, after = cluster.compare_forms(deployed, rendered)
    slow_before, slow_after = reference.compare_forms(deployed, rendered)
    assert (before == after) == (slow_before == slow_after) == unchanged
    if pachd.has_defaults:
        assert (cluster._stored_as_sent(deployed, rendered) is not None) == decided


def test_defaults_changed_shortcut_gives_the_full_verdict(pachd, target):
    if not pachd.has_defaults:
        pytest.skip("user and effective specs arrived in pachd 2.8")
    body = spec(description="", parallelism_spec={"constant": 1}, resource_requests={"cpu": 1, "memory": "64M"})
    deployed = deploy(Cluster(target, "default"), body)
    cluster, reference = Cluster(target, "default"), Reference(target, "default")
    # the stored effective JSON omits "" and writes 1 as 1.0; the shortcut still decides: unchanged
    assert cluster._same_effective_as_dicts(deployed)
    assert cluster.defaults_changed(deployed) is reference.defaults_changed(deployed) is False

    pachd.set_project_defaults('{"createPipelineRequest": {"autoscaling": true}}')
    cluster, reference = Cluster(target, "default"), Reference(target, "default")
    assert not cluster._same_effective_as_dicts(deployed)  # falls back to the parsed comparison
    assert cluster.defaults_changed(deployed) is reference.defaults_changed(deployed) is True


FORM_PAIRS = [  # (a, b, same message_form?)
    ({"description": ""}, {}, True),
    ({"datum_tries": "3"}, {"datumTries": 3}, True),
    ({"resource_requests": {"cpu": 1}}, {"resourceRequests": {"cpu": 1.0}}, True),
    ({"autoscaling": False, "input": {"pfs": {"lazy": False}}}, {"input": {"pfs": {}}}, True),
    ({"reprocess_spec": ""}, {}, True),
    ({"transform": {"cmd": []}}, {"transform": {}}, True),
    ({"transform": {"env": {"DEBUG": "0"}}}, {"transform": {"env": {}}}, False),  # map entries stay
    ({"transform": {}}, {}, False),  # an empty message is still set
    ({"egress": {"object_storage": {}}}, {"egress": {}}, False),  # oneof member: presence
    ({"autoscaling": True}, {"autoscaling": False}, False),
    ({"parallelism_spec": {"constant": "2"}}, {"parallelism_spec": {"constant": 3}}, False),
    ({"unknown_field": 1}, {}, False),
]


@pytest.mark.parametrize("a, b, same", FORM_PAIRS)
def test_message_form_equal_only_when_the_messages_are(a, b, same):
    forms_equal = message_form(a, DESCRIPTOR) == message_form(b, DESCRIPTOR)
    assert forms_equal == same
    if forms_equal:
        parse = lambda d: json_format.ParseDict(d, pps_pb2.CreatePipelineRequest(), ignore_unknown_fields=True)
        assert parse(a) == parse(b)


def test_message_form_refuses_a_field_written_twice():
    with pytest.raises(ValueError):
        message_form({"datum_tries": 1, "datumTries": 2}, DESCRIPTOR)


def test_spec_jsons_read_from_the_wire_match_the_parsed_message(pachd, target):
    if not pachd.has_defaults:
        pytest.skip("user and effective specs arrived in pachd 2.8")
    cluster = Cluster(target, "default")
    deploy(cluster, spec(description="ünïcode"))
    (raw,) = cluster.call("ListPipeline", cluster._raw_pipeline_infos, pps_pb2.ListPipelineRequest(details=True))
    user, effective = specs_in_wire(raw)
    assert (user, effective) == specs_of(pps_pb2.PipelineInfo.FromString(raw))
    assert json.loads(user)["description"] == "ünïcode" and effective


def test_states_reads_every_pipeline_in_one_list(pachd, target):
    cluster = Cluster(target, "default")
    cluster.apply([(RenderedSpec(n, "test", spec(n)), spec(n), False) for n in ("a", "b", "c")], reprocess=False)
    seen = len(pachd.calls)
    states = cluster.states(["c", "a"])
    assert list(states) == ["c", "a"] and {s.version for s in states.values()} == {1}
    assert all(s.state.startswith("PIPELINE_") for s in states.values())
    assert pachd.calls[seen:] == ["ListPipeline"]
    with pytest.raises(PachdError, match="pipeline nope not found"):
        cluster.states(["a", "nope"])


def test_a_deployed_spec_is_built_when_read(pachd, target):
    deployed = deploy(Cluster(target, "default"), spec(description="d"))
    assert deployed.spec["description"] == "d" and deployed.spec["pipeline"] == {"name": "a"}


STRING_PAIRS = [  # (a, b, strings_differ?)
    ({"transform": {"image": "busybox:1"}}, {"transform": {"image": "busybox:2"}}, True),
    ({"input": {"pfs": {"repo": "a", "glob": "/*"}}}, {"input": {"pfs": {"repo": "b", "glob": "/*"}}}, True),
    ({"description": "x"}, {}, True),  # an absent string is ""
    ({"description": ""}, {}, False),
    ({"transform": {"cmd": ["a"]}}, {"transform": {"cmd": ["b"]}}, False),  # repeated: no claim
    ({"transform": {"env": {"A": "1"}}}, {"transform": {"env": {"A": "2"}}}, False),  # a map: no claim
    ({"transform": {"image": "x"}}, {}, False),  # a message on one side only: no claim
    ({"datum_tries": 3}, {"datum_tries": 4}, False),  # not a string
    ({"unknown": "a"}, {"unknown": "b"}, False),
]


@pytest.mark.parametrize("a, b, differ", STRING_PAIRS)
def test_strings_differ_only_when_the_messages_do(a, b, differ):
    from invoke_pachyderm.backends.pachd_forms import strings_differ
    from invoke_pachyderm.backends.pps_table import request_descriptor

    for descriptor in (DESCRIPTOR, request_descriptor()):
        forms = [message_form(side, descriptor) for side in (a, b)]
        assert strings_differ(*forms, descriptor) is differ
    if differ:
        parse = lambda d: json_format.ParseDict(d, pps_pb2.CreatePipelineRequest(), ignore_unknown_fields=True)
        assert parse(a) != parse(b)
