"""Derive a JSON Schema of Pachyderm's pipeline spec from the protobuf definitions.

The schema is generated from the descriptor of ``pps_v2.CreatePipelineRequest``
shipped in python-pachyderm, never typed by hand, and follows the proto3 JSON
mapping that ``pachctl create pipeline`` (and ``json_format.ParseDict``) apply:

* every field may be spelled with its proto name (``parallelism_spec``, what
  the Pachyderm docs use) or its ``json_name`` (``parallelismSpec``), never both;
* 64-bit integers may be JSON numbers or decimal strings, 32-bit ones are numbers;
* enums are value names or numbers; bytes are base64; maps are objects;
* well-known types (Duration, Timestamp, Struct, wrappers...) use their special
  JSON forms (``"60s"``, RFC 3339, any object, the bare primitive...).

The output is shipped as ``invoke_pachyderm/stages/pipeline_spec.schema.json`` so that
validating at run time needs neither protobuf nor python_pachyderm.  Regenerate
it with::

    python -m invoke_pachyderm.stages.schema_gen > invoke_pachyderm/stages/pipeline_spec.schema.json

``tests/test_schema.py`` fails if the shipped file and a fresh generation differ.

Deliberately stricter than python's ParseDict (each is more likely a template
bug than intent; tests/test_schema.py lists them): ``null`` is rejected as a
field value (ParseDict reads it as "unset"), enum values must be names or defined
numbers, 32-bit integers and floats must be JSON numbers (not quoted), integer
strings must be canonical decimals (no ``+``, ``_``, leading zeros), durations
have at most 9 fractional digits, and a field given in both spellings at once is
rejected (ParseDict lets the later one win; Go's JSON parsers, which pachctl and
pachd use, reject it).
"""
from __future__ import annotations

import copy
import json
import sys
from typing import Any

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ROOT_MESSAGE = "pps_v2.CreatePipelineRequest"

# Rules pachd enforces when it creates a pipeline that the proto cannot express
# (proto3 has no required fields).  They come from pachd's
# validatePipelineRequest ("request.Pipeline cannot be nil",
# "request.Pipeline.Name cannot be empty", "pipeline must specify a transform")
# and are kept apart from the derived part so it stays obvious which parts of
# the schema are hand-written.  The name's character set and maximum length are
# left out on purpose: they changed between pachd releases.
# Shape: a JSON Schema fragment merged into the root schema, next to its $ref to
# CreatePipelineRequest; every field named here must exist in the proto with
# json_name == name (checked at generation time).
PACHD_RULES: dict[str, Any] = {
    "required": ["pipeline", "transform"],
    "properties": {
        "pipeline": {
            "required": ["name"],
            "properties": {"name": {"minLength": 1}},
        },
    },
}

_INT32 = (-(2**31), 2**31 - 1)
_UINT32 = (0, 2**32 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_UINT64 = (0, 2**64 - 1)
_FLOAT32_MAX = 3.4028234663852886e38
_DURATION_SECONDS_MAX = 315576000000  # google/protobuf/duration.proto: +-10,000 years

# Base64, standard or URL-safe alphabet, padding optional (ParseDict pads itself).
_BASE64_PATTERN = r"^[A-Za-z0-9+/_-]*={0,2}$"
# RFC 3339 as google.protobuf.Timestamp reads it: years 0001-9999, real calendar
# dates (leap years included), up to 9 fractional digits, "Z" or a +-hh:mm offset.
_YEAR = r"([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
_MONTH_DAY = (
    r"((0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
    r"|(0[13-9]|1[0-2])-(29|30)"
    r"|(0[13578]|1[02])-31)"
)
_LEAP_DAY = r"([0-9]{2}(0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)-02-29"
_TIMESTAMP_PATTERN = (
    rf"^({_YEAR}-{_MONTH_DAY}|{_LEAP_DAY})"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,9})?"
    r"(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)


def _upto(limit: int) -> str:
    """Regex alternatives for the canonical decimals 0..limit (no leading zeros)."""
    digits = str(limit)
    width = len(digits)
    alternatives = ["0"]
    if width >= 2:
        alternatives.append("[1-9]" if width == 2 else "[1-9][0-9]{0,%d}" % (width - 2))
    # Numbers with exactly `width` digits, <= limit: share a prefix with limit,
    # then one smaller digit, then anything.
    for i, digit in enumerate(digits):
        low = 1 if i == 0 else 0
        high = int(digit) - 1
        if high < low:
            continue
        head = digits[:i]
        klass = str(low) if low == high else "[%d-%d]" % (low, high)
        rest = width - i - 1
        tail = "" if rest == 0 else ("[0-9]" if rest == 1 else "[0-9]{%d}" % rest)
        alternatives.append(head + klass + tail)
    if width >= 2 or limit > 0:
        alternatives.append(digits)
    return "|".join(dict.fromkeys(alternatives))  # dedupe, keep order


def decimal_pattern(low: int, high: int) -> str:
    """An anchored regex accepting exactly the canonical decimal strings in [low, high]."""
    if not low <= 0 <= high:
        raise ValueError("only ranges containing 0 are supported")
    parts = ["(%s)" % _upto(high)]
    if low < 0:
        parts.insert(0, "-(%s)" % _upto(-low))
    return "^(%s)$" % "|".join(parts)


def _duration_pattern() -> str:
    seconds = _upto(_DURATION_SECONDS_MAX)
    return r"^-?(%s)(\.[0-9]{1,9})?s$" % seconds


def _int_schema(bounds: tuple[int, int], wide: bool) -> dict[str, Any]:
    low, high = bounds
    if not wide:
        return {"type": "integer", "minimum": low, "maximum": high}
    # proto3 JSON writes 64-bit integers as strings (JavaScript numbers lose
    # precision) and reads either form.  `pattern` only applies to strings and
    # `minimum`/`maximum` only to numbers, so one schema covers both forms.
    return {
        "type": ["integer", "string"],
        "minimum": low,
        "maximum": high,
        "pattern": decimal_pattern(low, high),
    }


def _wkt_schemas() -> dict[str, dict[str, Any]]:
    """JSON forms of the well-known types (proto3 JSON mapping), by full name."""
    schemas: dict[str, dict[str, Any]] = {
        "google.protobuf.Duration": {
            "type": "string",
            "pattern": _duration_pattern(),
            "examples": ["60s", "1.5s"],
        },
        "google.protobuf.Timestamp": {
            "type": "string",
            "pattern": _TIMESTAMP_PATTERN,
            "examples": ["2024-01-31T12:00:00Z", "2024-01-31T13:00:00.5+01:00"],
        },
        "google.protobuf.Struct": {"type": "object"},
        "google.protobuf.Value": {},
        "google.protobuf.ListValue": {"type": "array"},
        "google.protobuf.Any": {
            "type": "object",
            "properties": {"@type": {"type": "string", "minLength": 1}},
            "anyOf": [{"maxProperties": 0}, {"required": ["@type"]}],
        },
        "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
        "google.protobuf.FieldMask": {"type": "string"},
        "google.protobuf.BoolValue": {"type": "boolean"},
        "google.protobuf.StringValue": {"type": "string"},
        "google.protobuf.BytesValue": {
            "type": "string",
            "contentEncoding": "base64",
            "pattern": _BASE64_PATTERN,
        },
        "google.protobuf.Int32Value": _int_schema(_INT32, wide=False),
        "google.protobuf.UInt32Value": _int_schema(_UINT32, wide=False),
        "google.protobuf.Int64Value": _int_schema(_INT64, wide=True),
        "google.protobuf.UInt64Value": _int_schema(_UINT64, wide=True),
        "google.protobuf.FloatValue": {
            "type": "number",
            "minimum": -_FLOAT32_MAX,
            "maximum": _FLOAT32_MAX,
        },
        "google.protobuf.DoubleValue": {"type": "number"},
    }
    for name, schema in schemas.items():
        schema["description"] = name
    return schemas


class _Generator:
    def __init__(self) -> None:
        # Imported here, not at module level: importing this module (e.g. for
        # PACHD_RULES) must not need protobuf.
        from google.protobuf.descriptor import FieldDescriptor

        self.fd = FieldDescriptor
        self.wkt = _wkt_schemas()
        self.defs: dict[str, dict[str, Any]] = {}

    def ref(self, message) -> dict[str, Any]:
        name = message.full_name
        if name not in self.defs:
            if name in self.wkt:
                self.defs[name] = self.wkt[name]
            else:
                self.defs[name] = {}  # placeholder: recursion (Input -> Input)
                self.defs[name] = self.message(message)
        return {"$ref": "#/$defs/" + name}

    def scalar(self, field) -> dict[str, Any]:
        fd = self.fd
        kind = field.type
        if kind == fd.TYPE_MESSAGE:
            return self.ref(field.message_type)
        if kind == fd.TYPE_ENUM:
            return self.enum(field.enum_type)
        if kind == fd.TYPE_STRING:
            return {"type": "string"}
        if kind == fd.TYPE_BOOL:
            return {"type": "boolean"}
        if kind in (fd.TYPE_INT32, fd.TYPE_SINT32, fd.TYPE_SFIXED32):
            return _int_schema(_INT32, wide=False)
        if kind in (fd.TYPE_UINT32, fd.TYPE_FIXED32):
            return _int_schema(_UINT32, wide=False)
        if kind in (fd.TYPE_INT64, fd.TYPE_SINT64, fd.TYPE_SFIXED64):
            return _int_schema(_INT64, wide=True)
        if kind in (fd.TYPE_UINT64, fd.TYPE_FIXED64):
            return _int_schema(_UINT64, wide=True)
        if kind == fd.TYPE_FLOAT:
            return {"type": "number", "minimum": -_FLOAT32_MAX, "maximum": _FLOAT32_MAX}
        if kind == fd.TYPE_DOUBLE:
            return {"type": "number"}
        if kind == fd.TYPE_BYTES:
            return {"type": "string", "contentEncoding": "base64", "pattern": _BASE64_PATTERN}
        raise NotImplementedError(f"{field.full_name}: unsupported field type {kind}")

    def enum(self, enum) -> dict[str, Any]:
        if enum.full_name == "google.protobuf.NullValue":
            return {"enum": [None, "NULL_VALUE", 0], "description": enum.full_name}
        names = [value.name for value in enum.values]
        numbers = sorted({value.number for value in enum.values})
        return {"enum": names + numbers, "description": enum.full_name}

    def field(self, field) -> dict[str, Any]:
        entry = field.message_type
        if entry is not None and entry.GetOptions().map_entry:
            key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
            schema: dict[str, Any] = {"type": "object", "additionalProperties": self.scalar(value)}
            key_schema = self.map_key(key)
            if key_schema:
                schema["propertyNames"] = key_schema
        elif field.label == self.fd.LABEL_REPEATED:
            schema = {"type": "array", "items": self.scalar(field)}
        else:
            schema = dict(self.scalar(field))
        schema["description"] = field.full_name
        return schema

    def map_key(self, key) -> dict[str, Any] | None:
        """Map keys are always JSON strings; constrain them for non-string key types."""
        fd = self.fd
        if key.type == fd.TYPE_STRING:
            return None
        if key.type == fd.TYPE_BOOL:
            return {"enum": ["true", "false"]}
        bounds = {
            fd.TYPE_INT32: _INT32, fd.TYPE_SINT32: _INT32, fd.TYPE_SFIXED32: _INT32,
            fd.TYPE_UINT32: _UINT32, fd.TYPE_FIXED32: _UINT32,
            fd.TYPE_INT64: _INT64, fd.TYPE_SINT64: _INT64, fd.TYPE_SFIXED64: _INT64,
            fd.TYPE_UINT64: _UINT64, fd.TYPE_FIXED64: _UINT64,
        }[key.type]
        return {"pattern": decimal_pattern(*bounds)}

    def message(self, message) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for field in message.fields:
            schema = self.field(field)
            properties[field.name] = schema
            if field.json_name != field.name:
                properties[field.json_name] = copy.deepcopy(schema)
        schema = {
            "type": "object",
            "description": message.full_name,
            "properties": properties,
            "additionalProperties": False,
        }
        conflicts = self.conflicts(message)
        if conflicts:
            schema["dependentSchemas"] = conflicts
        return schema

    def conflicts(self, message) -> dict[str, Any]:
        """Names that must not appear together: a field's two spellings, oneof siblings.

        Expressed as dependentSchemas so they cost nothing unless a key is present:
        when key K is present, none of its conflicting names may be.
        """
        def names(field) -> list[str]:
            return list(dict.fromkeys([field.name, field.json_name]))

        rules: dict[str, Any] = {}
        for field in message.fields:
            siblings: list[str] = []
            comment = "one field, two spellings"
            oneof = field.containing_oneof
            if oneof is not None and not _is_synthetic(oneof):
                for sibling in oneof.fields:
                    if sibling is not field:
                        siblings.extend(names(sibling))
                comment = f"oneof {oneof.full_name}: at most one of its fields"
            for name in names(field):
                forbidden = [other for other in names(field) if other != name] + siblings
                if not forbidden:
                    continue
                if len(forbidden) == 1:
                    clause: dict[str, Any] = {"required": forbidden}
                else:
                    clause = {"anyOf": [{"required": [other]} for other in forbidden]}
                rules[name] = {"$comment": comment, "not": clause}
        return rules


def _is_synthetic(oneof) -> bool:
    """proto3 `optional` wraps a field in a synthetic oneof named `_<field>`."""
    fields = list(oneof.fields)
    return len(fields) == 1 and oneof.name == "_" + fields[0].name


def _merge_rules(root: dict[str, Any], rules: dict[str, Any], message) -> None:
    """Merge PACHD_RULES into the root schema after checking they name real fields."""
    def check(fragment: dict[str, Any], descriptor) -> None:
        named = list(fragment.get("required", [])) + list(fragment.get("properties", {}))
        for name in named:
            field = descriptor.fields_by_name.get(name)
            if field is None:
                raise ValueError(f"PACHD_RULES: {descriptor.full_name} has no field {name!r}")
            if field.json_name != name:
                # `required` would have to accept either spelling (anyOf); not needed yet.
                raise NotImplementedError(f"PACHD_RULES: {field.full_name} has json_name {field.json_name!r}")
        for name, sub in fragment.get("properties", {}).items():
            field = descriptor.fields_by_name[name]
            if field.message_type is not None:
                check(sub, field.message_type)

    check(rules, message)
    for key, value in rules.items():
        if key in root:
            raise ValueError(f"PACHD_RULES: {key!r} clashes with the generated root schema")
        root[key] = copy.deepcopy(value)


def generate_schema(message, rules: dict[str, Any] | None = None, comment: str = "") -> dict[str, Any]:
    """A draft 2020-12 JSON Schema for the JSON form of one protobuf message."""
    generator = _Generator()
    top = generator.ref(message)
    root: dict[str, Any] = {
        "$schema": SCHEMA_DIALECT,
        "title": message.full_name,
        "description": message.full_name,
        **top,
        "$defs": generator.defs,
    }
    if comment:
        root["$comment"] = comment
    if rules:
        _merge_rules(root, rules, message)
    return root


def python_pachyderm_version() -> str:
    from importlib.metadata import version

    return version("python-pachyderm")


def generate_pipeline_schema() -> dict[str, Any]:
    """The JSON Schema of one Pachyderm pipeline spec (pps_v2.CreatePipelineRequest)."""
    from python_pachyderm.proto.v2.pps import pps_pb2

    message = pps_pb2.CreatePipelineRequest.DESCRIPTOR
    assert message.full_name == ROOT_MESSAGE
    comment = (
        f"Generated from {ROOT_MESSAGE} in python-pachyderm {python_pachyderm_version()} "
        "by invoke_pachyderm.stages.schema_gen, plus the pachd rules in its PACHD_RULES. "
        "Do not edit: run `python -m invoke_pachyderm.stages.schema_gen > "
        "invoke_pachyderm/stages/pipeline_spec.schema.json`."
    )
    schema = generate_schema(message, rules=PACHD_RULES, comment=comment)
    schema["title"] = "Pachyderm pipeline spec"
    return schema


def dumps(schema: dict[str, Any]) -> str:
    """The shipped file's exact text: sorted keys, indent 1, trailing newline."""
    return json.dumps(schema, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    sys.stdout.write(dumps(generate_pipeline_schema()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
