"""backends/pps_table.py: CreatePipelineRequest's descriptor as a committed table, so an unchanged
deploy on pachd >= 2.8 compares specs without importing python_pachyderm. The table must be the
installed python-pachyderm's descriptor, and every form pachd_forms builds with it must be the
form the real descriptor gives."""
from __future__ import annotations

import json

import pytest
from python_pachyderm.proto.v2.pps import pps_pb2

from invoke_pachyderm.backends.pachd_forms import message_form, proto_field_names, user_spec_form
from invoke_pachyderm.backends.pps_table import TABLE_FILE, enum, live_table, request_descriptor

REAL = pps_pb2.CreatePipelineRequest.DESCRIPTOR


def test_the_committed_table_is_the_installed_python_pachyderms():
    committed = json.loads(TABLE_FILE.read_text())
    assert committed == live_table(), (
        "pps_table.json is out of date: run python -m invoke_pachyderm.backends.pps_table"
    )
    assert len(committed["messages"]) > 20  # the whole reach of CreatePipelineRequest


SPECS = [
    {"pipeline": {"name": "a", "project": {"name": "p"}}, "transform": {"image": "x:1", "cmd": ["sh"],
     "env": {"DEBUG": "0", "EMPTY": ""}, "secrets": [{"name": "s", "key": "k", "envVar": "E"}]},
     "input": {"cross": [{"pfs": {"repo": "a", "glob": "/*", "lazy": False}},
                         {"cron": {"name": "tick", "spec": "@every 1m", "start": "2026-01-01T00:00:00Z"}}]},
     "parallelismSpec": {"constant": "2"}, "datumTries": "3", "resourceRequests": {"cpu": 1, "memory": "64M"},
     "metadata": {"annotations": {"a": "1"}, "labels": {}}, "schedulingSpec": {"nodeSelector": {"k": "v"}},
     "datumTimeout": "60s", "autoscaling": False, "reprocessSpec": "", "unknown_field": {"x": 1}},
    {"pipeline": {"name": "b"}, "transform": {"image": "x"}, "input": {"pfs": {"repo": "r", "glob": "/"}},
     "egress": {"objectStorage": {}}, "service": {"type": "NodePort", "internalPort": 80}, "spout": None,
     "sidecarResourceLimits": {"gpu": {"type": "nvidia", "number": "1"}}, "s3Out": True, "tfJob": {}},
    {"pipeline": {"name": "c"}, "datum_tries": 0, "parallelism_spec": {"constant": 0}, "description": ""},
]


@pytest.mark.parametrize("spec", SPECS, ids=["rich", "oneofs", "zeros"])
def test_forms_made_with_the_table_are_the_forms_made_with_the_descriptor(spec):
    table = request_descriptor()
    assert proto_field_names(spec, table) == proto_field_names(spec, REAL)
    assert message_form(spec, table) == message_form(spec, REAL)
    assert user_spec_form(spec, "default", table) == user_spec_form(spec, "default", REAL)


def test_pipeline_states_are_named_as_protobuf_names_them():
    states = enum("pps_v2.PipelineState")
    for value in pps_pb2.PipelineState.DESCRIPTOR.values:
        assert states.Name(value.number) == pps_pb2.PipelineState.Name(value.number)
    with pytest.raises(ValueError):
        states.Name(999)
    with pytest.raises(ValueError):
        pps_pb2.PipelineState.Name(999)
