"""Scaffolding: write a working project from the templates shipped in `invoke_pachyderm.scaffold.templates`.

Knows nothing of Invoke or argparse: `invoke init` and `invoke-pachyderm init` both call `scaffold`.

Rules, in short (docs/ci-and-scaffolding.md has the long form):

* A file that does not exist is written ("created").
* A file that exists with the same content is "unchanged".
* A file that exists with other content is "skipped", unless `force`, then "overwritten".
* Two files are merged instead, because they usually hold the user's own settings:
  - ``pyproject.toml``: tables of the template the file lacks (``[tool.invoke-pachyderm]``,
    ``[tool.pytest.ini_options]``) are appended; nothing else is touched. With `force`, the
    existing ``[tool.invoke-pachyderm]`` table is replaced by the template's.
  - ``.gitignore``: lines it lacks are appended.

Template file names map as: ``dot-x`` -> ``.x``, a ``__module__`` part -> the module name,
a trailing ``.tmpl`` is dropped. ``%%key%%`` in the contents is filled in from `ScaffoldValues`.
"""
from __future__ import annotations

import keyword
import re
import sys
from dataclasses import asdict, dataclass, field
from importlib import resources
from importlib.abc import Traversable
from pathlib import Path
from typing import Any, Iterator

from invoke_pachyderm.core.errors import ConfigError
from invoke_pachyderm.scaffold.defaults import DEFAULT_BASE_IMAGE, DEFAULT_INPUT_REPO, DEFAULT_REGISTRY

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

TEMPLATE_PACKAGE = "invoke_pachyderm.scaffold.templates"
TEMPLATE_DIR = "project"
OUR_TABLE = "tool.invoke-pachyderm"
MERGED_TABLES = ("tool.pytest.ini_options", OUR_TABLE)  # appended to an existing pyproject.toml if absent

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
_REPO = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"^(?:(?P<host>[A-Za-z0-9.-]+(?::[0-9]+)?)/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$"
)
# `--ci`: which CI configuration is written; the others' files are left out.
CI_FILES = {"github": ".github/workflows/pachyderm.yml", "gitlab": ".gitlab-ci.yml"}
_PLACEHOLDER = re.compile(r"%%([a-z_]+)%%")
_HEADER = re.compile(r"^\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")


@dataclass(frozen=True)
class ScaffoldValues:
    name: str
    module: str
    pipeline: str
    image: str
    input_repo: str
    base_image: str

    def as_placeholders(self) -> dict[str, str]:
        return asdict(self)


@dataclass
class FileAction:
    path: str  # relative to the project, posix
    action: str  # created | overwritten | merged | unchanged | skipped
    reason: str = ""


@dataclass
class ScaffoldResult:
    directory: Path
    values: ScaffoldValues
    files: list[FileAction] = field(default_factory=list)
    next_steps: list[str] = field(default_factory=list)

    @property
    def written(self) -> list[str]:
        return [f.path for f in self.files if f.action in ("created", "overwritten", "merged")]

    @property
    def skipped(self) -> list[str]:
        return [f.path for f in self.files if f.action == "skipped"]

    def to_json(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            **self.values.as_placeholders(),
            "files": [asdict(f) for f in self.files],
            "written": self.written,
            "skipped": self.skipped,
            "next_steps": self.next_steps,
        }

    def human(self) -> str:
        width = len("overwritten")
        lines = [
            f"{f.action:<{width}}  {f.path}" + (f"  ({f.reason})" if f.reason else "") for f in self.files
        ]
        if self.next_steps:
            lines += ["", "next:"] + [f"  {step}" for step in self.next_steps]
        return "\n".join(lines)


# -- values ---------------------------------------------------------------------------------
def default_name(directory: Path) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", directory.resolve().name.lower()).strip("-")
    return slug[:63] or "pipeline"


def module_name(name: str) -> str:
    module = re.sub(r"[^0-9A-Za-z_]", "_", name).lower()
    if module[:1].isdigit():
        module = "p_" + module
    if keyword.iskeyword(module):
        module += "_"
    return module


def make_values(
    directory: Path,
    name: str | None = None,
    image: str | None = None,
    input_repo: str | None = None,
    base_image: str | None = None,
) -> ScaffoldValues:
    """Defaults filled in and every value checked, so the project renders and validates."""
    name = name or default_name(directory)
    if not _NAME.match(name):
        raise ConfigError(
            f"project name {name!r} is not usable as a pipeline name: use letters, digits, '-' and '_' "
            "(at most 63, starting with a letter or digit); pass --name"
        )
    input_repo = input_repo or DEFAULT_INPUT_REPO
    if not _REPO.match(input_repo):
        raise ConfigError(f"input repo {input_repo!r}: use letters, digits, '-' and '_' (at most 63)")
    if input_repo == name:
        raise ConfigError(
            f"input repo {input_repo!r} has the pipeline's name; a pipeline writes to a repo of its own "
            "name, so pick another --input-repo or --name"
        )
    image = image or f"{DEFAULT_REGISTRY}/{name.lower().replace('_', '-')}"
    match = _IMAGE.match(image)
    if not match:
        last = image.rsplit("/", 1)[-1]
        if ":" in last or "@" in last:
            raise ConfigError(
                f"image {image!r} has a tag or digest; give the repository only "
                "(every build is tagged with its git commit)"
            )
        raise ConfigError(
            f"image {image!r} is not a valid image repository: [registry[:port]/]path, lowercase, "
            "e.g. localhost:5000/word-count or ghcr.io/acme/word-count"
        )
    base_image = (base_image or DEFAULT_BASE_IMAGE).strip()
    if not base_image or any(c.isspace() for c in base_image):
        raise ConfigError(f"base image {base_image!r} is not an image reference")
    return ScaffoldValues(
        name=name,
        module=module_name(name),
        pipeline=name,
        image=image,
        input_repo=input_repo,
        base_image=base_image,
    )


# -- templates ------------------------------------------------------------------------------
def template_root() -> Traversable:
    return resources.files(TEMPLATE_PACKAGE).joinpath(TEMPLATE_DIR)


def iter_templates(root: Traversable | None = None, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Traversable]]:
    """(source path parts, file) for every template file, sorted, caches excluded."""
    root = template_root() if root is None else root
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if entry.name == "__pycache__" or entry.name.endswith((".pyc", ".pyo")):
            continue
        if entry.is_dir():
            yield from iter_templates(entry, prefix + (entry.name,))
        else:
            yield prefix + (entry.name,), entry


def target_path(parts: tuple[str, ...], values: ScaffoldValues) -> str:
    mapped = []
    for part in parts:
        if part.startswith("dot-"):
            part = "." + part[len("dot-"):]
        part = part.replace("__module__", values.module)
        mapped.append(part)
    if mapped[-1].endswith(".tmpl"):
        mapped[-1] = mapped[-1][: -len(".tmpl")]
    return "/".join(mapped)


def fill(text: str, values: ScaffoldValues, source: str) -> str:
    placeholders = values.as_placeholders()

    def replace(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in placeholders:
            raise KeyError(f"template {source}: unknown placeholder %%{key}%%")
        return placeholders[key]

    return _PLACEHOLDER.sub(replace, text)


def render_templates(values: ScaffoldValues, ci: str = "github") -> dict[str, str]:
    """Target relative path -> content, for every template file (of the chosen CI only)."""
    if ci not in CI_FILES:
        raise ConfigError(f"--ci {ci!r}: use one of {', '.join(CI_FILES)}")
    skipped = {path for name, path in CI_FILES.items() if name != ci}
    files = {}
    for parts, entry in iter_templates():
        source = "/".join(parts)
        target = target_path(parts, values)
        if target not in skipped:
            files[target] = fill(entry.read_text(encoding="utf-8"), values, source)
    return files


# -- writing --------------------------------------------------------------------------------
def scaffold(
    directory: str | Path,
    name: str | None = None,
    image: str | None = None,
    input_repo: str | None = None,
    base_image: str | None = None,
    force: bool = False,
    ci: str = "github",
) -> ScaffoldResult:
    directory = Path(directory).expanduser().resolve()
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory} exists and is not a directory")
    known = existing_values(directory)
    values = make_values(
        directory, name or known.get("name"), image or known.get("image"), input_repo, base_image
    )
    files = render_templates(values, ci)
    directory.mkdir(parents=True, exist_ok=True)
    result = ScaffoldResult(directory=directory, values=values)
    for relative, content in files.items():
        path = directory / relative
        if relative == "pyproject.toml" and path.is_file():
            action = merge_pyproject(path, content, force)
        elif relative == ".gitignore" and path.is_file():
            action = merge_lines(path, content)
        else:
            action = write_file(path, content, force)
        action.path = relative
        result.files.append(action)
    result.next_steps = next_steps(directory, values)
    return result


def existing_values(directory: Path) -> dict[str, str]:
    """Name and image of a project that already has a pyproject.toml, so a second init agrees with it."""
    path = directory / "pyproject.toml"
    try:
        data = tomllib.loads(_read(path)) if path.is_file() else {}
    except tomllib.TOMLDecodeError:
        return {}
    known = {}
    name = _lookup(data, "project.name")
    if isinstance(name, str) and _NAME.match(name):
        known["name"] = name
    image = _lookup(data, OUR_TABLE + ".image")
    if isinstance(image, str) and _IMAGE.match(image):
        known["image"] = image
    return known


def write_file(path: Path, content: str, force: bool) -> FileAction:
    if path.is_dir():
        return FileAction("", "skipped", "a directory is in the way")
    if path.exists():
        if _read(path) == content:
            return FileAction("", "unchanged")
        if not force:
            return FileAction("", "skipped", "exists; --force to overwrite")
        path.write_text(content, encoding="utf-8")
        return FileAction("", "overwritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return FileAction("", "created")


def merge_lines(path: Path, content: str) -> FileAction:
    existing = _read(path)
    have = {line.strip() for line in existing.splitlines()}
    missing = [line for line in content.splitlines() if line.strip() and line.strip() not in have]
    if not missing:
        return FileAction("", "unchanged")
    prefix = "" if existing.endswith("\n") or not existing else "\n"
    path.write_text(existing + prefix + "# added by invoke-pachyderm init\n" + "\n".join(missing) + "\n", encoding="utf-8")
    return FileAction("", "merged", "appended " + ", ".join(missing))


def merge_pyproject(path: Path, template: str, force: bool) -> FileAction:
    existing = _read(path)
    try:
        data = tomllib.loads(existing)
    except tomllib.TOMLDecodeError as error:
        return FileAction("", "skipped", f"not valid TOML ({error}); fix it and run init again")
    tables = split_tables(template)
    wanted = _lookup(tomllib.loads(template), OUR_TABLE)
    text, notes = existing, []
    for table in MERGED_TABLES:
        if _lookup(data, table) is None:
            text = text.rstrip("\n") + ("\n\n" if text.strip() else "") + tables[table]
            notes.append(f"appended [{table}]")
    ours = _lookup(data, OUR_TABLE)
    if ours is not None and ours != wanted:
        if not force:
            return FileAction("", "skipped", f"has its own [{OUR_TABLE}]; --force replaces that table only")
        replaced = replace_table(text, OUR_TABLE, tables[OUR_TABLE])
        if replaced is None:
            return FileAction("", "skipped", f"[{OUR_TABLE}] is not a table header here; edit it by hand")
        text = replaced
        notes.append(f"replaced [{OUR_TABLE}]")
    if text == existing:
        return FileAction("", "unchanged")
    try:
        merged = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        return FileAction("", "skipped", f"merging would not be valid TOML ({error}); add the tables by hand")
    if _lookup(merged, OUR_TABLE) != wanted:
        return FileAction("", "skipped", f"could not merge [{OUR_TABLE}] cleanly; add it by hand")
    path.write_text(text, encoding="utf-8")
    return FileAction("", "merged", "; ".join(notes))


def split_tables(text: str) -> dict[str, str]:
    """Header name -> the text of that table (its header line up to the next header)."""
    tables: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        match = _HEADER.match(line)
        if match:
            current = _normal(match.group(1))
            tables[current] = [line]
        elif current is not None:
            tables[current].append(line)
    return {name: "\n".join(lines).strip("\n") + "\n" for name, lines in tables.items()}


def replace_table(text: str, table: str, replacement: str) -> str | None:
    """Replace `[table]` (and its sub-tables) in text; None if there is no such header line."""
    lines = text.splitlines(keepends=True)
    start = None
    for index, line in enumerate(lines):
        match = _HEADER.match(line.rstrip("\n"))
        if match and _normal(match.group(1)) == table:
            start = index
            break
    if start is None:
        return None
    end = len(lines)
    for index in range(start + 1, len(lines)):
        match = _HEADER.match(lines[index].rstrip("\n"))
        if match and not _normal(match.group(1)).startswith(table + "."):
            end = index
            break
    tail = lines[end:]
    body = replacement.rstrip("\n") + "\n" + ("\n" if tail else "")
    return "".join(lines[:start]) + body + "".join(tail)


def _normal(header: str) -> str:
    return ".".join(part.strip().strip('"').strip("'") for part in header.split("."))


def _lookup(data: dict[str, Any], dotted: str) -> Any:
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def next_steps(directory: Path, values: ScaffoldValues) -> list[str]:
    steps = []
    if not _in_git_repo(directory):
        steps.append(f"cd {directory} && git init && git add -A && git commit -m 'Scaffold {values.name}'")
    else:
        steps.append(f"cd {directory} && git add -A && git commit -m 'Scaffold {values.name}'")
    steps += [
        f"{_python()} -m pip install -e '.[dev]'   # the project and its dev tools (pytest), next to invoke-pachyderm",
        "invoke test && invoke render-spec",
        f"pachctl create repo {values.input_repo}   # the pipeline's input, once",
        "invoke deploy",
        "invoke hooks.install   # test and check specs before every git push",
    ]
    return steps


def _python() -> str:
    """The Python running invoke-pachyderm: `invoke test` runs `python` from its environment."""
    import shlex

    return shlex.quote(sys.executable)


def _in_git_repo(directory: Path) -> bool:
    for parent in [directory, *directory.parents]:
        if (parent / ".git").exists():
            return True
    return False
