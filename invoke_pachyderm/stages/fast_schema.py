"""A yes/no JSON Schema check, compiled to closures, for the keywords our shipped schema uses.

jsonschema (imported on demand by `validate`) walks the schema for every spec and costs ~75 ms to
import; this answers only "valid?", ~10x faster, and `validate` asks jsonschema for the message
only when the answer is no. It follows jsonschema's Draft 2020-12 semantics keyword by keyword
(`type` counts 1.0 as an integer and never a bool as a number; `enum` tells True from 1; `pattern`
is `re.search`). A keyword it does not know raises `Unsupported` when the schema is compiled, and
`validate` then uses jsonschema alone: a schema change can make validation slower, never laxer.
tests/test_schema.py checks that both agree on every spec it has.
"""
from __future__ import annotations

import re
from typing import Any, Callable

Check = Callable[[Any], bool]

# Keywords that assert nothing (annotations), as in Draft 2020-12.
_ANNOTATIONS = frozenset({"$comment", "$schema", "$defs", "description", "examples", "title", "default",
                          "contentEncoding", "contentMediaType", "deprecated", "readOnly", "writeOnly"})


class Unsupported(Exception):
    """The schema uses a keyword (or a $ref) this checker does not implement."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Check] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _equal(one: Any, two: Any) -> bool:
    """jsonschema._utils.equal: JSON equality, where true is not 1 and false is not 0."""
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[k], two[k]) for k in one)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two))
    if isinstance(one, bool) or isinstance(two, bool):
        return type(one) is type(two) and one == two
    return one == two


class _Compiler:
    def __init__(self, root: dict[str, Any]):
        self.root = root
        self.refs: dict[str, Check] = {}

    def ref(self, pointer: str) -> Check:
        if pointer not in self.refs:
            if not pointer.startswith("#/$defs/") or "/" in pointer[len("#/$defs/"):]:
                raise Unsupported(f"$ref {pointer}")
            name = pointer[len("#/$defs/"):].replace("~1", "/").replace("~0", "~")
            target = self.root.get("$defs", {}).get(name)
            if target is None:
                raise Unsupported(f"$ref {pointer}")
            slot: list[Check] = []
            self.refs[pointer] = lambda v: slot[0](v)  # a recursive $ref reaches the slot, filled below
            slot.append(self.compile(target))
        return self.refs[pointer]

    def compile(self, schema: Any) -> Check:
        if schema is True:
            return lambda v: True
        if schema is False:
            return lambda v: False
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r}")
        compiled = [self.keyword(key, value, schema) for key, value in schema.items() if key not in _ANNOTATIONS]
        checks = [c for c in compiled if c is not None]
        if not checks:
            return lambda v: True
        if len(checks) == 1:
            return checks[0]
        return lambda v: all(check(v) for check in checks)

    def keyword(self, key: str, value: Any, schema: dict[str, Any]) -> Check | None:
        if key == "type":
            kinds = [_TYPES[t] for t in ([value] if isinstance(value, str) else value)]
            return kinds[0] if len(kinds) == 1 else (lambda v: any(kind(v) for kind in kinds))
        if key == "$ref":
            return self.ref(value)
        if key == "properties":
            props = {name: self.compile(sub) for name, sub in value.items()}

            def check_properties(v: Any) -> bool:
                # the instance's keys the schema names, not every name it has (a spec sets a few of
                # the request's ~50 fields): the same (name, value) pairs checked, the same verdict
                if not isinstance(v, dict):
                    return True
                for name, item in v.items():
                    check = props.get(name)
                    if check is not None and not check(item):
                        return False
                return True

            return check_properties
        if key == "additionalProperties":
            if "patternProperties" in schema:
                raise Unsupported("patternProperties")
            known = frozenset(schema.get("properties", ()))
            if value is False:
                return lambda v: not isinstance(v, dict) or all(name in known for name in v)
            extra = self.compile(value)
            return lambda v: not isinstance(v, dict) or all(
                extra(item) for name, item in v.items() if name not in known
            )
        if key == "required":
            names = tuple(value)
            return lambda v: not isinstance(v, dict) or all(name in v for name in names)
        if key == "not":
            sub = self.compile(value)
            return lambda v: not sub(v)
        if key == "anyOf":
            subs = [self.compile(s) for s in value]
            return lambda v: any(sub(v) for sub in subs)
        if key == "dependentSchemas":
            deps = {name: self.compile(sub) for name, sub in value.items()}
            return lambda v: not isinstance(v, dict) or all(
                check(v) for name, check in deps.items() if name in v
            )
        if key == "items":
            if "prefixItems" in schema:
                raise Unsupported("prefixItems")
            sub = self.compile(value)
            return lambda v: not isinstance(v, list) or all(sub(item) for item in v)
        if key == "enum":
            allowed = list(value)
            return lambda v: any(_equal(v, each) for each in allowed)
        if key == "pattern":
            # compiled on first use: the schema's int64 and timestamp patterns are long, and most
            # specs give those fields as numbers or not at all
            return lambda v: not isinstance(v, str) or re.search(value, v) is not None
        if key == "minimum":
            return lambda v: not _is_number(v) or v >= value
        if key == "maximum":
            return lambda v: not _is_number(v) or v <= value
        if key == "minLength":
            return lambda v: not isinstance(v, str) or len(v) >= value
        if key == "maxProperties":
            return lambda v: not isinstance(v, dict) or len(v) <= value
        raise Unsupported(key)


def compile_schema(schema: dict[str, Any]) -> Check:
    """A function telling whether an instance is valid; raises Unsupported for unknown keywords."""
    return _Compiler(schema).compile(schema)
