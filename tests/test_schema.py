"""The pipeline spec schema: derived from the protos, shipped, and faithful to ParseDict.

The schema is checked against python-pachyderm's own parser
(``json_format.ParseDict`` into ``pps_v2.CreatePipelineRequest``, which is what
``python_pachyderm.util.parse_dict_pipeline_spec`` does): every spec the schema
accepts must parse, and the schema may only be stricter than ParseDict in the
documented ways (see ``_documented_stricter``).
"""
from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor as FD
from jsonschema import Draft202012Validator
from python_pachyderm.proto.v2.pps import pps_pb2
from python_pachyderm.util import parse_dict_pipeline_spec

from invoke_pachyderm.stages import schema_gen
from invoke_pachyderm.stages import validate
from invoke_pachyderm.core.errors import TemplateError
from invoke_pachyderm.stages.validate import validate_spec

REPO = Path(__file__).resolve().parent.parent
SHIPPED = REPO / "invoke_pachyderm" / "stages" / "pipeline_spec.schema.json"
SOURCE = "templates/edges.json.j2"
ROOT = pps_pb2.CreatePipelineRequest.DESCRIPTOR

# --------------------------------------------------------------------------- samples

# From Pachyderm's docs: the OpenCV "edges" and "montage" example pipelines.
EDGES = {
    "pipeline": {"name": "edges"},
    "description": "A pipeline that performs image edge detection by using the OpenCV library.",
    "transform": {"cmd": ["python3", "/edges.py"], "image": "pachyderm/opencv:1.0"},
    "input": {"pfs": {"repo": "images", "glob": "/*"}},
}
MONTAGE = {
    "pipeline": {"name": "montage"},
    "description": "A pipeline that combines images from the `images` and `edges` repositories into a montage.",
    "input": {
        "cross": [
            {"pfs": {"glob": "/", "repo": "images"}},
            {"pfs": {"glob": "/", "repo": "edges"}},
        ]
    },
    "transform": {
        "cmd": ["sh"],
        "image": "dpokidov/imagemagick:7.1.0-23",
        "stdin": [
            "montage -shadow -background SkyBlue -geometry 300x300+2+2 "
            "$(find -L /pfs/images /pfs/edges -type f | sort) /pfs/out/montage.png"
        ],
    },
}
CRON = {
    "pipeline": {"name": "scraper", "project": {"name": "default"}},
    "transform": {"image": "example/scraper:1.2", "cmd": ["python3", "/scraper.py"]},
    "input": {
        "cron": {"name": "tick", "spec": "@every 60s", "overwrite": True, "start": "2024-01-31T12:00:00Z"}
    },
}
JOIN = {
    "pipeline": {"name": "joins"},
    "transform": {"image": "example/join:1", "cmd": ["python3", "/join.py"]},
    "input": {
        "join": [
            {"pfs": {"repo": "readings", "branch": "master", "glob": "/*/(*).txt", "join_on": "$1", "outer_join": True}},
            {"pfs": {"repo": "parameters", "glob": "/(*).txt", "join_on": "$1", "lazy": True}},
        ]
    },
}
GROUP_UNION = {
    "pipeline": {"name": "grouped"},
    "transform": {"image": "example/group:1", "cmd": ["sh"], "stdin": ["ls /pfs"]},
    "input": {
        "union": [
            {"group": [{"pfs": {"repo": "labresults", "glob": "/T*(??*)-*.txt", "group_by": "$1"}}]},
            {"pfs": {"repo": "extra", "glob": "/", "trigger": {"branch": "staging", "size": "1M", "commits": 10}}},
        ]
    },
}
FULL = {
    "pipeline": {"name": "train"},
    "description": "Everything a production pipeline tends to set.",
    "metadata": {
        "annotations": {"app.kubernetes.io/name": "train", "owner": "ml-team"},
        "labels": {"tier": "batch"},
    },
    "transform": {
        "image": "registry.example.com/train:abc123",
        "cmd": ["python3", "/app/train.py"],
        "env": {"LOG_LEVEL": "info"},
        "secrets": [{"name": "s3-creds", "env_var": "AWS_KEY", "key": "id"}],
        "image_pull_secrets": ["regcred"],
        "accept_return_code": [0, 3],
        "user": "1000",
        "working_dir": "/app",
        "memory_volume": False,
    },
    "parallelism_spec": {"constant": 4},
    "resource_requests": {"memory": "2G", "cpu": 1.5, "disk": "10Gi"},
    "resource_limits": {"memory": "4G", "cpu": 2, "gpu": {"type": "nvidia.com/gpu", "number": 1}},
    "sidecar_resource_limits": {"memory": "512M", "cpu": 0.5},
    "input": {"pfs": {"repo": "data", "branch": "master", "glob": "/*", "empty_files": False}},
    "datum_timeout": "60s",
    "job_timeout": "3600.5s",
    "datum_tries": 3,
    "datum_set_spec": {"number": 10, "size_bytes": "1048576"},
    "scheduling_spec": {"node_selector": {"disktype": "ssd"}, "priority_class_name": "high"},
    "tolerations": [
        {"key": "dedicated", "operator": "EQUAL", "value": "gpu", "effect": "NO_SCHEDULE", "toleration_seconds": 3600}
    ],
    "pod_patch": '[{"op": "add", "path": "/volumes/-", "value": {"name": "cache"}}]',
    "egress": {"URL": "s3://bucket/dir"},
    "output_branch": "master",
    "autoscaling": True,
    "reprocess_spec": "every_job",
    "salt": "v2",
    "update": True,
    "reprocess": False,
}
SERVICE = {
    "pipeline": {"name": "notebook"},
    "transform": {"image": "jupyter/minimal-notebook", "cmd": ["start-notebook.sh"]},
    "input": {"pfs": {"repo": "data", "glob": "/"}},
    "service": {"internal_port": 8888, "external_port": 30888, "type": "NodePort"},
}
SPOUT_EGRESS = {
    "pipeline": {"name": "stream"},
    "transform": {"image": "example/spout:1", "cmd": ["/spout"]},
    "spout": {},
    "egress": {
        "sql_database": {
            "url": "snowflake://user@account/db?warehouse=wh",
            "file_format": {"type": "CSV", "columns": ["id", "value"]},
            "secret": {"name": "snowflake", "key": "password"},
        }
    },
}
# The same kind of spec written with protobuf's JSON names (lowerCamelCase).
CAMEL = {
    "pipeline": {"name": "camel"},
    "transform": {"image": "example/x:1", "cmd": ["run"], "workingDir": "/w", "errCmd": ["true"]},
    "parallelismSpec": {"constant": "2"},
    "resourceRequests": {"cpu": 0.25, "memory": "64M"},
    "datumTimeout": "1.5s",
    "datumTries": "3",
    "input": {"pfs": {"repo": "in", "glob": "/*", "joinOn": "$1", "emptyFiles": True}},
    "tolerations": [{"operator": 1, "effect": "NO_EXECUTE", "tolerationSeconds": "30"}],
}

VALID = {
    "edges": EDGES,
    "montage": MONTAGE,
    "cron": CRON,
    "join": JOIN,
    "group_union": GROUP_UNION,
    "full": FULL,
    "service": SERVICE,
    "spout_egress": SPOUT_EGRESS,
    "camel": CAMEL,
}


def parses(spec) -> bool:
    """Does python-pachyderm's parser accept the spec?"""
    try:
        json_format.ParseDict(copy.deepcopy(spec), pps_pb2.CreatePipelineRequest())
    except json_format.ParseError:
        return False
    return True


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(SHIPPED.read_text())


@pytest.fixture(scope="module")
def proto_only(schema) -> Draft202012Validator:
    """The schema without the pachd rules: what the proto alone says."""
    stripped = {k: v for k, v in schema.items() if k not in schema_gen.PACHD_RULES}
    return Draft202012Validator(stripped)


# --------------------------------------------------------------------------- the shipped file


def test_shipped_schema_matches_a_fresh_generation():
    fresh = schema_gen.dumps(schema_gen.generate_pipeline_schema())
    assert SHIPPED.read_text(encoding="utf-8") == fresh, (
        "invoke_pachyderm/stages/pipeline_spec.schema.json is stale: run "
        "`python -m invoke_pachyderm.stages.schema_gen > invoke_pachyderm/stages/pipeline_spec.schema.json`"
    )


def test_main_writes_the_shipped_file():
    proc = subprocess.run(
        [sys.executable, "-m", "invoke_pachyderm.stages.schema_gen"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert proc.stdout == SHIPPED.read_text(encoding="utf-8")
    assert proc.stdout.endswith("}\n") and '\n "$defs": {' in proc.stdout  # indent 1, sorted keys


def test_schema_shape(schema):
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$ref"] == "#/$defs/pps_v2.CreatePipelineRequest"
    from importlib.metadata import version

    assert f"python-pachyderm {version('python-pachyderm')}" in schema["$comment"]
    defs = schema["$defs"]
    for name, definition in defs.items():
        assert definition["description"] == name
        if not name.startswith("google.protobuf."):
            assert definition["additionalProperties"] is False, name
    # every message reachable from CreatePipelineRequest has a def, with both spellings of every field
    seen = set()

    def walk(message):
        if message.full_name in seen or message.GetOptions().map_entry:
            return
        seen.add(message.full_name)
        assert message.full_name in defs
        if message.full_name.startswith("google.protobuf."):
            return
        props = defs[message.full_name]["properties"]
        for field in message.fields:
            assert props[field.name]["description"] == field.full_name
            assert props[field.json_name]["description"] == field.full_name
            if field.message_type is not None:
                walk(field.message_type)
                if field.message_type.GetOptions().map_entry:
                    value = field.message_type.fields_by_name["value"]
                    if value.message_type is not None:
                        walk(value.message_type)

    walk(ROOT)
    assert seen == set(defs)
    # update and reprocess are real proto fields and stay allowed
    props = defs["pps_v2.CreatePipelineRequest"]["properties"]
    assert props["update"]["type"] == "boolean" and props["reprocess"]["type"] == "boolean"


def test_type_mapping(schema):
    defs = schema["$defs"]
    transform = defs["pps_v2.Transform"]["properties"]
    assert transform["cmd"] == {"type": "array", "items": {"type": "string"}, "description": "pps_v2.Transform.cmd"}
    assert transform["env"]["type"] == "object" and transform["env"]["additionalProperties"] == {"type": "string"}
    assert transform["accept_return_code"]["items"]["type"] == ["integer", "string"]
    port = defs["pps_v2.Service"]["properties"]["internal_port"]
    assert (port["type"], port["minimum"], port["maximum"]) == ("integer", -(2**31), 2**31 - 1)
    assert defs["pps_v2.ResourceSpec"]["properties"]["cpu"]["type"] == "number"
    operator = defs["pps_v2.Toleration"]["properties"]["operator"]["enum"]
    assert operator == ["EMPTY", "EXISTS", "EQUAL", 0, 1, 2]
    assert defs["google.protobuf.Int64Value"]["type"] == ["integer", "string"]
    assert defs["google.protobuf.Duration"]["type"] == "string"
    assert defs["google.protobuf.Timestamp"]["type"] == "string"
    egress = defs["pps_v2.Egress"]["dependentSchemas"]
    assert "oneof pps_v2.Egress.target" in egress["object_storage"]["$comment"]


def test_well_known_types_table():
    wkt = schema_gen._wkt_schemas()
    validator = lambda name: Draft202012Validator(wkt[name])  # noqa: E731
    assert validator("google.protobuf.Struct").is_valid({"a": [1, {"b": None}]})
    assert validator("google.protobuf.Value").is_valid(None)
    assert validator("google.protobuf.ListValue").is_valid([1, "a"])
    assert not validator("google.protobuf.ListValue").is_valid({})
    assert validator("google.protobuf.Any").is_valid({"@type": "type.googleapis.com/x.Y", "a": 1})
    assert validator("google.protobuf.Any").is_valid({})
    assert not validator("google.protobuf.Any").is_valid({"a": 1})
    assert validator("google.protobuf.Empty").is_valid({})
    assert not validator("google.protobuf.Empty").is_valid({"a": 1})
    assert validator("google.protobuf.BoolValue").is_valid(True)
    assert validator("google.protobuf.UInt64Value").is_valid("18446744073709551615")
    assert not validator("google.protobuf.UInt64Value").is_valid("18446744073709551616")
    assert validator("google.protobuf.BytesValue").is_valid("aGVsbG8=")


@pytest.mark.parametrize(
    "low, high",
    [(0, 0), (0, 9), (0, 10), (0, 315), (0, 2**32 - 1), (-(2**31), 2**31 - 1), (0, 2**64 - 1), (-(2**63), 2**63 - 1)],
)
def test_decimal_pattern_is_exact(low, high):
    import re

    pattern = re.compile(schema_gen.decimal_pattern(low, high))
    edges = {low, high, low - 1, high + 1, 0, 1, -1, 9, 10, 99, 100, high // 2, high // 10, high // 10 + 1}
    edges |= {high - 1, high - 10, int(str(high)[:-1] + "9") if high >= 10 else 9}
    for n in edges:
        assert bool(pattern.match(str(n))) == (low <= n <= high), n
    for bad in ["", "-", "01", "+1", "1.0", " 1", "1 ", "1e3", "0x1"]:
        assert not pattern.match(bad), bad


# --------------------------------------------------------------------------- accepted specs


@pytest.mark.parametrize("name", sorted(VALID))
def test_documented_specs_validate_and_parse(name):
    spec = VALID[name]
    validate_spec(copy.deepcopy(spec), SOURCE)
    assert parse_dict_pipeline_spec(copy.deepcopy(spec)).pipeline.name == spec["pipeline"]["name"]


def test_validate_spec_leaves_the_spec_alone():
    spec = copy.deepcopy(FULL)
    validate_spec(spec, SOURCE)
    assert spec == FULL


# --------------------------------------------------------------------------- rejected specs


def test_null_message_field_is_valid_it_removes_a_default_on_pachd_2_8():
    """protojson accepts null for a field (unset); pachd >= 2.8's merge patch deletes the
    default there (TestAPIServer_CreatePipelineV2_noDefaults sends "cpu": null)."""
    validate_spec(_with(EDGES, transform__image=None), "t")
    validate_spec(_with(EDGES, resource_requests={"cpu": None, "disk": "187Mi"}), "t")


def _with(base, **changes):
    spec = copy.deepcopy(base)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = spec
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return spec


_DELETE = object()


def _renamed(base, old, new):
    spec = copy.deepcopy(base)
    spec[new] = spec.pop(old)
    return spec


# Marks a rejection that ParseDict does not make: a pachd rule or a documented stricter case.
PARSEDICT_ACCEPTS = "parsedict accepts"

REJECTED = [
    # (spec, exact message after the source[, PARSEDICT_ACCEPTS])
    (
        _renamed(EDGES, "transform", "transfrom"),
        "$.transfrom: unknown field 'transfrom' (did you mean 'transform'?)",
    ),
    (
        _with(EDGES, parallelism_spec={"constant": "two"}),
        '$.parallelism_spec.constant: expected an integer, got "two"',
    ),
    (
        _with(EDGES, transform__cmd="python3 /edges.py"),
        '$.transform.cmd: expected a list, got "python3 /edges.py" — wrap it in a list: ["python3 /edges.py"]',
    ),
    (_with(EDGES, transform__cmd=["python3", 3]), "$.transform.cmd[1]: expected a string, got 3"),
    (
        _with(EDGES, transform__debug="true"),
        '$.transform.debug: expected true or false, got "true" — remove the quotes',
    ),
    (
        _with(EDGES, service={"internal_port": "8888"}),
        '$.service.internal_port: expected an integer, got "8888" — remove the quotes',
        PARSEDICT_ACCEPTS,
    ),
    (
        _with(EDGES, transform__env={"DEBUG": None}),
        "$.transform.env.DEBUG: expected a string, got null — omit the field to leave it unset",
    ),
    (
        _with(EDGES, pipeline={}),
        "$.pipeline.name: missing required field 'name' — pachd rejects a pipeline spec without it",
        PARSEDICT_ACCEPTS,
    ),
    (_with(EDGES, pipeline__name=""), "$.pipeline.name: must not be empty", PARSEDICT_ACCEPTS),
    (
        _with(EDGES, pipeline=_DELETE),
        "$.pipeline: missing required field 'pipeline' — add \"pipeline\": {\"name\": \"...\"}",
        PARSEDICT_ACCEPTS,
    ),
    (
        _with(EDGES, transform=_DELETE),
        "$.transform: missing required field 'transform' — pachd rejects a pipeline spec without it",
        PARSEDICT_ACCEPTS,
    ),
    (_with(EDGES, pipeline="edges"), '$.pipeline: expected an object (pps_v2.Pipeline), got "edges"'),
    (
        _with(EDGES, tolerations=[{"operator": "exists"}]),
        "$.tolerations[0].operator: expected one of 'EMPTY', 'EXISTS', 'EQUAL', got \"exists\" — did you mean 'EXISTS'?",
    ),
    (
        _with(EDGES, egress={"sql_database": {"file_format": {"type": "XML"}}}),
        "$.egress.sql_database.file_format.type: expected one of 'UNKNOWN', 'CSV', 'JSON', 'PARQUET', got \"XML\"",
    ),
    (
        _with(EDGES, tolerations=[{"operator": 7}]),
        "$.tolerations[0].operator: expected one of 'EMPTY', 'EXISTS', 'EQUAL', got 7",
        PARSEDICT_ACCEPTS,
    ),
    (
        _with(EDGES, datum_timeout="60"),
        '$.datum_timeout: expected a duration like "60s" or "1.5s", got "60"'
        ' — write it in seconds with an "s" suffix ("5m" is "300s")',
    ),
    (
        _with(EDGES, job_timeout="1h"),
        '$.job_timeout: expected a duration like "60s" or "1.5s", got "1h"'
        ' — write it in seconds with an "s" suffix ("5m" is "300s")',
    ),
    (
        _with(EDGES, datum_timeout=60),
        "$.datum_timeout: expected a string, got 60",
    ),
    (
        _with(CRON, input__cron__start="2024-01-31"),
        '$.input.cron.start: expected an RFC 3339 timestamp like "2024-01-31T12:00:00Z", got "2024-01-31"'
        " — give date, time and a UTC offset or Z",
    ),
    (
        _with(EDGES, parallelism_spec={"constant": -1}),
        "$.parallelism_spec.constant: -1 is out of range — use an integer from 0 to 18446744073709551615",
    ),
    (
        _with(EDGES, datum_tries="99999999999999999999"),
        "$.datum_tries: 99999999999999999999 is out of range — use an integer from"
        " -9223372036854775808 to 9223372036854775807",
    ),
    (_with(EDGES, resource_requests={"cpu": "1"}), '$.resource_requests.cpu: expected a number, got "1" — remove the quotes', PARSEDICT_ACCEPTS),
    (
        _with(EDGES, input__pfs__globb="/*"),
        "$.input.pfs.globb: unknown field 'globb' (did you mean 'glob'?)",
    ),
    (
        _with(EDGES, parallelismspec={"constant": 1}),
        "$.parallelismspec: unknown field 'parallelismspec' (did you mean 'parallelism_spec'?)",
    ),
    (
        _with(EDGES, transform__frobnicate=1),
        "$.transform.frobnicate: unknown field 'frobnicate' — remove it; pps_v2.Transform has: accept_return_code,"
        " cmd, datum_batching, debug, dockerfile, env, err_cmd, err_stdin, image, image_pull_secrets,"
        " memory_volume, secrets, ...",
    ),
    (
        _with(MONTAGE, input__cross__1__pfs__repoo="edges"),
        "$.input.cross[1].pfs.repoo: unknown field 'repoo' (did you mean 'repo'?)",
    ),
    (
        _with(FULL, metadata__annotations__owner=7),
        "$.metadata.annotations.owner: expected a string, got 7",
    ),
    (
        _with(FULL, metadata__annotations={"app.kubernetes.io/name": True}),
        "$.metadata.annotations['app.kubernetes.io/name']: expected a string, got true",
    ),
    (
        _with(EDGES, parallelism_spec={"constant": 1}, parallelismSpec={"constant": 2}),
        "$: 'parallelismSpec' and 'parallelism_spec' are the same field (proto and JSON spelling) — keep only one",
        PARSEDICT_ACCEPTS,
    ),
    (
        _with(SPOUT_EGRESS, egress__object_storage={"url": "s3://b"}),
        "$.egress: 'object_storage' and 'sql_database' are alternatives (oneof 'target') — set only one of them",
    ),
    ([EDGES], "$: expected an object (pps_v2.CreatePipelineRequest), got a list"),
]


@pytest.mark.parametrize(
    "spec, message", [case[:2] for case in REJECTED], ids=[f"{i}:{case[1].split(':')[0]}" for i, case in enumerate(REJECTED)]
)
def test_rejected_with_a_clear_message(spec, message):
    with pytest.raises(TemplateError) as caught:
        validate_spec(spec, SOURCE)
    assert str(caught.value) == f"{SOURCE}: {message}"
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == 3


def test_rejected_samples_are_rejected_by_parsedict_unless_marked(proto_only):
    for spec, message, *marks in REJECTED:
        if marks:
            assert parses(spec), message  # pachd rule or a deliberately stricter case
        else:
            assert not parses(spec), message
            assert not proto_only.is_valid(spec), message


# --------------------------------------------------------------------------- property check vs ParseDict


def _field_for(path):
    """(field descriptor, is_element) for the value at `path` in a CreatePipelineRequest, or None."""
    message, field, state = ROOT, None, "message"
    for part in path:
        if state == "message":
            field = {f.json_name: f for f in message.fields}.get(part) or message.fields_by_name.get(part)
            if field is None:
                return None
            is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
            state = "map" if is_map else "list" if field.label == FD.LABEL_REPEATED else "value"
        else:
            if state == "map":
                field = field.message_type.fields_by_name["value"]
            state = "element"
        if (
            state in ("value", "element")
            and field.message_type is not None
            and not field.message_type.full_name.startswith("google.protobuf.")
        ):
            message, state = field.message_type, "message"
    return field, state


_NUMERIC = {FD.TYPE_INT32, FD.TYPE_UINT32, FD.TYPE_SINT32, FD.TYPE_FIXED32, FD.TYPE_SFIXED32, FD.TYPE_FLOAT, FD.TYPE_DOUBLE}
_WIDE = {FD.TYPE_INT64, FD.TYPE_UINT64, FD.TYPE_SINT64, FD.TYPE_FIXED64, FD.TYPE_SFIXED64}


def _documented_stricter(path, value) -> bool:
    """Is this a value ParseDict accepts but the schema rejects on purpose (see schema_gen docstring)?"""
    if value is None:
        return True  # null = "unset" for ParseDict; in a rendered template it is a missing variable
    found = _field_for(path)
    if found is None:
        return False
    field, state = found
    if state in ("map", "list"):
        return False
    if state == "message" and value in ("", []):
        return True  # ParseDict iterates a message's JSON value: "" and [] slip through as empty messages
    kind = field.type
    if field.message_type is not None and field.message_type.full_name == "google.protobuf.Int64Value":
        kind = FD.TYPE_INT64
    if kind in _NUMERIC and isinstance(value, str):
        return True  # quoted 32-bit integers / floats
    if kind in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE) and isinstance(value, bool):
        return True  # float(True)
    if kind in _WIDE and isinstance(value, str):
        return True  # non-canonical decimal strings: "+1", "007", "1_000"
    if kind == FD.TYPE_ENUM and isinstance(value, (bool, int, float, str)):
        return True  # ParseDict takes int(value): undefined numbers (open proto3 enums), True, 1.5, "1"
    return False


REPLACEMENTS = [
    None, "", "two", "60s", "1.5s", "-1s", "1m", "2024-01-31T12:00:00Z", "2023-02-29T00:00:00Z",
    "1", "+1", "007", "1.0", "1e3", "18446744073709551616", "9223372036854775808", "-1",
    "EXISTS", "CSV", "exists", 0, 1, -1, 2, 7, 1.0, 1.5, 2**31, 2**63, 2**64, 3.5e38,
    True, False, [], ["a"], [1], [None], {}, {"name": "x"}, {"bogus": 1},
]


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, prefix + (index,))


def _set(spec, path, value):
    node = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value


def _mutants():
    for name, base in VALID.items():
        for path in _paths(base):
            if not path:
                continue
            for value in REPLACEMENTS:
                spec = copy.deepcopy(base)
                _set(spec, path, copy.deepcopy(value))
                yield name, path, value, spec
            if isinstance(path[-1], str):
                parent_path, key = path[:-1], path[-1]
                parent = base
                for part in parent_path:
                    parent = parent[part]
                for new_key in (key + "x", key[:-1], key.upper(), key.title(), "bogus"):
                    spec = copy.deepcopy(base)
                    node = spec
                    for part in parent_path:
                        node = node[part]
                    node[new_key] = node.pop(key)
                    yield name, parent_path + (new_key,), "<renamed>", spec


def test_schema_accepts_only_what_parsedict_accepts(proto_only):
    """Over ~10,000 mutants of the samples: schema accepts => ParseDict accepts, and every
    spec ParseDict accepts but the schema rejects is one of the documented stricter cases."""
    full = validate._validator()
    counts = {"both accept": 0, "both reject": 0, "stricter on purpose": 0}
    unexplained = []
    for name, path, value, spec in _mutants():
        schema_ok = full.is_valid(spec)
        parser_ok = parses(spec)
        assert not (schema_ok and not parser_ok), f"{name} {path} = {value!r}: schema accepts, ParseDict rejects"
        if schema_ok:
            counts["both accept"] += 1
        elif not parser_ok:
            counts["both reject"] += 1
        elif not proto_only.is_valid(spec):
            if _documented_stricter(path, value):
                counts["stricter on purpose"] += 1
            else:
                unexplained.append(f"{name} {'.'.join(map(str, path))} = {value!r}")
    assert not unexplained, "ParseDict accepts, schema rejects:\n" + "\n".join(unexplained[:30])
    assert counts["both accept"] > 500 and counts["both reject"] > 2000, counts


# Values where the schema must agree with ParseDict exactly (no stricter rules involved).
AGREE = [
    ("datum_timeout", "60s"), ("datum_timeout", "1.5s"), ("datum_timeout", "-1.5s"), ("datum_timeout", "0s"),
    ("datum_timeout", "0.000000001s"), ("datum_timeout", "315576000000s"), ("datum_timeout", "315576000001s"),
    ("datum_timeout", "-315576000000.999999999s"), ("datum_timeout", "60"),
    ("datum_timeout", "1m"), ("datum_timeout", "s"), ("datum_timeout", 60), ("datum_timeout", {"seconds": 60}),
    ("datum_tries", 3), ("datum_tries", "3"), ("datum_tries", "-3"), ("datum_tries", 3.0), ("datum_tries", 3.5),
    ("datum_tries", "3.0"), ("datum_tries", " 3"), ("datum_tries", "9223372036854775807"),
    ("datum_tries", "9223372036854775808"), ("datum_tries", -(2**63)), ("datum_tries", -(2**63) - 1),
    ("datum_tries", True), ("datum_tries", "0x10"),
    ("parallelism_spec", {"constant": 18446744073709551615}), ("parallelism_spec", {"constant": 2**64}),
    ("parallelism_spec", {"constant": "-1"}), ("parallelism_spec", {"coefficient": 0.5}),
    ("service", {"internal_port": 2**31 - 1}), ("service", {"internal_port": 2**31}),
    ("service", {"internal_port": -(2**31)}), ("service", {"internal_port": 1.5}),
    ("resource_requests", {"cpu": 3.4e38}), ("resource_requests", {"cpu": 3.5e38}), ("resource_requests", {"cpu": -1}),
    ("tolerations", [{"operator": "EQUAL", "effect": 3}]), ("tolerations", [{"toleration_seconds": "30"}]),
    ("tolerations", [{"toleration_seconds": {"value": 30}}]), ("tolerations", [None]),
    ("input", {"cron": {"start": "2024-02-29T00:00:00Z"}}), ("input", {"cron": {"start": "2023-02-29T00:00:00Z"}}),
    ("input", {"cron": {"start": "2024-04-31T00:00:00Z"}}), ("input", {"cron": {"start": "2000-02-29T23:59:59.999999999-05:30"}}),
    ("input", {"cron": {"start": "2024-01-31T12:00:00.1234567890Z"}}), ("input", {"cron": {"start": "2024-01-31 12:00:00Z"}}),
    ("input", {"cron": {"start": "2024-01-31T12:00:00"}}), ("input", {"cron": {"start": "2024-01-31t12:00:00Z"}}),
    ("metadata", {"labels": {"a": "b"}}), ("metadata", {"labels": {"a": 1}}), ("metadata", {"labels": ["a"]}),
    ("egress", {"URL": "s3://x", "object_storage": {"url": "s3://y"}}),
    ("egress", {"objectStorage": {"url": "s3://y"}, "sql_database": {}}),
    ("transform", {"image": "x", "cmd": ["a"], "env": {"A": "1"}, "secrets": [{"name": "s", "mountPath": "/s"}]}),
]


@pytest.mark.parametrize("field, value", AGREE, ids=[f"{f}={json.dumps(v)[:40]}" for f, v in AGREE])
def test_schema_and_parsedict_agree(field, value):
    spec = _with(EDGES, **{field: value})
    schema_ok = validate._validator().is_valid(spec)
    assert schema_ok == parses(spec), f"schema says {schema_ok}"


# Values ParseDict accepts and the schema rejects on purpose (proto3 JSON allows some of
# them too; all of them are more likely a template bug than intended).
STRICTER = [
    ("description", None),  # null means "unset" to ParseDict
    ("pipeline", ""),  # ParseDict iterates the string: no fields, an empty message
    ("input", []),
    ("service", {"internal_port": "8888"}),  # quoted 32-bit integer
    ("resource_requests", {"cpu": "0.5"}),  # quoted float
    ("resource_requests", {"cpu": True}),  # float(True)
    ("datum_tries", "+3"),  # int("+3"): not a canonical decimal
    ("datum_tries", "007"),
    ("datum_tries", "1_000"),
    ("datum_timeout", "1.0000000001s"),  # more than 9 fractional digits, rounded by Python
    ("datum_timeout", "1.s"),
    ("tolerations", [{"operator": 9}]),  # undefined number of an open proto3 enum
    ("tolerations", [{"operator": "1"}]),
    ("tolerations", [{"operator": 1.5}]),
    ("input", {"cron": {"start": "2024-1-31T12:00:00Z"}}),  # strptime is lenient about widths
]


@pytest.mark.parametrize("field, value", STRICTER, ids=[f"{f}={json.dumps(v)[:40]}" for f, v in STRICTER])
def test_schema_is_stricter_on_purpose(field, value):
    spec = _with(EDGES, **{field: value})
    assert parses(spec)
    assert not validate._validator().is_valid(spec)


def test_both_spellings_at_once():
    """ParseDict (protobuf 3.20) lets the later spelling win; Go's protojson, which pachctl
    uses, rejects duplicates. The schema rejects them."""
    spec = _with(EDGES, datum_timeout="60s", datumTimeout="30s")
    assert parses(spec)
    assert not validate._validator().is_valid(spec)


# --------------------------------------------------------------------------- runtime properties


def test_validate_imports_neither_protobuf_nor_python_pachyderm():
    code = (
        "import sys, json\n"
        "from invoke_pachyderm.stages.validate import validate_spec\n"
        f"validate_spec(json.loads({json.dumps(json.dumps(FULL))}), 'x')\n"
        "bad = [m for m in sys.modules if m.startswith(('google.protobuf', 'python_pachyderm'))]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def test_validator_is_built_once():
    assert validate._validator() is validate._validator()


def test_a_field_newer_than_the_client_protos_is_named_never_dropped():
    """pachd >= 2.9's maximum_expected_uptime is not in python-pachyderm 7.6's protos (issue 10)."""
    spec = _with(EDGES, maximum_expected_uptime="60s")
    with pytest.raises(TemplateError) as raised:
        validate_spec(spec, "templates/edges.json.j2")
    message = str(raised.value)
    assert message.startswith("templates/edges.json.j2: $.maximum_expected_uptime: field 'maximum_expected_uptime'")
    assert "pachd >= 2.9" in message and "remove it" in message


# --------------------------------------------------------------------------- the fast check (issue 12)


def _every_sample():
    yield from VALID.values()
    for spec, *_ in REJECTED:
        yield spec
    for field, value in AGREE + STRICTER:
        yield _with(EDGES, **{field: value})
    for *_, spec in _mutants():
        yield spec


def test_fast_check_agrees_with_jsonschema_on_every_sample():
    """validate_spec trusts fast_schema's "valid": it must never accept what jsonschema refuses
    (nor refuse what it accepts, or a valid spec would pay for jsonschema)."""
    from invoke_pachyderm.stages import fast_schema

    fast = fast_schema.compile_schema(validate.load_schema())
    full = validate._validator()
    verdicts = {True: 0, False: 0}
    for spec in _every_sample():
        expected = full.is_valid(spec)
        assert fast(spec) == expected, json.dumps(spec)[:300]
        verdicts[expected] += 1
    assert verdicts[True] > 500 and verdicts[False] > 2000, verdicts


@pytest.mark.parametrize("schema, good, bad", [
    ({"enum": [1, "a"]}, [1, 1.0, "a"], [True, "1", None]),
    ({"enum": [False]}, [False], [0, 0.0, None]),
    ({"type": "integer"}, [1, 2.0, -(2**70)], [True, 1.5, "1", float("inf")]),
    ({"type": "number", "minimum": 0, "maximum": 1}, [0, 0.5, 1], [-1, 1.5, False, "0.5"]),
    ({"minimum": 0}, ["-1", None, True, -0.0], [-1, -0.5]),  # only numbers are compared; True is no number
    ({"pattern": "^a"}, ["ab", 1, None], ["ba", ""]),
    ({"pattern": "b"}, ["abc"], ["ac"]),  # a search, not a full match
    ({"minLength": 1}, ["x", 0], [""]),
    ({"not": {"required": ["a"]}}, [{}, {"b": 1}], [{"a": 1}, [], "a"]),  # `required` holds for a non-object
    ({"anyOf": [{"type": "string"}, {"type": "null"}]}, ["", None], [0, {}]),
    ({"dependentSchemas": {"a": {"not": {"required": ["b"]}}}}, [{"a": 1}, {"b": 1}, []], [{"a": 1, "b": 2}]),
    ({"properties": {"a": {"type": "string"}}, "additionalProperties": False}, [{}, {"a": "x"}, "s"], [{"a": 1}, {"b": 1}]),
    ({"additionalProperties": {"type": "integer"}}, [{"x": 1}, {}], [{"x": "1"}]),
    ({"items": {"type": "string"}}, [[], ["a"], {"0": 1}], [[1], ["a", None]]),
    ({"$ref": "#/$defs/a~1b", "$defs": {"a/b": {"type": "object", "properties": {"n": {"$ref": "#/$defs/a~1b"}}}}},
     [{}, {"n": {"n": {}}}], [{"n": {"n": 1}}, []]),
    ({"maxProperties": 0}, [{}, []], [{"a": 1}]),
])
def test_fast_check_keywords_follow_jsonschema(schema, good, bad):
    from invoke_pachyderm.stages import fast_schema

    fast, full = fast_schema.compile_schema(schema), Draft202012Validator(schema)
    for instance in good:
        assert fast(instance) and full.is_valid(instance), instance
    for instance in bad:
        assert not fast(instance) and not full.is_valid(instance), instance


@pytest.mark.parametrize("schema", [{"format": "uri"}, {"patternProperties": {"^a": {}}, "additionalProperties": False},
                                    {"$ref": "https://example.com/s"}, {"uniqueItems": True}])
def test_fast_check_refuses_a_keyword_it_does_not_know(schema):
    """A new keyword in a regenerated schema must send validation to jsonschema, not be skipped."""
    from invoke_pachyderm.stages import fast_schema

    with pytest.raises(fast_schema.Unsupported):
        fast_schema.compile_schema(schema)


def test_a_valid_spec_is_validated_without_importing_jsonschema_and_an_invalid_one_is_explained():
    code = (
        "import sys, json\n"
        "from invoke_pachyderm.core.errors import TemplateError\n"
        "from invoke_pachyderm.stages.validate import validate_spec\n"
        f"validate_spec(json.loads({json.dumps(json.dumps(FULL))}), 'x')\n"
        "assert 'jsonschema' not in sys.modules\n"
        "try:\n"
        "    validate_spec({'pipeline': {'name': 'a'}, 'transform': {'image': 'x'}, 'datum_tries': 'x'}, 'x')\n"
        "except TemplateError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True, text=True).stdout
    assert out.strip() == "x: $.datum_tries: expected an integer, got \"x\""
