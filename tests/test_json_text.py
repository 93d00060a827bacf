"""core/json_text.indented is json.dumps(value, indent=2, sort_keys=True), character for character
(issue 12: a deploy writes every rendered spec to out_dir in that form)."""
from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from invoke_pachyderm.core.json_text import indented

LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(), st.sampled_from(["", "ü", "\u2028", "\x00", '"\\/', "\U0001f600"]))
VALUES = st.recursive(LEAVES, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
                      max_leaves=40)


@settings(max_examples=500, deadline=None)
@given(VALUES)
def test_the_text_is_json_dumps(value):
    assert indented(value) == json.dumps(value, indent=2, sort_keys=True)


class Text(str):
    pass


class Number(int):
    pass


@pytest.mark.parametrize("value", [
    {1: "a", 2: "b"},  # keys json.dumps converts
    {"a": (1, 2)},  # a tuple
    {"a": Text("x"), "b": Number(3)},  # subclasses
    {"a": True, "b": 1, "c": 1.0, "d": -0.0, "e": math.inf, "f": 1e300},
    [[[[["deep"]]]]],
])
def test_other_types_give_json_dumps_text_too(value):
    assert indented(value) == json.dumps(value, indent=2, sort_keys=True)


def test_what_json_dumps_refuses_it_refuses():
    cycle: list = []
    cycle.append(cycle)
    for value in ({"a": {1, 2}}, {1: "a", "b": 2}, cycle):
        with pytest.raises((TypeError, ValueError)):
            json.dumps(value, indent=2, sort_keys=True)
        with pytest.raises((TypeError, ValueError)):
            indented(value)


def test_deep_nesting_is_json_dumps_text():
    value: object = "leaf"
    for _ in range(150):
        value = {"k": [value]}
    assert indented(value) == json.dumps(value, indent=2, sort_keys=True)


def test_a_change_record_is_printed_as_asdict_gives_it():
    from dataclasses import asdict

    from invoke_pachyderm.core.artifacts import PipelineChange, _fields_of

    for change in (PipelineChange("a", "unchanged", version=3, previous_version=3),
                   PipelineChange("b", "update", diff="- x\n+ y\n", version=None, defaults_changed=True)):
        assert _fields_of(change) == asdict(change)
    odd = PipelineChange("c", "create", diff=["not", "text"])  # type: ignore[arg-type]
    assert _fields_of(odd) == asdict(odd) and _fields_of(odd)["diff"] is not odd.diff  # asdict's copy
