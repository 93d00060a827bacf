"""Cluster and project defaults and the effective spec, as pachd >= 2.8 computes them.

Sources (pachyderm/pachyderm, src/server/pps/server/defaults.go unless noted):

* ``builtInDefaults``: transform.image, output_branch, datum_tries, reprocess_spec.
* ``synthesizeClusterDefaults`` / ``defaultsFromEnv`` (src/internal/clusterstate/v2.8.0/defaults.go):
  the 2.8.0 migration stores resource_requests and sidecar_resource_requests of cpu 1,
  memory "256Mi", disk "1Gi" as the cluster defaults.
* ``makeMessageCanonicalizer``: before merging, every key becomes its protobuf JSON name
  (``resource_requests`` -> ``resourceRequests``) and enum numbers become names; a key
  the message does not have is an error ("unexpected field").
* ``mergePatch``: RFC 7396 - objects merge key by key, ``null`` deletes, anything else replaces.
* ``makeEffectiveSpec``: built-in <- cluster <- project defaults <- the user's JSON wrapped as
  ``{"createPipelineRequest": ...}``; the effective JSON is Go's ``json.Marshal`` of the merged
  object (keys sorted), and the request is ``protojson.Unmarshal`` of it.

This module is the double's own reading of that code; the client does not import it.
"""
from __future__ import annotations

import json
from typing import Any

import grpc
from google.protobuf import json_format
from python_pachyderm.proto.v2.pps import pps_pb2


from .errors import RpcFailure

DEFAULT_USER_IMAGE = "ubuntu:20.04"

BUILT_IN_DEFAULTS_JSON = json.dumps(
    {
        "createPipelineRequest": {
            "transform": {"image": DEFAULT_USER_IMAGE},
            "outputBranch": "master",
            "datumTries": "3",
            "reprocessSpec": "until_success",
        }
    }
)

# v2.8.0 defaultsFromEnv with no PIPELINE_DEFAULT_* / SIDECAR_DEFAULT_* variables set.
MIGRATION_CLUSTER_DEFAULTS_JSON = json.dumps(
    {
        "createPipelineRequest": {
            "resourceRequests": {"cpu": 1, "memory": "256Mi", "disk": "1Gi"},
            "sidecarResourceRequests": {"cpu": 1, "memory": "256Mi", "disk": "1Gi"},
        }
    }
)

_WELL_KNOWN = {
    "google.protobuf.Timestamp", "google.protobuf.Duration", "google.protobuf.Any",
    "google.protobuf.Struct", "google.protobuf.ListValue", "google.protobuf.Value",
    "google.protobuf.FieldMask", "google.protobuf.Empty", "google.protobuf.Int32Value",
    "google.protobuf.Int64Value", "google.protobuf.UInt32Value", "google.protobuf.UInt64Value",
    "google.protobuf.FloatValue", "google.protobuf.DoubleValue", "google.protobuf.StringValue",
    "google.protobuf.BytesValue", "google.protobuf.NullValue",
}


class DefaultsError(Exception):
    pass


def canonicalize(value: Any, descriptor) -> Any:
    """makeMessageCanonicalizer: keys to JSON names, enum numbers to names, recursively."""
    if descriptor.full_name in _WELL_KNOWN:
        return value
    if not isinstance(value, dict):
        raise DefaultsError(f"expected map[string]any for {descriptor.full_name}; got {type(value).__name__}")
    fields = {}
    for field in descriptor.fields:
        fields[field.name] = field
        fields[field.json_name] = field
    result: dict[str, Any] = {}
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            raise DefaultsError(f'unexpected field "{key}" in {descriptor.full_name}')
        if item is None:
            result[field.json_name] = None
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            result[field.json_name] = {k: _canonical_scalar(v, value_field) for k, v in item.items()}
        elif field.label == field.LABEL_REPEATED:
            if not isinstance(item, list):
                raise DefaultsError(f"expected []any; got {type(item).__name__} in {field.full_name}")
            result[field.json_name] = [None if o is None else _canonical_scalar(o, field) for o in item]
        else:
            result[field.json_name] = _canonical_scalar(item, field)
    return result


def _canonical_scalar(value: Any, field) -> Any:
    if value is None:
        return None
    if field.message_type is not None:
        return canonicalize(value, field.message_type)
    if field.enum_type is not None and isinstance(value, int) and not isinstance(value, bool):
        enum_value = field.enum_type.values_by_number.get(value)
        return enum_value.name if enum_value else value
    return value


def merge_patch(target: Any, patch: Any) -> Any:
    """mergePatch (RFC 7396)."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = merge_patch(merged.get(name), value)
    return merged


def _cluster_defaults_descriptor():
    """pps.ClusterDefaults {CreatePipelineRequest create_pipeline_request = 3}: only that field."""
    return _WrapperDescriptor()


class _WrapperDescriptor:
    full_name = "pps_v2.ClusterDefaults"

    class _Field:
        name = "create_pipeline_request"
        json_name = "createPipelineRequest"
        label = 1
        LABEL_REPEATED = 3
        enum_type = None
        message_type = pps_pb2.CreatePipelineRequest.DESCRIPTOR

    fields = [_Field]


def _json_merge_patch(target: str, patch: str) -> dict:
    """jsonMergePatch with the ClusterDefaults canonicalizer."""
    try:
        target_object = json.loads(target)
        patch_object = json.loads(patch)
    except ValueError as error:
        raise DefaultsError(f"could not unmarshal JSON: {error}") from None
    wrapper = _cluster_defaults_descriptor()
    return merge_patch(canonicalize(target_object, wrapper), canonicalize(patch_object, wrapper))


def make_effective_spec(cluster_json: str, project_json: str, user_json: str):
    """makeEffectiveSpec -> (effective JSON, CreatePipelineRequest); RpcFailure InvalidArgument."""
    try:
        cluster = _json_merge_patch(BUILT_IN_DEFAULTS_JSON, cluster_json or "{}")
        project = _json_merge_patch(json.dumps(cluster), project_json or "{}")
        try:
            user = json.loads(user_json)
        except ValueError as error:
            raise DefaultsError(f"could not unmarshal user spec: {error}") from None
        wrapped = _json_merge_patch(json.dumps(project), json.dumps({"createPipelineRequest": user}))
        effective = wrapped.get("createPipelineRequest", {})
        effective_json = json.dumps(effective, sort_keys=True, separators=(",", ":"))
        request = json_format.ParseDict(effective, pps_pb2.CreatePipelineRequest())
    except (DefaultsError, json_format.ParseError) as error:
        # createPipeline wraps makeEffectiveSpec's errors as a bad request
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"could not make effective spec: {error}") from None
    return effective_json, request


def check_defaults_json(defaults_json: str, what: str) -> None:
    """SetClusterDefaults / SetProjectDefaults: the JSON must merge (makeEffectiveSpec with `{}`)."""
    try:
        _json_merge_patch(BUILT_IN_DEFAULTS_JSON, defaults_json or "{}")
    except DefaultsError as error:
        raise RpcFailure(grpc.StatusCode.INVALID_ARGUMENT, f"invalid {what} JSON: {error}") from None


def protojson(request: pps_pb2.CreatePipelineRequest) -> str:
    """protojson.Marshal: JSON names, zero values left out (what legacy CreatePipeline stores)."""
    return json.dumps(json_format.MessageToDict(request), separators=(",", ":"))


def parse_effective(effective_json: str) -> pps_pb2.CreatePipelineRequest:
    return json_format.ParseDict(json.loads(effective_json or "{}"), pps_pb2.CreatePipelineRequest())


def equal_effective(old_json: str, new_request: pps_pb2.CreatePipelineRequest) -> bool:
    """SetClusterDefaults' proto.Equal of the old and the regenerated effective spec."""
    try:
        return parse_effective(old_json) == new_request
    except (ValueError, json_format.ParseError):
        return False
