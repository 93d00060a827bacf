"""How pachd stores a pipeline spec, as pure functions: the forms a deployed and a rendered spec are
compared in (pachd < 2.8: pachd's own defaults filled in; >= 2.8: the user spec in protobuf field
names), RFC 7386 merges of the defaults, and the provenance annotations a diff ignores.

Each rule cites the pachd source it follows. Used by backends/pachd.py; stages/plan.py diffs with them.
"""
from __future__ import annotations

import copy
import posixpath
from typing import Any, Callable, Mapping

from invoke_pachyderm.core.artifacts import ANNOTATION_PREFIX

# Provenance that may differ between two deploys of the same pipeline code; the diff ignores it.
# The digest is known only after a push (not in a dry run); with pin_digest it is in the image anyway.
VOLATILE_ANNOTATIONS = frozenset(
    ANNOTATION_PREFIX + key
    for key in ("commit", "branch", "ci-run", "tool-version", "repository", "deployed-from", "digest",
                "rolled-back-from")
)


def is_volatile_annotation(key: str) -> bool:
    """`digest.<image>` and the like count as their base key (the prefix has a dot of its own)."""
    if key in VOLATILE_ANNOTATIONS:
        return True
    return key.startswith(ANNOTATION_PREFIX) and ANNOTATION_PREFIX + key[len(ANNOTATION_PREFIX):].split(".", 1)[0] in VOLATILE_ANNOTATIONS
DEFAULT_USER_IMAGE = "ubuntu:20.04"
# Request fields that are instructions for this one call, not part of the pipeline.
REQUEST_ONLY_FIELDS = ("update", "reprocess", "dry_run", "details_json", "spec_commit", "salt")


def normalize_spec(spec: Mapping[str, Any], project: str, rendered: bool = True) -> dict[str, Any]:
    """The spec as pachd < 2.8 would store it (its defaults filled in), without volatile provenance.

    `rendered` specs also get what pachd does to inputs before storing them (SortInput, trigger
    branches, CleanPath); a deployed spec already had that done, and re-sorting it would be wrong
    (pachd sorts before it fills in input names)."""
    copied: dict[str, Any] = copy.deepcopy(dict(spec))
    return _normalized(copied, project, rendered)


def _normalized(spec: dict[str, Any], project: str, rendered: bool) -> dict[str, Any]:
    for key in REQUEST_ONLY_FIELDS:
        spec.pop(key, None)
    name = spec.get("pipeline", {}).get("name", "")
    spec["pipeline"] = {"name": name}
    transform = spec.setdefault("transform", {})
    transform.setdefault("image", DEFAULT_USER_IMAGE)
    spec.setdefault("output_branch", "master")
    spec.setdefault("datum_tries", "3")
    spec["datum_tries"] = str(spec["datum_tries"])
    spec.setdefault("reprocess_spec", "until_success")
    if isinstance(spec.get("service"), dict):
        spec["service"].setdefault("type", "NodePort")
    spout = spec.get("spout")
    if isinstance(spout, dict) and isinstance(spout.get("service"), dict):
        spout["service"].setdefault("type", "NodePort")
    if rendered and isinstance(spec.get("input"), dict):
        sort_input(spec["input"])
        triggers: dict[str, int] = {}
        _visit_inputs(spec["input"], lambda node: _trigger_branch(node, name, triggers))
    _visit_inputs(spec.get("input"), lambda node: _input_defaults(node, name, project))
    _strip_volatile(spec)
    return _drop_empty(spec)


def normalize_pair(deployed: Mapping[str, Any], rendered: Mapping[str, Any], project: str):
    """(deployed, rendered) normalised for comparison on pachd < 2.8.

    pachd sets cron.start to "now" when absent, so a deployed start counts only where the
    rendered spec gives one (an explicit start is a real change)."""
    before = normalize_spec(deployed, project, rendered=False)
    after = normalize_spec(rendered, project, rendered=True)
    explicit: set[str] = set()
    _visit_inputs(after.get("input"), lambda node: _note_cron_start(node, explicit))
    _visit_inputs(before.get("input"), lambda node: _drop_cron_start(node, explicit))
    return before, after


def _note_cron_start(node: dict[str, Any], explicit: set[str]) -> None:
    cron = node.get("cron")
    if isinstance(cron, dict) and cron.get("start"):
        explicit.add(cron.get("name", ""))


def drop_cron_starts(spec: dict[str, Any]) -> dict[str, Any]:
    """Two deployed versions compared with each other: pachd's "now" starts do not count."""
    _visit_inputs(spec.get("input"), lambda node: _drop_cron_start(node, set()))
    return spec


def _drop_cron_start(node: dict[str, Any], explicit: set[str]) -> None:
    cron = node.get("cron")
    if isinstance(cron, dict) and cron.get("name", "") not in explicit:
        cron.pop("start", None)


def _strip_volatile(spec: dict[str, Any]) -> None:
    annotations = (spec.get("metadata") or {}).get("annotations")
    if isinstance(annotations, dict):
        for key in [k for k in annotations if is_volatile_annotation(k)]:
            annotations.pop(key)
        if not annotations:
            spec["metadata"].pop("annotations")
        if not spec["metadata"]:
            spec.pop("metadata")


def input_name(node: Any) -> str:
    """pps.InputName (src/pps/util.go): a pfs input's name; a group's first child's; else ""."""
    if not isinstance(node, dict):
        return ""
    if isinstance(node.get("pfs"), dict):
        return node["pfs"].get("name") or ""
    for key in ("cross", "join", "group", "union"):
        children = node.get(key)
        if children:
            return input_name(children[0])
    return ""


def sort_input(root: Any) -> None:
    """pps.SortInput: children first, then each cross/join/group/union stably by input name."""
    def visit(node):
        for key in ("cross", "join", "group", "union"):
            if isinstance(node.get(key), list):
                node[key].sort(key=input_name)
    _visit_inputs(root, visit)


def _trigger_branch(node: dict[str, Any], pipeline: str, triggers: dict[str, int]) -> None:
    """setInputDefaults: a pfs input with a trigger and no branch reads "<pipeline>-trigger-<n>"."""
    pfs = node.get("pfs")
    if isinstance(pfs, dict) and not pfs.get("branch") and isinstance(pfs.get("trigger"), dict):
        repo = pfs.get("repo", "")
        triggers[repo] = triggers.get(repo, 0) + 1
        pfs["branch"] = f"{pipeline}-trigger-{triggers[repo]}"
        pfs["trigger"].setdefault("branch", "master")
        if not pfs["trigger"]["branch"]:
            pfs["trigger"]["branch"] = "master"


def clean_path(path: str) -> str:
    """pfsfile.CleanPath: "" -> "/", "*" -> "/*", "abc/" -> "/abc"."""
    cleaned = posixpath.normpath(path) if path else "."
    if cleaned == ".":
        return "/"
    return "/" + cleaned.strip("/")


def _visit_inputs(node: Any, visit) -> None:
    """pps.VisitInput order: children first, then the node."""
    if not isinstance(node, dict):
        return
    for key in ("cross", "union", "join", "group"):
        for child in node.get(key) or []:
            _visit_inputs(child, visit)
    visit(node)


def _input_defaults(node: dict[str, Any], pipeline: str, project: str) -> None:
    pfs = node.get("pfs")
    if isinstance(pfs, dict):
        pfs.setdefault("branch", "master")
        pfs.setdefault("name", pfs.get("repo", ""))
        if pfs.get("glob"):
            pfs["glob"] = clean_path(pfs["glob"])
        if pfs.get("project") in (None, "", project):
            pfs.pop("project", None)
        if pfs.get("repo_type") in (None, "", "user"):
            pfs.pop("repo_type", None)
    cron = node.get("cron")
    if isinstance(cron, dict):
        cron.setdefault("repo", f"{pipeline}_{cron.get('name', '')}")
        if cron.get("project") in (None, "", project):
            cron.pop("project", None)
    git = node.get("git")
    if isinstance(git, dict):
        git.setdefault("branch", "master")


# -- pachd >= 2.8: the user's own JSON --------------------------------------------------
def user_spec_form(spec: Mapping[str, Any], project: str, descriptor) -> dict[str, Any]:
    """A user spec (rendered, or pachd's stored user_spec_json) in one form for comparison.

    Keys become protobuf field names and int64 strings numbers, so key and number forms do not
    count; explicit `false`, `0` and `null` stay, because on pachd >= 2.8 they override cluster
    and project defaults. Request-only fields, the project (when it is ours) and volatile
    provenance are left out."""
    form = proto_field_names(copy.deepcopy(dict(spec)), descriptor)
    for key in REQUEST_ONLY_FIELDS:
        form.pop(key, None)
    pipeline = form.get("pipeline") if isinstance(form.get("pipeline"), dict) else {}
    form["pipeline"] = {"name": pipeline.get("name", "")}
    pipeline_project = pipeline.get("project")
    if isinstance(pipeline_project, dict) and pipeline_project.get("name") not in (None, "", project):
        form["pipeline"]["project"] = pipeline_project
    _strip_volatile(form)
    return form


_INT64_TYPES = (3, 4, 6, 16, 18)  # TYPE_INT64, UINT64, FIXED64, SFIXED64, SINT64


def proto_field_names(value: Any, descriptor) -> Any:
    """Keys to protobuf field names (JSON names accepted), recursively; unknown keys kept."""
    if not isinstance(value, dict) or descriptor.full_name.startswith("google.protobuf."):
        return value
    table = _table(descriptor)
    result = {}
    for key, item in value.items():
        entry = table.get(key)
        if entry is None:
            result[key] = item
            continue
        field, name, kind = entry[0], entry[1], entry[2]
        if kind == _SINGULAR:
            result[name] = item
        elif kind == _MESSAGE:
            result[name] = None if item is None else proto_field_names(item, field.message_type)
        elif kind is None:
            result[name] = _field_value(item, field)
        else:
            result[name] = _plain_value(item, kind)
    return result


_FIELDS_BY_KEY: dict[Any, dict[str, Any]] = {}


def _fields_by_key(descriptor) -> dict[str, Any]:
    """A message's fields by name and by JSON name, built once per message type."""
    fields = _FIELDS_BY_KEY.get(descriptor)
    if fields is None:
        fields = {}
        for field in descriptor.fields:
            fields[field.name] = fields[field.json_name] = field
        _FIELDS_BY_KEY[descriptor] = fields
    return fields


_SINGULAR, _REPEATED, _MAP, _MESSAGE = 0, 1, 2, 3
# how _is_unset decides for a field's value that is not None (see there)
_UNSET_REPEATED, _UNSET_NEVER, _UNSET_ENUM, _UNSET_BOOL, _UNSET_STRING, _UNSET_NUMBER = range(6)
_TABLES: dict[Any, dict[str, tuple]] = {}


def _table(descriptor) -> dict[str, tuple]:
    """A message's fields by name and by JSON name, each as (field, field name, kind for
    proto_field_names, kind for message_form, _UNSET_* code, whether None is unset, the enum's
    zero name), built once per message type. A kind says what _field_value would do, without
    its calls: _SINGULAR gives the value back as it is, _REPEATED / _MAP a copy of the list /
    map, _MESSAGE converts a singular message, None: ask _field_value."""
    table = _TABLES.get(descriptor)
    if table is None:
        table = {}
        for field in descriptor.fields:
            kind = _plain_kind(field)
            form_kind = kind
            if kind is not None:
                value_field = field.message_type.fields_by_name["value"] if kind == _MAP else field
                if value_field.type in _FLOAT_TYPES:
                    form_kind = None  # an int becomes a float
            message = field.message_type
            if kind is None and message is not None and not message.GetOptions().map_entry \
                    and field.label != field.LABEL_REPEATED:
                kind = form_kind = _MESSAGE
            entry = (field, field.name, kind, form_kind, *_unset_code(field))
            table[field.name] = table[field.json_name] = entry
        _TABLES[descriptor] = table
    return table


def _unset_code(field) -> tuple[int, bool, str | None]:
    """(_UNSET_* code, whether None is unset, the enum's zero name): _is_unset, decided per field."""
    message = field.message_type
    none_unset = message is None or message.full_name != "google.protobuf.Value"
    zero = None
    if field.label == field.LABEL_REPEATED:
        code = _UNSET_REPEATED
    elif message is not None or field.has_presence:
        code = _UNSET_NEVER
    elif field.enum_type is not None:
        code = _UNSET_ENUM
        zero_value = field.enum_type.values_by_number.get(0)
        zero = zero_value.name if zero_value is not None else None
    elif field.type == field.TYPE_BOOL:
        code = _UNSET_BOOL
    elif field.type in (field.TYPE_STRING, field.TYPE_BYTES):
        code = _UNSET_STRING
    else:
        code = _UNSET_NUMBER
    return code, none_unset, zero


def _is_plain_scalar(field) -> bool:
    """_scalar_value and _form_scalar give any value of `field` back as it is (floats aside)."""
    message = field.message_type
    if message is not None:
        return message.full_name.startswith("google.protobuf.")
    return field.type not in _INT64_TYPES and field.enum_type is None


def _plain_kind(field) -> int | None:
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        return _MAP if _is_plain_scalar(message.fields_by_name["value"]) else None
    if not _is_plain_scalar(field):
        return None
    return _REPEATED if field.label == field.LABEL_REPEATED else _SINGULAR


def _plain_value(item: Any, kind: int) -> Any:
    """What _field_value gives for a field of kind _REPEATED or _MAP (see _table)."""
    if kind == _REPEATED:
        return list(item) if isinstance(item, list) else item
    if kind == _MAP:
        return dict(item) if isinstance(item, dict) else item
    return item


def _field_value(item: Any, field, convert: Callable[[Any, Any], Any] | None = None) -> Any:
    """`convert` (default _scalar_value) applied to each map value, each list element, or the value."""
    convert = convert or _scalar_value
    message = field.message_type
    if message is not None and message.GetOptions().map_entry:
        value_field = message.fields_by_name["value"]
        return {k: convert(v, value_field) for k, v in item.items()} if isinstance(item, dict) else item
    if field.label == field.LABEL_REPEATED and isinstance(item, list):
        return [convert(v, field) for v in item]
    return convert(item, field)


def _scalar_value(item: Any, field) -> Any:
    if item is None:
        return None
    if field.message_type is not None:
        return proto_field_names(item, field.message_type)
    if field.type in _INT64_TYPES and isinstance(item, str):
        try:
            return int(item)
        except ValueError:
            return item
    if field.enum_type is not None and isinstance(item, int) and not isinstance(item, bool):
        enum_value = field.enum_type.values_by_number.get(item)
        return enum_value.name if enum_value else item
    return item


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396, as pachd's mergePatch (src/server/pps/server/defaults.go) applies defaults."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            merged[key] = merge_patch(merged.get(key), value)
        else:
            merged[key] = value  # merge_patch's answer for a patch that is no object
    return merged


# map<string, string> fields: protobuf JSON keeps every entry, even "" or "0" (DEBUG=0 is not unset).
MAP_FIELDS = frozenset({"env", "annotations", "labels", "node_selector"})


def _drop_empty(value: Any, is_map: bool = False) -> Any:
    """Protobuf JSON omits default (empty/zero/false) values; do the same on both sides."""
    if isinstance(value, dict):
        cleaned = {k: _drop_empty(v, k in MAP_FIELDS) for k, v in value.items()}
        if is_map:
            return cleaned
        return {k: v for k, v in cleaned.items() if v not in (None, "", 0, False, [], {}, "0")}
    if isinstance(value, list):
        return [_drop_empty(v) for v in value]
    return value


_FLOAT_TYPES = (1, 2)  # TYPE_DOUBLE, TYPE_FLOAT


def message_form(value: Any, descriptor) -> Any:
    """A request dict (JSON or field names) in field names, without what protobuf equality does not
    see: `""`, `0`, `false`, `null`, `[]`, `{}` in fields without presence are left out and ints
    in float fields become floats. Dicts with the same message_form parse (json_format.ParseDict)
    to equal messages; dicts whose forms differ may still, so a difference means "parse and
    compare", never "different". ValueError on a field written twice (by name and JSON name)."""
    if not isinstance(value, dict) or descriptor.full_name.startswith("google.protobuf."):
        return value
    table = _table(descriptor)
    result = {}
    for key, item in value.items():
        entry = table.get(key)
        if entry is None:
            result[key] = item
            continue
        field, name, _, kind, unset, none_unset, zero = entry
        if name in result:
            raise ValueError(f"{descriptor.full_name}.{name} written twice")
        if kind == _MESSAGE:
            item = None if item is None else message_form(item, field.message_type)
        elif kind is None:
            item = _field_value(item, field, _form_scalar)
        elif kind != _SINGULAR:
            item = _plain_value(item, kind)
        # _is_unset(item, field), from the field's _unset_code
        if item is None:
            if none_unset:
                continue
        elif unset == _UNSET_NEVER:
            pass
        elif unset == _UNSET_REPEATED:
            if item == [] or item == {}:
                continue
        elif unset == _UNSET_STRING:
            if item == "":
                continue
        elif unset == _UNSET_BOOL:
            if item is False:
                continue
        elif unset == _UNSET_ENUM:
            if type(item) is int and item == 0 or (zero is not None and item == zero):
                continue
        elif type(item) in (int, float) and item == 0:
            continue
        result[name] = item
    return result


def _form_scalar(item: Any, field) -> Any:
    if field.message_type is not None:
        return message_form(item, field.message_type) if item is not None else None
    item = _scalar_value(item, field)
    if field.type in _FLOAT_TYPES and type(item) is int:
        return float(item)
    return item


def _is_unset(item: Any, field) -> bool:
    if item is None:  # ParseDict clears the field
        return field.message_type is None or field.message_type.full_name != "google.protobuf.Value"
    if field.label == field.LABEL_REPEATED:
        return item == [] or item == {}
    if field.message_type is not None or field.has_presence:
        return False
    if field.enum_type is not None:
        zero = field.enum_type.values_by_number.get(0)
        return type(item) is int and item == 0 or (zero is not None and item == zero.name)
    if field.type == field.TYPE_BOOL:
        return item is False
    if field.type in (field.TYPE_STRING, field.TYPE_BYTES):
        return item == ""
    return type(item) in (int, float) and item == 0


def strings_differ(a: Any, b: Any, descriptor) -> bool:
    """Whether two message_form dicts hold different values in a singular string field, at any
    depth of singular message fields both set: then the messages they parse to are not equal
    (protobuf compares strings exactly; an absent string is ""). False proves nothing."""
    if not (isinstance(a, dict) and isinstance(b, dict)) or descriptor.full_name.startswith("google.protobuf."):
        return False
    fields = _fields_by_key(descriptor)
    for key in a.keys() | b.keys():
        field = fields.get(key)
        if field is None or field.label == field.LABEL_REPEATED:
            continue
        mine, theirs = a.get(key), b.get(key)
        if field.message_type is not None:
            if mine is not None and theirs is not None and strings_differ(mine, theirs, field.message_type):
                return True
        elif field.type == field.TYPE_STRING:
            mine, theirs = ("" if v is None else v for v in (mine, theirs))
            if isinstance(mine, str) and isinstance(theirs, str) and mine != theirs:
                return True
    return False
