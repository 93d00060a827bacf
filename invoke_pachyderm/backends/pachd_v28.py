"""The pachd >= 2.8 messages python-pachyderm 7.6 lacks, built at run time in a private pool.

python-pachyderm 7.6's protos predate 2.8 (no CreatePipelineV2, no defaults RPCs), and
protobuf >= 4 cannot load its generated code, so pachyderm-sdk cannot share its environment.
Rather than a second client, the few messages needed are declared here from
src/pps/pps.proto and src/transaction/transaction.proto (pachd 2.8-2.12 field numbers), in a
descriptor pool of their own so they never clash with python-pachyderm's `pps_v2` classes.

Embedded messages that python-pachyderm already has (CreatePipelineRequest) are declared as
`bytes`: the same wire type, so they parse with python-pachyderm's own class.
Building the pool costs about a millisecond; it happens on first use only.
"""
from __future__ import annotations

import functools
from types import SimpleNamespace

PACKAGE = "pps_v2"
SERVICE = "/pps_v2.API/"

_STRING, _BOOL, _BYTES, _MESSAGE = 9, 8, 12, 11
_OPTIONAL, _REPEATED = 1, 3

# message name -> [(field name, number, type, label, message type)]
_MESSAGES: dict[str, list[tuple]] = {
    "Project": [("name", 1, _STRING, _OPTIONAL, None)],  # pfs.proto Project
    "Pipeline": [("name", 1, _STRING, _OPTIONAL, None), ("project", 2, _MESSAGE, _OPTIONAL, "Project")],
    "CreatePipelineV2Request": [
        ("create_pipeline_request_json", 1, _STRING, _OPTIONAL, None),
        ("dry_run", 2, _BOOL, _OPTIONAL, None),
        ("update", 3, _BOOL, _OPTIONAL, None),
        ("reprocess", 4, _BOOL, _OPTIONAL, None),
    ],
    "CreatePipelineV2Response": [("effective_create_pipeline_request_json", 1, _STRING, _OPTIONAL, None)],
    "GetClusterDefaultsRequest": [],
    "GetClusterDefaultsResponse": [("cluster_defaults_json", 2, _STRING, _OPTIONAL, None)],
    "SetClusterDefaultsRequest": [
        ("regenerate", 2, _BOOL, _OPTIONAL, None),
        ("reprocess", 3, _BOOL, _OPTIONAL, None),
        ("dry_run", 4, _BOOL, _OPTIONAL, None),
        ("cluster_defaults_json", 5, _STRING, _OPTIONAL, None),
    ],
    "SetClusterDefaultsResponse": [("affected_pipelines", 2, _MESSAGE, _REPEATED, "Pipeline")],
    "GetProjectDefaultsRequest": [("project", 1, _MESSAGE, _OPTIONAL, "Project")],
    "GetProjectDefaultsResponse": [
        ("project_defaults_json", 1, _STRING, _OPTIONAL, None),
        ("created_by", 2, _STRING, _OPTIONAL, None),
    ],
    "SetProjectDefaultsRequest": [
        ("project", 1, _MESSAGE, _OPTIONAL, "Project"),
        ("regenerate", 2, _BOOL, _OPTIONAL, None),
        ("reprocess", 3, _BOOL, _OPTIONAL, None),
        ("dry_run", 4, _BOOL, _OPTIONAL, None),
        ("project_defaults_json", 5, _STRING, _OPTIONAL, None),
    ],
    "SetProjectDefaultsResponse": [("affected_pipelines", 1, _MESSAGE, _REPEATED, "Pipeline")],
    # PipelineInfo fields 13/14 (python-pachyderm calls 13 `details_json`; it knows no 14).
    "PipelineInfoSpecs": [
        ("user_spec_json", 13, _STRING, _OPTIONAL, None),
        ("effective_spec_json", 14, _STRING, _OPTIONAL, None),
    ],
    # transaction.proto CreatePipelineTransaction; field 1 is a CreatePipelineRequest.
    "CreatePipelineTransaction": [
        ("create_pipeline_request", 1, _BYTES, _OPTIONAL, None),
        ("user_json", 2, _STRING, _OPTIONAL, None),
        ("effective_json", 3, _STRING, _OPTIONAL, None),
        ("created_by", 4, _STRING, _OPTIONAL, None),
    ],
    # TransactionRequest field 11 `create_pipeline_v2` (a CreatePipelineTransaction).
    "TransactionRequestV28": [("create_pipeline_v2", 11, _BYTES, _OPTIONAL, None)],
}

# RPC name -> (request message, response message)
METHODS = {
    "CreatePipelineV2": ("CreatePipelineV2Request", "CreatePipelineV2Response"),
    "GetClusterDefaults": ("GetClusterDefaultsRequest", "GetClusterDefaultsResponse"),
    "SetClusterDefaults": ("SetClusterDefaultsRequest", "SetClusterDefaultsResponse"),
    "GetProjectDefaults": ("GetProjectDefaultsRequest", "GetProjectDefaultsResponse"),
    "SetProjectDefaults": ("SetProjectDefaultsRequest", "SetProjectDefaultsResponse"),
}


@functools.lru_cache(maxsize=None)
def messages() -> SimpleNamespace:
    """The message classes, by name (`messages().CreatePipelineV2Request`)."""
    from invoke_pachyderm.backends.pachd_early import load_protobuf

    load_protobuf()  # see there: one thread at a time
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    file_proto = descriptor_pb2.FileDescriptorProto(
        name="invoke_pachyderm/pps_v28.proto", package=PACKAGE, syntax="proto3"
    )
    for name, fields in _MESSAGES.items():
        message = file_proto.message_type.add(name=name)
        for field_name, number, kind, label, type_name in fields:
            field = message.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                field.type_name = f".{PACKAGE}.{type_name}"
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file_proto)
    factory = message_factory.MessageFactory(pool)
    return SimpleNamespace(
        **{
            name: factory.GetPrototype(pool.FindMessageTypeByName(f"{PACKAGE}.{name}"))
            for name in _MESSAGES
        }
    )


def specs_of(info) -> tuple[str, str]:
    """(user_spec_json, effective_spec_json) of a python-pachyderm PipelineInfo (empty before 2.8)."""
    specs = messages().PipelineInfoSpecs.FromString(info.SerializeToString())
    return specs.user_spec_json, specs.effective_spec_json


def specs_in_wire(raw: bytes) -> tuple[str, str]:
    """(user_spec_json, effective_spec_json) read from a PipelineInfo's wire bytes: only its
    top-level fields are walked, nothing else is decoded (pure-Python protobuf would parse the
    whole message again)."""
    found = {13: "", 14: ""}
    position, end = 0, len(raw)
    while position < end:
        key, position = _varint(raw, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, position = _varint(raw, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 5:
            position += 4
        elif wire_type == 2:
            length, position = _varint(raw, position)
            if number in found:
                found[number] = raw[position:position + length].decode("utf-8")
            position += length
        else:
            raise ValueError(f"PipelineInfo: wire type {wire_type} at byte {position}")
    if position != end:
        raise ValueError("PipelineInfo: truncated")
    return found[13], found[14]


def _varint(raw: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = raw[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
