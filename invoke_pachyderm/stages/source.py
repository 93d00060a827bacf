"""What an image and its specs are made from: exactly what the tagged commit holds.

The build context is not the working tree. For a clean tree it is `git archive` of the commit
the tag names (its files under the context and the Dockerfile); Docker then applies the
commit's .dockerignore. Files git ignores (binaries, blobs, secrets) never enter the image unless
listed in the `generated_inputs` setting. With --allow-dirty the tag says "dirty" and the context
is the working tree's tracked and untracked-but-not-ignored files, the ones the dirty digest covers.
"""
from __future__ import annotations

import dataclasses

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path, PosixPath
from typing import Iterator

from invoke_pachyderm.core.config import ConfigError, ImageConfig, Settings
from invoke_pachyderm.core.errors import GitStateError
from invoke_pachyderm.core.gitinfo import GitInfo, git


def repo_root(project_dir: Path) -> Path:
    return Path(git(project_dir, "rev-parse", "--show-toplevel")).resolve()


def _inside(path: Path, root: Path) -> bool:
    """`path` is `root` or below it (as Path.parents says; for absolute POSIX paths, from their text)."""
    if type(path) is PosixPath and type(root) is PosixPath:
        text, top = str(path), str(root)
        if text.startswith("/") and top.startswith("/") and not (text.startswith("//") or top.startswith("//")):
            return text == top or text.startswith(top if top == "/" else top + "/")
    return path == root or root in path.parents


def _repo_relative(path: Path, top: Path, what: str) -> str:
    resolved = path.resolve()
    if not _inside(resolved, top):
        raise ConfigError(f"{what} {path} is outside the git repository {top}; images are built from commits")
    return resolved.relative_to(top).as_posix() or "."


# -- the commit the tag names is the commit checked out -----------------------------------
def check_checkout_is_the_commit(project_dir: Path, info: GitInfo) -> None:
    """On a GitHub pull request the tag names the head, while the checkout may be GitHub's merge
    commit: refuse unless both have the same tree (then what is built is what the head holds)."""
    head = info.head or git(project_dir, "rev-parse", "HEAD")
    if info.commit == head:
        return
    claimed = git(project_dir, "rev-parse", "--verify", "-q", f"{info.commit}^{{tree}}", check=False)
    checked_out = git(project_dir, "rev-parse", f"{head}^{{tree}}")
    if claimed != checked_out:
        why = "is not in this clone" if not claimed else "holds other files than the checkout"
        raise GitStateError(
            f"{project_dir}: the tag would name the pull request's head {info.commit[:12]}, which {why} "
            f"(HEAD is {head[:12]}, GitHub's merge commit); check out the head "
            "(actions/checkout with ref: ${{ github.event.pull_request.head.sha }})"
        )


# -- out_dir is not checked for changes, so it may hold nothing that feeds an image or spec --
def check_out_dir(settings: Settings, info: GitInfo | None = None) -> None:
    """`info`: the run's GitInfo, whose top and git dir spare two git processes."""
    project = settings.project_dir
    out = (project / settings.out_dir).resolve()
    where = f"{settings.sources.get('out_dir', 'default')}: out_dir {settings.out_dir!r}"
    fix = "rendered specs are not checked for uncommitted changes there; use a directory of their own, e.g. build/pipelines"
    known = info.git_dir if info is not None else None
    git_dir = Path(known or git(project, "rev-parse", "--absolute-git-dir", check=False) or project / ".git").resolve()
    if _inside(out, git_dir) or _inside(git_dir, out) or _inside(project, out) or out.name == ".git":
        raise ConfigError(f"{where} would hold the project or its .git directory; {fix}")
    from invoke_pachyderm.stages.render import check_spec_globs

    check_spec_globs(settings)  # before globbing them: pathlib refuses an absolute pattern
    from invoke_pachyderm.backends.build_context import globbed, resolved

    for pattern in settings.spec_globs:
        templates = globbed(project, pattern)
        for template, target in zip(templates, resolved(templates)):
            if _inside(target, out):
                raise ConfigError(f"{where} holds the template {template.relative_to(project)}; {fix}")
    top = Path(info.top).resolve() if info is not None and info.top else repo_root(project)
    if not _inside(out, top):
        return
    tracked = git(top, "ls-files", "-z", "--", out.relative_to(top).as_posix())
    if not tracked.strip("\0"):
        return  # nothing committed in out_dir (the usual case): no need for docker-py's matcher
    from invoke_pachyderm.backends.build_context import build_context

    for image in settings.image_configs:
        dockerfile = (project / image.dockerfile).resolve()
        try:
            context = build_context(settings, image)
        except ConfigError:
            continue  # a missing context or Dockerfile is reported by check_build_files
        # What Docker would be sent if out_dir were not left out of the context by default
        # (buildcontext.default_paths): code in out_dir would silently vanish from the image.
        unfiltered = dataclasses.replace(context, default_patterns=(".git",))
        sent = {context.root / name for name in unfiltered.files()}  # docker-py's own matcher
        for name in filter(None, tracked.split("\0")):
            path = top / name
            if path in sent or path.resolve() == dockerfile:
                raise ConfigError(
                    f"{where} holds {path.relative_to(top)}, a committed file of image {image.name!r}'s build; {fix}"
                )


def check_templates_committed(settings: Settings) -> None:
    """A template git ignores is in no commit: a spec rendered from it would claim a commit that lacks it."""
    from invoke_pachyderm.backends.build_context import spec_templates

    project = settings.project_dir
    templates = spec_templates(settings)
    if not templates:
        return
    names = [p.relative_to(project).as_posix() for p in templates]
    ignored = git(project, "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--", *names)
    for name in filter(None, ignored.split("\0")):
        raise GitStateError(
            f"{project / name}: this template is ignored by git, so the commit does not hold it; "
            "commit it (or take it out of `specs`), or pass --allow-dirty"
        )


# -- the build source ------------------------------------------------------------------------
@contextlib.contextmanager
def build_source(settings: Settings, image: ImageConfig, info: GitInfo) -> Iterator[Path]:
    """A temporary copy of the project holding the image's context and Dockerfile as the commit has
    them (the working tree's, when dirty), plus `generated_inputs`. Yields the copy's project dir."""
    project = settings.project_dir
    top = repo_root(project)
    prefix = _repo_relative(project, top, "the project directory")
    context = _repo_relative(project / image.context, top, f"image {image.name!r}: build context")
    dockerfile = _repo_relative(project / image.dockerfile, top, f"image {image.name!r}: Dockerfile")
    root = Path(tempfile.mkdtemp(prefix="invoke-pachyderm-source-"))
    try:
        if info.dirty:
            _copy_worktree(top, (context, dockerfile), root)
        else:
            _extract_commit(top, info.commit, image, (context, dockerfile), root)
        _check_present(root, image, context, dockerfile, info)
        _copy_generated(settings, image, root / context, top)
        yield root / prefix if prefix != "." else root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _extract_commit(top: Path, commit: str, image: ImageConfig, paths: tuple[str, ...], root: Path) -> None:
    present = [] if "." in paths else [p for p in dict.fromkeys(paths) if _exists_in(top, commit, p)]
    if "." not in paths and not present:
        return  # nothing of the image is committed; _check_present says what
    result = subprocess.run(
        ["git", "archive", "--format=tar", commit, "--", *present],
        cwd=top, capture_output=True, check=False,
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise GitStateError(
            f"image {image.name!r}: `git archive {commit[:12]}` failed: {message[-1] if message else result.returncode}"
        )
    with tarfile.open(fileobj=io.BytesIO(result.stdout)) as archive:
        if hasattr(tarfile, "tar_filter"):
            archive.extractall(root, filter="tar")
        else:  # pragma: no cover - Pythons without extraction filters
            archive.extractall(root)


def _exists_in(top: Path, commit: str, path: str) -> bool:
    return subprocess.run(
        ["git", "cat-file", "-e", f"{commit}:{path}"], cwd=top, capture_output=True, check=False
    ).returncode == 0


def _copy_worktree(top: Path, paths: tuple[str, ...], root: Path) -> None:
    listed = git(top, "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", *paths)
    for name in sorted(set(filter(None, listed.split("\0")))):
        source, target = top / name, root / name
        if source.is_symlink():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(source), target)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _check_present(root: Path, image: ImageConfig, context: str, dockerfile: str, info: GitInfo) -> None:
    where = "the working tree's tracked files" if info.dirty else f"commit {info.commit[:12]}"
    if not (root / context).is_dir():
        raise GitStateError(
            f"image {image.name!r}: build context {image.context!r} has no file in {where}; commit it "
            "(files git ignores are not built; list generated ones in `generated_inputs`)"
        )
    if not (root / dockerfile).is_file():
        raise GitStateError(f"image {image.name!r}: Dockerfile {image.dockerfile!r} is not in {where}; commit it")


def _copy_generated(settings: Settings, image: ImageConfig, context_copy: Path, top: Path) -> None:
    """The opt-in for build inputs made by a build step (and so ignored by git): `generated_inputs`."""
    project = settings.project_dir
    context = (project / image.context).resolve()
    for pattern in settings.generated_inputs:
        matches = [p for p in sorted(project.glob(pattern)) if p.is_file() or p.is_symlink()]
        if not matches:
            raise ConfigError(
                f"{settings.sources.get('generated_inputs', 'generated_inputs')}: generated_inputs pattern "
                f"{pattern!r} matches no file; run the step that generates it first, or remove the pattern"
            )
        for path in matches:
            resolved = path.resolve()
            if not _inside(resolved, top):
                raise ConfigError(f"generated_inputs: {path} resolves outside the repository; refusing it")
            absolute = path.absolute()
            if not _inside(absolute.parent.resolve(), context):
                continue  # another image's context
            target = context_copy / absolute.parent.resolve().relative_to(context) / path.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(resolved, target)
