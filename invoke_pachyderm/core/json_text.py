"""`json.dumps(value, indent=2, sort_keys=True)`, the same text, faster.

With `indent`, the json module encodes in pure Python (its C encoder is for compact output
only), about 30 us for a pipeline spec: a deploy writes each rendered spec to out_dir that way.
`indented` builds the same text with the C string encoder for the strings and one join, for
the types a parsed spec holds (dict with str keys, list, str, int, float, bool, None, exactly
those types); anything else, or nesting deeper than json's own encoder would go without
hitting a cycle check here, is left to json.dumps itself (its text, or its error).
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Callable

_INFINITY = float("inf")
_MAX_DEPTH = 100  # deeper (or a cycle): json.dumps decides


class _Unusual(Exception):
    pass


def indented(value: Any, default: Callable[[Any], Any] | None = None) -> str:
    """json.dumps(value, indent=2, sort_keys=True, default=default), character for character."""
    pieces: list[str] = []
    try:
        _encode(value, pieces, "\n", 0)
    except _Unusual:
        return json.dumps(value, indent=2, sort_keys=True, default=default)
    return "".join(pieces)


def _encode(value: Any, pieces: list[str], newline: str, depth: int) -> None:
    kind = type(value)
    if kind is str:
        pieces.append(encode_basestring_ascii(value))
    elif value is None:
        pieces.append("null")
    elif value is True:
        pieces.append("true")
    elif value is False:
        pieces.append("false")
    elif kind is int:
        pieces.append(int.__repr__(value))
    elif kind is float:
        pieces.append(_float(value))
    elif kind is dict:
        if not value:
            pieces.append("{}")
            return
        if depth >= _MAX_DEPTH:
            raise _Unusual
        inner = newline + "  "
        separator = "," + inner
        pieces.append("{" + inner)
        first = True
        for key in value:
            if type(key) is not str:
                raise _Unusual  # json.dumps converts (or refuses) such keys, and sorts them its way
        for key in sorted(value):
            if not first:
                pieces.append(separator)
            first = False
            pieces.append(encode_basestring_ascii(key) + ": ")
            _encode(value[key], pieces, inner, depth + 1)
        pieces.append(newline + "}")
    elif kind is list:
        if not value:
            pieces.append("[]")
            return
        if depth >= _MAX_DEPTH:
            raise _Unusual
        inner = newline + "  "
        separator = "," + inner
        pieces.append("[" + inner)
        first = True
        for item in value:
            if not first:
                pieces.append(separator)
            first = False
            _encode(item, pieces, inner, depth + 1)
        pieces.append(newline + "]")
    else:
        raise _Unusual


def _float(value: float) -> str:
    """json's floatstr (allow_nan=True)."""
    if value != value:
        return "NaN"
    if value == _INFINITY:
        return "Infinity"
    if value == -_INFINITY:
        return "-Infinity"
    return float.__repr__(value)
