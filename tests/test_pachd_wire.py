"""deployed() and states() read each PipelineInfo from its wire bytes (backends/pachd_wire.py), not
through protobuf. What they give must be what protobuf's own parse gives (`to_deployed` of
`PipelineInfo.FromString`): shown here for many generated messages, with fields repeated, out of
order, unknown, of another wire type, and with varints at their limits."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from python_pachyderm.proto.v2.pps import pps_pb2

from invoke_pachyderm.backends.pachd import read_deployed, to_deployed
from invoke_pachyderm.backends.pachd_v28 import messages
from invoke_pachyderm.backends.pachd_wire import Unusual, read_pipeline_info

texts = st.text(max_size=12)
int64s = st.integers(-(1 << 63), (1 << 63) - 1)
STATES = list(pps_pb2.PipelineState.values())


def outcome(function, *args):
    try:
        return function(*args)
    except Exception as error:  # the same failure either way counts as the same answer
        return type(error).__name__


def by_protobuf(raw: bytes, has_defaults: bool):
    info = pps_pb2.PipelineInfo.FromString(raw)
    pipeline = to_deployed(info, has_defaults)
    return info.pipeline.project.name, pipeline, pipeline.spec


def by_wire(raw: bytes, has_defaults: bool):
    project, pipeline = read_deployed(raw, has_defaults)
    return project, pipeline, pipeline.spec


def same_reading(raw: bytes) -> None:
    for has_defaults in (False, True):
        expected = outcome(by_protobuf, raw, has_defaults)
        got = outcome(by_wire, raw, has_defaults)
        assert got == expected
        if not isinstance(expected, str):
            assert got[1].details is not None or expected[1].details.ByteSize() == 0


@st.composite
def details(draw):
    d = pps_pb2.PipelineInfo.Details(
        description=draw(texts), reason=draw(texts), datum_tries=draw(int64s), salt=draw(texts),
        output_branch=draw(texts), workers_requested=draw(int64s),
    )
    if draw(st.booleans()):
        d.transform.image = draw(texts)
        d.transform.cmd.extend(draw(st.lists(texts, max_size=3)))
        d.transform.env.update(draw(st.dictionaries(texts, texts, max_size=3)))
    if draw(st.booleans()):
        d.metadata.annotations.update(draw(st.dictionaries(texts, texts, max_size=4)))
        d.metadata.labels.update(draw(st.dictionaries(texts, texts, max_size=2)))
    if draw(st.booleans()):
        d.parallelism_spec.constant = draw(st.integers(0, (1 << 64) - 1))
    for _ in range(draw(st.integers(0, 2))):
        d.tolerations.add(key=draw(texts), value=draw(texts))
    if draw(st.booleans()):
        d.input.pfs.repo, d.input.pfs.glob = draw(texts), draw(texts)
    return d


@st.composite
def pipeline_infos(draw):
    info = pps_pb2.PipelineInfo(
        version=draw(st.integers(0, (1 << 64) - 1)), reason=draw(texts), stopped=draw(st.booleans()),
        state=draw(st.sampled_from(STATES)), parallelism=draw(st.integers(0, (1 << 64) - 1)),
        auth_token=draw(texts), details_json=draw(texts),
    )
    info.pipeline.name = draw(texts)
    if draw(st.booleans()):
        info.pipeline.project.name = draw(texts)
    if draw(st.booleans()):
        info.spec_commit.id = draw(texts)
        info.spec_commit.branch.repo.name = draw(texts)
    if draw(st.booleans()):
        info.details.CopyFrom(draw(details()))
    return info.SerializeToString()


def key(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def length_delimited(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


# top-level fields a PipelineInfo may carry that python-pachyderm 7.6 does not know: 14 (the
# effective spec JSON), and numbers no version has
unknown_fields = st.one_of(
    st.builds(lambda n, v: key(n, 0) + varint(v), st.integers(15, 5000), st.integers(0, (1 << 64) - 1)),
    st.builds(lambda n, b: key(n, 1) + b, st.integers(15, 5000), st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, b: key(n, 5) + b, st.integers(15, 5000), st.binary(min_size=4, max_size=4)),
    st.builds(length_delimited, st.integers(15, 5000), st.binary(max_size=20)),
    st.builds(lambda t: messages().PipelineInfoSpecs(effective_spec_json=t).SerializeToString(), texts),
    st.builds(lambda t: messages().PipelineInfoSpecs(user_spec_json=t).SerializeToString(), texts),
)
# a known field sent with another wire type: protobuf keeps it as an unknown field
mismatched = st.sampled_from([
    key(2, 2) + b"\x01x", key(5, 2) + b"\x00", key(1, 0) + b"\x07", key(12, 0) + b"\x01",
    key(13, 0) + b"\x05", key(6, 5) + b"abcd", key(14, 1) + b"12345678",
])
# an over-long but valid encoding of a varint (version 1 in ten bytes) and an enum's negative
overlong = st.sampled_from([key(2, 0) + b"\x81" + b"\x80" * 8 + b"\x00", key(5, 0) + varint(-1)])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pipeline_infos())
def test_one_message_reads_as_protobuf_reads_it(raw):
    same_reading(raw)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(pipeline_infos(), unknown_fields, mismatched, overlong), min_size=1, max_size=5))
def test_concatenated_parts_read_as_protobuf_reads_them(parts):
    """Concatenated messages are one message with every field repeated: a message field merged,
    a scalar's last value kept; unknown fields skipped."""
    same_reading(b"".join(parts))


@settings(max_examples=200, deadline=None)
@given(pipeline_infos(), st.data())
def test_a_truncated_message_fails_or_reads_as_protobuf(raw, data):
    cut = data.draw(st.integers(0, len(raw)))
    same_reading(raw[:cut])


@pytest.mark.parametrize("raw", [
    key(12, 3) + key(12, 4),  # a group: old, but protobuf still skips it
    length_delimited(6, b"\xff\xfe"),  # a reason that is not UTF-8
    key(2, 0) + b"\xff" * 11,  # a varint longer than ten bytes
    key(0, 0) + b"\x01",  # field number 0
])
def test_what_the_reader_leaves_to_protobuf(raw):
    with pytest.raises(Unusual):
        read_pipeline_info(raw)
    same_reading(raw)


def test_annotations_repeated_in_parts_keep_the_last_value():
    first = pps_pb2.PipelineInfo(details=pps_pb2.PipelineInfo.Details(
        metadata=pps_pb2.Metadata(annotations={"a": "1", "b": "2"})))
    second = pps_pb2.PipelineInfo(details=pps_pb2.PipelineInfo.Details(
        metadata=pps_pb2.Metadata(annotations={"a": "3"})))
    raw = first.SerializeToString() + second.SerializeToString()
    assert read_pipeline_info(raw).annotations == {"a": "3", "b": "2"}
    same_reading(raw)
