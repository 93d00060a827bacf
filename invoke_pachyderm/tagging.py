"""Image tags: the commit SHA by default, or a hash of the image's inputs (`tag = "inputs"`)."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .config import ConfigError, ImageConfig, Settings
from .errors import GitStateError
from .gitinfo import GitInfo, is_valid_tag, sanitize_tag_part

INPUTS = "inputs"


def image_tag(settings: Settings, image: ImageConfig, git: GitInfo, allow_dirty: bool = False) -> str:
    if git.dirty:  # in every tag mode: an inputs hash is claimed for the commit too
        if not allow_dirty:
            claim = "an inputs hash" if settings.tag == INPUTS else f"the tag {git.commit}"
            raise GitStateError(
                f"{settings.project_dir}: the working tree has uncommitted changes, so {claim} "
                "would lie; commit them, or pass --allow-dirty"
            )
        return f"dirty-{git.short_commit}-{git.dirty_digest}"
    if settings.tag == INPUTS:
        from .source import build_source

        with build_source(settings, image, git) as source_dir:  # hash exactly what will be built
            return "inputs-" + inputs_digest(source_dir, image)[:32]
    try:
        tag = settings.tag.format(
            commit=git.commit, short_commit=git.short_commit, branch=sanitize_tag_part(git.branch)
        )
    except (KeyError, IndexError, ValueError, AttributeError, TypeError) as error:
        raise ConfigError(
            f"{settings.sources.get('tag', 'tag')}: tag template {settings.tag!r} is invalid ({error}); "
            "use {commit}, {short_commit} and {branch}"
        ) from None
    if not is_valid_tag(tag):
        raise ConfigError(f"tag template {settings.tag!r} gives {tag!r}, which is not a valid Docker tag")
    if "{commit}" not in settings.tag and "{short_commit}" not in settings.tag:
        raise ConfigError(
            f"tag template {settings.tag!r} does not contain the commit, so a reused tag would leave old "
            "code running; include {commit} or {short_commit}, or use tag = \"inputs\""
        )
    return tag


def inputs_digest(project_dir: Path, image: ImageConfig) -> str:
    """sha256 over the Dockerfile, the build context after .dockerignore, build args and target."""
    context = (project_dir / image.context).resolve()
    dockerfile = (project_dir / image.dockerfile).resolve()
    if not context.is_dir():
        raise ConfigError(f"image {image.name!r}: build context {image.context!r} is not a directory")
    if not dockerfile.is_file():
        raise ConfigError(f"image {image.name!r}: Dockerfile {image.dockerfile!r} not found")
    digest = hashlib.sha256()
    _feed(digest, "dockerfile", dockerfile.read_bytes())
    for name, value in sorted(image.build_args.items()):
        _feed(digest, "arg", f"{name}={value}".encode())
    _feed(digest, "target", (image.target or "").encode())
    for relative in context_files(context, dockerfile):
        path = context / relative
        _feed(digest, "file", relative.encode())
        _feed(digest, "mode", str(os.lstat(path).st_mode & 0o111).encode())
        _feed(digest, "content", path.read_bytes() if not path.is_symlink() else os.readlink(path).encode())
    return digest.hexdigest()


def _feed(digest, kind: str, data: bytes) -> None:
    digest.update(f"{kind}:{len(data)}:".encode())
    digest.update(data)


def context_files(context: Path, dockerfile: Path | None = None) -> list[str]:
    """Files of the build context that Docker would send, after .dockerignore, sorted."""
    patterns = read_dockerignore(context)
    files: list[str] = []
    for root, dirs, names in os.walk(context):
        rel_root = os.path.relpath(root, context)
        rel_root = "" if rel_root == "." else rel_root.replace(os.sep, "/")
        dirs[:] = sorted(d for d in dirs if not (d == ".git" and not rel_root))
        for name in sorted(names):
            relative = f"{rel_root}/{name}" if rel_root else name
            if not is_ignored(relative, patterns):
                files.append(relative)
    return sorted(files)


def read_dockerignore(context: Path) -> list[tuple[bool, re.Pattern[str]]]:
    path = context / ".dockerignore"
    if not path.is_file():
        return []
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line[1:] if negate else line).lstrip("/").replace(os.sep, "/")
        patterns.append((negate, re.compile(_glob_to_regex(pattern))))
    return patterns


def is_ignored(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker semantics: the last matching pattern wins; a pattern matching a parent dir matches its files."""
    ignored = False
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for negate, regex in patterns:
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = not negate
    return ignored


def _glob_to_regex(pattern: str) -> str:
    out, i = [], 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):
                out[-1] = "(?:.*/)?"
                i += 1
            continue
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i)
            if end == -1:
                out.append(re.escape(char))
            else:
                out.append("[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]")
                i = end
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)
