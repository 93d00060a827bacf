"""What is sent to the Docker daemon: the build context and the generated Dockerfile.

The context is filtered as if its `.dockerignore` began with `.git`, `out_dir` and the spec
templates (those inside the context): none of them is an input of the image, and with them in,
every commit (.git), every render (out_dir) and every spec edit would make a new image. The
user's own patterns come after, so `!.git` brings the repository back. docker-py's own matcher
(`docker.utils.build`) decides which files go, for the build and for the inputs hash alike.
"""
from __future__ import annotations

import contextlib
import os
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from invoke_pachyderm.core.config import ImageConfig, Settings
from invoke_pachyderm.core.errors import ConfigError

#: The generated Dockerfile's name inside the build tar (docker-py adds it, as for any Dockerfile
#: outside the context); fixed, so that the same inputs give the same tar.
DOCKERFILE_NAME = ".dockerfile.invoke-pachyderm"


@dataclass(frozen=True)
class BuildContext:
    root: Path
    dockerfile: Path
    user_patterns: tuple[str, ...]  # the context's .dockerignore
    default_patterns: tuple[str, ...]  # ours, before the user's

    @property
    def patterns(self) -> list[str]:
        return [*self.default_patterns, *self.user_patterns]

    def files(self) -> list[str]:
        """Every file (not directory) sent to the daemon, relative to the context, sorted."""
        from docker.utils.build import exclude_paths

        names = exclude_paths(str(self.root), self.patterns, dockerfile=DOCKERFILE_NAME)
        return sorted(name for name in names if not (self.root / name).is_dir() or (self.root / name).is_symlink())

    def tar(self, dockerfile_text: str):
        """The build context as docker-py would send it for a Dockerfile outside the context."""
        from docker.utils.build import create_archive, exclude_paths

        names = sorted(exclude_paths(str(self.root), self.patterns, dockerfile=DOCKERFILE_NAME))
        # docker-py's rule: the daemon drops .dockerignore and the Dockerfile when this lists them.
        dockerignore = "\n".join([*(self.user_patterns or [".dockerignore"]), DOCKERFILE_NAME])
        return create_archive(
            root=str(self.root),
            files=names,
            extra_files=[(".dockerignore", dockerignore), (DOCKERFILE_NAME, dockerfile_text)],
        )


def build_context(settings: Settings, image: ImageConfig, left_out: list[Path] | None = None) -> BuildContext:
    """`left_out`: `left_out_paths(settings)`, when the caller looks at several images."""
    root = (settings.project_dir / image.context).resolve()
    dockerfile = (settings.project_dir / image.dockerfile).resolve()
    if not root.is_dir():
        raise ConfigError(f"image {image.name!r}: build context {image.context!r} is not a directory")
    if not dockerfile.is_file():
        raise ConfigError(f"image {image.name!r}: Dockerfile {image.dockerfile!r} not found")
    return BuildContext(
        root=root,
        dockerfile=dockerfile,
        user_patterns=tuple(read_dockerignore(root)),
        default_patterns=tuple(default_patterns(settings, root, left_out)),
    )


def read_dockerignore(root: Path) -> list[str]:
    """The patterns of `root/.dockerignore`, read as docker-py reads them."""
    path = root / ".dockerignore"
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def default_patterns(settings: Settings, root: Path, left_out: list[Path] | None = None) -> list[str]:
    return [literal(path) for path in default_paths(settings, root, left_out)]


def default_paths(settings: Settings, root: Path, left_out: list[Path] | None = None) -> list[str]:
    """`.git`, out_dir and the spec templates, relative to the context (those inside it)."""
    paths = [".git"]
    for path in left_out_paths(settings) if left_out is None else left_out:
        relative = inside(path, root)
        if relative:
            paths.append(relative)
    return paths


def left_out_paths(settings: Settings) -> list[Path]:
    """out_dir and the spec templates, resolved: what every context leaves out besides `.git`."""
    return [(settings.project_dir / settings.out_dir).resolve(), *resolved(spec_templates(settings))]


def resolved(paths: list[Path]) -> list[Path]:
    """`Path.resolve()` of each, resolving each directory once: a file that is no symlink resolves
    to its resolved directory plus its name. Within one_template_scan, each path once."""
    scan = _SCAN.get()
    memo: dict[Path, Path] = scan.setdefault("resolved", {}) if scan is not None else {}
    folders: dict[Path, Path] = scan.setdefault("folders", {}) if scan is not None else {}
    resolved = []
    for path in paths:
        known = memo.get(path)
        if known is None:
            if path.is_symlink():
                known = path.resolve()
            else:
                folder = folders.get(path.parent)
                if folder is None:
                    folder = folders[path.parent] = path.parent.resolve()
                known = folder / path.name
            memo[path] = known
        resolved.append(known)
    return resolved


def spec_templates(settings: Settings) -> list[Path]:
    """The files the spec globs match, sorted (within one_template_scan, globbed once)."""
    def scan() -> list[Path]:
        found: set[Path] = set()
        for pattern in settings.spec_globs:
            found.update(path for path in globbed(settings.project_dir, pattern) if path.is_file())
        return sorted(found)

    return list(_remembered(("templates", settings.project_dir, tuple(settings.spec_globs)), scan))


def globbed(project_dir: Path, pattern: str) -> list[Path]:
    """project_dir.glob(pattern), as a list (within one_template_scan, globbed once)."""
    return list(_remembered(("glob", project_dir, pattern), lambda: list(project_dir.glob(pattern))))


_SCAN: ContextVar[dict[Any, Any] | None] = ContextVar("invoke_pachyderm_template_scan", default=None)


@contextlib.contextmanager
def one_template_scan() -> Iterator[None]:
    """Within it (in this thread), the spec globs are expanded, and each path found checked and
    resolved, once: a deploy's plan reads the templates' list four times (the out_dir check, the
    ignored-templates check, the images' left-out paths, rendering), ~2 ms each for 200 templates.
    Each template's text is still read where it is read."""
    token = _SCAN.set({})
    try:
        yield
    finally:
        _SCAN.reset(token)


def _remembered(key: Any, compute: Callable[[], Any]) -> Any:
    scan = _SCAN.get()
    if scan is None:
        return compute()
    if key not in scan:
        scan[key] = compute()
    return scan[key]


def inside(path: Path, root: Path) -> str | None:
    """`path` relative to `root` (with '/'), or None when it is not below it."""
    if path.is_absolute() and root.is_absolute() and not str(path).startswith(str(root)):
        return None  # relative_to's answer, without its cost
    try:
        relative = path.relative_to(root)
    except ValueError:
        return None
    text = relative.as_posix()
    return None if text in ("", ".") else text


def literal(relative: str) -> str:
    """A .dockerignore pattern matching exactly this path (docker's fnmatch has no escape character)."""
    return "".join(f"[{char}]" if char in "*?[\\" else char for char in relative).replace(os.sep, "/")
