"""pachd_forms' plain-field fast path (issue 12): fields whose values proto_field_names and
message_form give back as they are (strings, bools, int32s, maps of strings, google.protobuf
values) skip the per-value conversion. Both functions must give exactly what the general path
gave: checked against a copy of that path (below), on the real descriptor and on the table, for
specs drawn over the descriptor's own field names with values of every JSON type."""
from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st
from python_pachyderm.proto.v2.pps import pps_pb2

from invoke_pachyderm.backends.pachd_forms import message_form, proto_field_names
from invoke_pachyderm.backends.pps_table import request_descriptor

REAL = pps_pb2.CreatePipelineRequest.DESCRIPTOR
_INT64_TYPES, _FLOAT_TYPES = (3, 4, 6, 16, 18), (1, 2)


# -- the general path, as it was before the fast path ------------------------------------------
def ref_names(value, descriptor):
    if not isinstance(value, dict) or descriptor.full_name.startswith("google.protobuf."):
        return value
    fields = {key: f for f in descriptor.fields for key in (f.name, f.json_name)}
    result = {}
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            result[key] = item
            continue
        result[field.name] = ref_field_value(item, field, ref_scalar)
    return result


def ref_field_value(item, field, convert):
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        value_field = message.fields_by_name["value"]
        return {k: convert(v, value_field) for k, v in item.items()} if isinstance(item, dict) else item
    if field.label == field.LABEL_REPEATED and isinstance(item, list):
        return [convert(v, field) for v in item]
    return convert(item, field)


def ref_scalar(item, field):
    if item is None:
        return None
    if field.message_type is not None:
        return ref_names(item, field.message_type)
    if field.type in _INT64_TYPES and isinstance(item, str):
        try:
            return int(item)
        except ValueError:
            return item
    if field.enum_type is not None and isinstance(item, int) and not isinstance(item, bool):
        enum_value = field.enum_type.values_by_number.get(item)
        return enum_value.name if enum_value else item
    return item


def ref_form(value, descriptor):
    from invoke_pachyderm.backends.pachd_forms import _is_unset

    if not isinstance(value, dict) or descriptor.full_name.startswith("google.protobuf."):
        return value
    fields = {key: f for f in descriptor.fields for key in (f.name, f.json_name)}
    result = {}
    for key, item in value.items():
        field = fields.get(key)
        if field is None:
            result[key] = item
            continue
        if field.name in result:
            raise ValueError("written twice")
        item = ref_field_value(item, field, ref_form_scalar)
        if not _is_unset(item, field):
            result[field.name] = item
    return result


def ref_form_scalar(item, field):
    if field.message_type is not None:
        return ref_form(item, field.message_type) if item is not None else None
    item = ref_scalar(item, field)
    if field.type in _FLOAT_TYPES and type(item) is int:
        return float(item)
    return item


# -- specs over the descriptor's field names ----------------------------------------------------
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([0.0, 1.5, -2.0]),
                    st.sampled_from(["", "0", "3", "x", "PIPELINE_RUNNING", "until_success"]))


def values_for(descriptor, depth):
    """A dict of some of the message's keys (by name or JSON name, and one unknown), each holding
    any JSON value, or a value for its own message type."""
    if depth == 0 or descriptor.full_name.startswith("google.protobuf."):
        return st.dictionaries(st.text(max_size=2), SCALARS, max_size=2)
    keys = [key for f in descriptor.fields for key in {f.name, f.json_name}] + ["unknown_key"]
    messages = [f.message_type for f in descriptor.fields if f.message_type is not None]
    plain = [SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(st.text(max_size=2), SCALARS, max_size=2)]
    if messages:
        plain += [st.sampled_from(messages).flatmap(lambda message: values_for(message, depth - 1)),
                  st.sampled_from(messages).flatmap(lambda message: st.lists(values_for(message, depth - 1), max_size=2))]
    value = st.one_of(*plain)
    return st.dictionaries(st.sampled_from(keys), value, max_size=5)


@settings(max_examples=300, deadline=None)
@given(values_for(REAL, 3))
def test_forms_are_the_general_paths(spec):
    for descriptor in (REAL, request_descriptor()):
        assert json.dumps(proto_field_names(spec, descriptor), sort_keys=True, default=repr) == \
            json.dumps(ref_names(spec, descriptor), sort_keys=True, default=repr)
        try:
            expected = json.dumps(ref_form(spec, descriptor), sort_keys=True, default=repr)
        except ValueError:
            expected = "ValueError"
        try:
            got = json.dumps(message_form(spec, descriptor), sort_keys=True, default=repr)
        except ValueError:
            got = "ValueError"
        assert got == expected


def test_a_plain_list_or_map_is_a_copy():
    spec = {"transform": {"cmd": ["sh"], "env": {"A": "1"}}, "metadata": {"annotations": {"a": "b"}}}
    for form in (proto_field_names(spec, REAL), message_form(spec, REAL)):
        assert form == spec
        assert form["transform"]["cmd"] is not spec["transform"]["cmd"]
        assert form["transform"]["env"] is not spec["transform"]["env"]
        assert form["metadata"]["annotations"] is not spec["metadata"]["annotations"]


def test_floats_int64s_and_enums_are_still_converted():
    spec = {"resourceRequests": {"cpu": 1}, "datumTries": "3", "reprocessSpec": "every_job",
            "parallelismSpec": {"constant": "2"}}
    assert message_form(spec, REAL) == {"resource_requests": {"cpu": 1.0}, "datum_tries": 3,
                                        "reprocess_spec": "every_job", "parallelism_spec": {"constant": 2}}
    assert type(message_form(spec, REAL)["resource_requests"]["cpu"]) is float


def test_an_enum_at_its_zero_value_is_left_out_by_name_or_number():
    for zero in ("EMPTY", 0):
        spec = {"tolerations": [{"key": "k", "operator": zero}, {"operator": "EXISTS"}]}
        assert message_form(spec, REAL) == ref_form(spec, REAL) == \
            {"tolerations": [{"key": "k"}, {"operator": "EXISTS"}]}
        assert message_form(spec, request_descriptor()) == message_form(spec, REAL)


RFC_7396_EXAMPLES = [  # (target, patch, result), RFC 7396 appendix A
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


def test_merge_patch_is_rfc_7396():
    from invoke_pachyderm.backends.pachd_forms import merge_patch

    for target, patch, result in RFC_7396_EXAMPLES:
        assert merge_patch(target, patch) == result
