"""A PipelineInfo read from its wire bytes: the few small fields a deploy reads, the Details kept as
bytes (parsed only if the spec is read).

python-pachyderm's generated classes run on pure-Python protobuf (protobuf 3.20, no C extension
for them), where parsing a ListPipeline of 200 pipelines with details takes ~0.1 s, nearly all
of it in Details nobody reads on an unchanged deploy. Here only the top level of the message
(and of Pipeline, Project, Details, Metadata) is walked, with protobuf's rules: for a message
field sent more than once the parts are merged (their bytes concatenated), for a scalar the last
one wins, unknown fields are skipped. Anything else (a known field with another wire type,
groups, a malformed varint, truncation) raises `Unusual`: the caller then parses the message
with protobuf itself, so odd input gets protobuf's own answer (or its own error).
"""
from __future__ import annotations

from dataclasses import dataclass, field

# pps.proto PipelineInfo field numbers
_PIPELINE, _VERSION, _STATE, _REASON, _DETAILS, _USER_SPEC, _EFFECTIVE_SPEC = 1, 2, 5, 6, 12, 13, 14
# PipelineInfo.Details: reason, metadata; Metadata: annotations (map<string, string>)
_DETAILS_REASON, _DETAILS_METADATA, _ANNOTATIONS = 17, 29, 1
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_UINT64 = (1 << 64) - 1


class Unusual(ValueError):
    """Bytes this reader leaves to protobuf."""


@dataclass
class PipelineInfoParts:
    name: str = ""
    project: str = ""
    version: int = 0
    state: int = 0
    reason: str = ""
    details: bytes | None = None  # None: no field 12 sent
    user_spec_json: str = ""
    effective_spec_json: str = ""
    details_reason: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


def read_pipeline_info(raw: bytes) -> PipelineInfoParts:
    """The parts of a PipelineInfo a deploy reads (Unusual: parse it with protobuf instead)."""
    parts = PipelineInfoParts()
    pipeline, details = [], []
    for number, wire_type, start, end in fields(raw):
        if number == _PIPELINE:
            pipeline.append(_message(raw, wire_type, start, end))
        elif number == _VERSION:
            parts.version = _scalar(raw, wire_type, start) & _UINT64
        elif number == _STATE:
            parts.state = _int32(_scalar(raw, wire_type, start))
        elif number == _REASON:
            parts.reason = _text(raw, wire_type, start, end)
        elif number == _DETAILS:
            details.append(_message(raw, wire_type, start, end))
        elif number == _USER_SPEC:
            parts.user_spec_json = _text(raw, wire_type, start, end)
        elif number == _EFFECTIVE_SPEC:
            parts.effective_spec_json = _text(raw, wire_type, start, end)
    parts.name, parts.project = _pipeline(b"".join(pipeline))
    if details:
        parts.details = b"".join(details)
        parts.details_reason, parts.annotations = _details_summary(parts.details)
    return parts


def _pipeline(raw: bytes) -> tuple[str, str]:
    """(name, project name) of a pps Pipeline."""
    name, project = "", []
    for number, wire_type, start, end in fields(raw):
        if number == 1:
            name = _text(raw, wire_type, start, end)
        elif number == 2:
            project.append(_message(raw, wire_type, start, end))
    project_name = ""
    joined = b"".join(project)
    for number, wire_type, start, end in fields(joined):
        if number == 1:
            project_name = _text(joined, wire_type, start, end)
    return name, project_name


def _details_summary(raw: bytes) -> tuple[str, dict[str, str]]:
    """(reason, metadata annotations) of a PipelineInfo.Details."""
    reason, metadata = "", []
    for number, wire_type, start, end in fields(raw):
        if number == _DETAILS_REASON:
            reason = _text(raw, wire_type, start, end)
        elif number == _DETAILS_METADATA:
            metadata.append(_message(raw, wire_type, start, end))
    annotations: dict[str, str] = {}
    joined = b"".join(metadata)
    for number, wire_type, start, end in fields(joined):
        if number == _ANNOTATIONS:
            key, value = _map_entry(_entry_bytes(joined, wire_type, start, end))
            annotations[key] = value
    return reason, annotations


def _entry_bytes(raw: bytes, wire_type: int, start: int, end: int) -> bytes:
    if wire_type != _LENGTH:
        raise Unusual("map entry with another wire type")
    return raw[start:end]


def _map_entry(raw: bytes) -> tuple[str, str]:
    key = value = ""
    for number, wire_type, start, end in fields(raw):
        if number == 1:
            key = _text(raw, wire_type, start, end)
        elif number == 2:
            value = _text(raw, wire_type, start, end)
    return key, value


def fields(raw: bytes):
    """(field number, wire type, payload start, payload end) of each top-level field; for a
    varint field the payload is the varint itself."""
    position, end = 0, len(raw)
    while position < end:
        key = raw[position]
        if key < 0x80:  # a one-byte varint (fields 1-15), read here: varint_at's answer, faster
            position += 1
        else:
            key, position = varint_at(raw, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise Unusual("field number 0")
        start = position
        if wire_type == _VARINT:
            _, position = varint_at(raw, position)
        elif wire_type == _LENGTH:
            if position < end and raw[position] < 0x80:  # a length below 128, likewise
                start = position + 1
                position = start + raw[position]
            else:
                length, start = varint_at(raw, position)
                position = start + length
        elif wire_type == _FIXED64:
            position += 8
        elif wire_type == _FIXED32:
            position += 4
        else:
            raise Unusual(f"wire type {wire_type}")
        if position > end:
            raise Unusual("truncated")
        yield number, wire_type, start, position


def varint_at(raw: bytes, position: int) -> tuple[int, int]:
    """(value, position after it) of the varint at `position`."""
    result = shift = 0
    for position in range(position, min(position + 10, len(raw))):
        byte = raw[position]
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position + 1
        shift += 7
    raise Unusual("bad varint")


def _scalar(raw: bytes, wire_type: int, start: int) -> int:
    if wire_type != _VARINT:
        raise Unusual("a varint field with another wire type")
    return varint_at(raw, start)[0]


def _int32(value: int) -> int:
    """An enum's varint as protobuf reads it (int32: the low 32 bits, signed)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


def _message(raw: bytes, wire_type: int, start: int, end: int) -> bytes:
    if wire_type != _LENGTH:
        raise Unusual("a message field with another wire type")
    return raw[start:end]


def _text(raw: bytes, wire_type: int, start: int, end: int) -> str:
    if wire_type != _LENGTH:
        raise Unusual("a string field with another wire type")
    try:
        return raw[start:end].decode("utf-8")
    except UnicodeDecodeError:
        raise Unusual("a string that is not UTF-8") from None


def string_field(raw: bytes, number: int) -> str:
    """The string field `number` of a message (the last one sent wins; "" when absent)."""
    found = ""
    for field_number, wire_type, start, end in fields(raw):
        if field_number == number:
            found = _text(raw, wire_type, start, end)
    return found


def length_delimited(number: int, payload: bytes) -> bytes:
    """Field `number` holding `payload` (a string, bytes or an embedded message), encoded."""
    return _varint_bytes(number << 3 | _LENGTH) + _varint_bytes(len(payload)) + payload


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
