"""CreatePipelineRequest's protobuf descriptor as a plain table, so an unchanged deploy compares
specs without importing python_pachyderm (its package loads every generated module: ~0.25 s
of a no-op deploy's ~0.5 s).

pachd_forms reads a descriptor's names, JSON names, types, labels, presence, map entries and
enum value names, nothing else; the table holds exactly those, taken from python-pachyderm's own
descriptor by `table_of` and committed as pps_table.json. tests/test_pps_table.py checks the
file equals what the installed python-pachyderm gives; `python -m invoke_pachyderm.backends.pps_table`
writes it again. The objects below answer the same attribute names as protobuf's descriptors.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

TABLE_FILE = Path(__file__).with_name("pps_table.json")
ROOT = "pps_v2.CreatePipelineRequest"
ENUMS_ALSO = ("pps_v2.PipelineState",)  # read_deployed names a pipeline's state


class TableEnum:
    def __init__(self, full_name: str, names: dict[int, str]):
        self.full_name = full_name
        self.values_by_number = {number: SimpleNamespace(name=name, number=number) for number, name in names.items()}

    def Name(self, number: int) -> str:  # noqa: N802 - protobuf's EnumTypeWrapper.Name
        try:
            return self.values_by_number[number].name
        except KeyError:
            raise ValueError(f"Enum {self.full_name} has no name defined for value {number!r}") from None


class TableField:
    LABEL_OPTIONAL, LABEL_REQUIRED, LABEL_REPEATED = 1, 2, 3
    TYPE_BOOL, TYPE_STRING, TYPE_BYTES = 8, 9, 12

    def __init__(self, name: str, json_name: str, type: int, label: int, has_presence: bool):
        self.name, self.json_name, self.type, self.label = name, json_name, type, label
        self.has_presence = has_presence
        self.message_type: TableMessage | None = None
        self.enum_type: TableEnum | None = None


class TableMessage:
    def __init__(self, full_name: str, map_entry: bool):
        self.full_name = full_name
        self._options = SimpleNamespace(map_entry=map_entry)
        self.fields: list[TableField] = []
        self.fields_by_name: dict[str, TableField] = {}

    def GetOptions(self):  # noqa: N802 - protobuf's Descriptor.GetOptions
        return self._options


def table_of(root: Any, enums: tuple[Any, ...] = ()) -> dict[str, Any]:
    """The table of a protobuf message descriptor and every message type it reaches (protobuf's
    well-known types by name only: pachd_forms leaves their values as written)."""
    messages: dict[str, Any] = {}
    enum_names: dict[str, dict[str, str]] = {}

    def enum_entry(enum) -> None:
        enum_names[enum.full_name] = {str(v.number): v.name for v in enum.values}

    def visit(message) -> None:
        if message.full_name in messages:
            return
        entry: dict[str, Any] = {"map_entry": bool(message.GetOptions().map_entry), "fields": []}
        messages[message.full_name] = entry
        if message.full_name.startswith("google.protobuf."):
            return
        for field in message.fields:
            entry["fields"].append([
                field.name, field.json_name, field.type, field.label, bool(field.has_presence),
                field.message_type.full_name if field.message_type is not None else None,
                field.enum_type.full_name if field.enum_type is not None else None,
            ])
            if field.message_type is not None:
                visit(field.message_type)
            if field.enum_type is not None:
                enum_entry(field.enum_type)

    visit(root)
    for enum in enums:
        enum_entry(enum)
    return {"root": root.full_name, "messages": messages, "enums": enum_names}


@functools.lru_cache(maxsize=None)
def _loaded() -> tuple[dict[str, TableMessage], dict[str, TableEnum]]:
    table = json.loads(TABLE_FILE.read_text())
    enums = {name: TableEnum(name, {int(n): v for n, v in values.items()}) for name, values in table["enums"].items()}
    messages = {name: TableMessage(name, entry["map_entry"]) for name, entry in table["messages"].items()}
    for name, entry in table["messages"].items():
        message = messages[name]
        for field_name, json_name, kind, label, presence, message_name, enum_name in entry["fields"]:
            field = TableField(field_name, json_name, kind, label, presence)
            field.message_type = messages[message_name] if message_name else None
            field.enum_type = enums[enum_name] if enum_name else None
            message.fields.append(field)
            message.fields_by_name[field_name] = field
    return messages, enums


def request_descriptor() -> TableMessage:
    """pps_v2.CreatePipelineRequest, as pachd_forms reads it."""
    return _loaded()[0][ROOT]


def enum(full_name: str) -> TableEnum:
    return _loaded()[1][full_name]


def live_table() -> dict[str, Any]:
    """The table of the installed python-pachyderm (imports it)."""
    from python_pachyderm.proto.v2.pps import pps_pb2

    return table_of(pps_pb2.CreatePipelineRequest.DESCRIPTOR, (pps_pb2.PipelineState.DESCRIPTOR,))


if __name__ == "__main__":
    TABLE_FILE.write_text(json.dumps(live_table(), indent=0, sort_keys=True) + "\n")
    print(f"wrote {TABLE_FILE}")
