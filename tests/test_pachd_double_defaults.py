"""The double's pachd >= 2.8 model: defaults, effective specs, CreatePipelineV2.

Each test named after a Go test carries over that test's expectations from pachyderm's
src/server/pps/server/defaults_test.go (or api_server_test.go where said)."""
from __future__ import annotations

import json

import grpc
import pytest
import python_pachyderm
from google.protobuf import json_format
from python_pachyderm.proto.v2.pps import pps_pb2

from invoke_pachyderm.testing.pachd_double import PachdDouble
from invoke_pachyderm.backends.pachd_v28 import METHODS, SERVICE, messages, specs_of


@pytest.fixture
def double():
    with PachdDouble(version="2.12.0") as d:
        d.create_repo("input")
        yield d


def call(double, method, **fields):
    m = messages()
    request_type, response_type = (getattr(m, t) for t in METHODS[method])
    channel = grpc.insecure_channel(double.address)
    try:
        stub = channel.unary_unary(SERVICE + method, request_serializer=request_type.SerializeToString,
                                   response_deserializer=response_type.FromString)
        return stub(request_type(**fields))
    finally:
        channel.close()


def spec_json(**extra) -> str:
    spec = {
        "pipeline": {"project": {"name": "default"}, "name": "pipeline"},
        "transform": {"cmd": ["cp", "r", "/pfs/in", "/pfs/out"]},
        "input": {"pfs": {"project": "default", "repo": "input", "glob": "/*", "name": "in"}},
        **extra,
    }
    return json.dumps(spec)


def effective(response) -> pps_pb2.CreatePipelineRequest:
    return json_format.Parse(response.effective_create_pipeline_request_json, pps_pb2.CreatePipelineRequest())


def stored_effective(double, name="pipeline") -> pps_pb2.CreatePipelineRequest:
    return json_format.Parse(double.user_spec_json(name)[1], pps_pb2.CreatePipelineRequest())


def test_CreatePipelineV2_noDefaults(double):
    baseline = call(double, "GetClusterDefaults").cluster_defaults_json
    assert baseline != "", "baseline cluster defaults must not be missing"
    defaults = json.loads(baseline)["createPipelineRequest"]
    response = call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json(
        resource_requests={"cpu": None, "disk": "187Mi"}, autoscaling=False))
    request = effective(response)
    assert not request.autoscaling, "spec must override default"
    assert request.resource_requests.cpu == 0, "CPU request must be deleted"
    assert request.resource_requests.disk == "187Mi", "disk request must be overridden"
    assert request.resource_requests.memory == defaults["resourceRequests"]["memory"]
    assert request.HasField("sidecar_resource_requests"), "unspecified object must be default"


def test_CreatePipelineV2_defaults(double):
    call(double, "SetClusterDefaults",
         cluster_defaults_json='{"create_pipeline_request": {"datum_tries": 17, "autoscaling": true}}')
    request = effective(call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json(autoscaling=False)))
    assert request.datum_tries == 17, "cluster default is effective"
    assert not request.autoscaling, "spec must override default"
    assert len(request.transform.cmd) == 4


def test_CreatePipelineV2_projectDefaults(double):
    call(double, "SetClusterDefaults",
         cluster_defaults_json='{"create_pipeline_request": {"datum_tries": 17, "autoscaling": true}}')
    m = messages()
    call(double, "SetProjectDefaults", project=m.Project(name="default"),
         project_defaults_json='{"create_pipeline_request": {"datum_tries": 13}}')
    request = effective(call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json(autoscaling=False)))
    assert request.datum_tries == 13
    assert not request.autoscaling


def test_SetClusterDefaults_regenerate(double):
    call(double, "SetClusterDefaults",
         cluster_defaults_json='{"create_pipeline_request": {"datum_tries": 17, "autoscaling": true}}')
    m = messages()
    call(double, "SetProjectDefaults", project=m.Project(name="default"),
         project_defaults_json='{"create_pipeline_request": {"datum_tries": 13}}')
    call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json(autoscaling=False))
    response = call(double, "SetClusterDefaults", regenerate=True,
                    cluster_defaults_json='{"create_pipeline_request": {"datum_tries": 4, "autoscaling": true}}')
    request = stored_effective(double)
    assert request.datum_tries == 13, "project default is effective"
    assert request.autoscaling is False, "autoscaling is still false"
    # the effective spec did not change, so nothing was regenerated (proto.Equal)
    assert list(response.affected_pipelines) == []
    assert double.pipeline_versions() == {"pipeline": 1}


def test_CreatePipelineV2_delete(double):
    call(double, "SetClusterDefaults", cluster_defaults_json="{}")
    request = effective(call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json(autoscaling=False)))
    assert request.datum_tries == 3, "built-in default"
    response = call(double, "SetClusterDefaults", regenerate=True,
                    cluster_defaults_json='{"create_pipeline_request": {"datum_tries": 4, "autoscaling": true}}')
    request = stored_effective(double)
    assert request.datum_tries == 4, "cluster default is effective"
    assert request.autoscaling is False, "autoscaling is still false"
    assert [p.name for p in response.affected_pipelines] == ["pipeline"]
    assert double.pipeline_versions() == {"pipeline": 2}, "regenerate makes a new version"


def test_GetProjectDefaults(double):
    m = messages()
    assert call(double, "GetProjectDefaults").project_defaults_json == "{}", "empty request is the default project"
    with pytest.raises(grpc.RpcError) as raised:
        call(double, "GetProjectDefaults", project=m.Project(name="does-not-exist"))
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_2_8_migration_writes_resource_request_defaults(double):
    """src/internal/clusterstate/v2.8.0/defaults.go defaultsFromEnv, with no variables set."""
    defaults = json.loads(call(double, "GetClusterDefaults").cluster_defaults_json)["createPipelineRequest"]
    for key in ("resourceRequests", "sidecarResourceRequests"):
        assert defaults[key] == {"cpu": 1, "memory": "256Mi", "disk": "1Gi"}


def test_legacy_create_pipeline_loses_explicit_zero_values(double):
    """CreatePipeline re-marshals the request with protojson: `autoscaling: false` is gone before
    the merge, so a project default of true wins. CreatePipelineV2 keeps it."""
    m = messages()
    call(double, "SetProjectDefaults", project=m.Project(name="default"),
         project_defaults_json='{"createPipelineRequest": {"autoscaling": true}}')
    client = python_pachyderm.Client(host=double.host, port=double.port)
    legacy = json_format.Parse(spec_json(autoscaling=False), pps_pb2.CreatePipelineRequest())
    client.create_pipeline_from_request(legacy)
    assert stored_effective(double).autoscaling is True
    user_json, _ = double.user_spec_json("pipeline")
    assert "autoscaling" not in json.loads(user_json)
    call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json(autoscaling=False), update=True)
    assert stored_effective(double).autoscaling is False
    assert json.loads(double.user_spec_json("pipeline")[0])["autoscaling"] is False


def test_dry_run_changes_nothing(double):
    response = call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json(), dry_run=True)
    assert effective(response).pipeline.name == "pipeline"
    assert double.pipeline_versions() == {}


def test_unknown_field_is_a_bad_request(double):
    """makeMessageCanonicalizer: "unexpected field" -> createPipeline's badRequest."""
    with pytest.raises(grpc.RpcError) as raised:
        call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json(no_such_field=1))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'unexpected field "no_such_field"' in raised.value.details()


def test_v2_in_a_transaction_applies_when_it_finishes(double):
    client = python_pachyderm.Client(host=double.host, port=double.port)
    txn = client.start_transaction()
    m = messages()
    channel = grpc.insecure_channel(double.address)
    stub = channel.unary_unary(SERVICE + "CreatePipelineV2", request_serializer=m.CreatePipelineV2Request.SerializeToString,
                               response_deserializer=m.CreatePipelineV2Response.FromString)
    stub(m.CreatePipelineV2Request(create_pipeline_request_json=spec_json()), metadata=[("pach-transaction", txn.id)])
    channel.close()
    assert double.pipeline_versions() == {}
    client.finish_transaction(txn)
    assert double.pipeline_versions() == {"pipeline": 1}


def test_update_without_reprocess_keeps_the_salt(double):
    """initializePipelineInfo: `if !request.Reprocess { Salt = old salt }`."""
    call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json())
    client = python_pachyderm.Client(host=double.host, port=double.port)
    salt = lambda: list(client.inspect_pipeline("pipeline", details=True))[0].details.salt  # noqa: E731
    first = salt()
    call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json(description="x"), update=True)
    assert salt() == first
    call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json(), update=True, reprocess=True)
    assert salt() != first


def test_info_carries_user_and_effective_spec_json(double):
    call(double, "CreatePipelineV2", create_pipeline_request_json=spec_json())
    client = python_pachyderm.Client(host=double.host, port=double.port)
    info = list(client.inspect_pipeline("pipeline", details=True))[0]
    user_json, effective_json = specs_of(info)
    assert user_json == spec_json()
    assert json.loads(effective_json)["resourceRequests"]["memory"] == "256Mi"


def test_no_defaults_rpcs_before_2_8():
    with PachdDouble(version="2.7.8") as old:
        with pytest.raises(grpc.RpcError) as raised:
            call(old, "GetClusterDefaults")
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_pipeline_name_with_trailing_newline_is_invalid(double):
    """Go's `^...$` does not match before a final newline (ancestry.ValidateName)."""
    with pytest.raises(grpc.RpcError) as raised:
        call(double, "CreatePipelineV2", create_pipeline_request_json=json.dumps(
            {"pipeline": {"name": "edges\n"}, "transform": {"cmd": ["x"]},
             "input": {"pfs": {"repo": "input", "glob": "/*"}}}))
    assert "invalid pipeline name" in raised.value.details()
