"""Image tags and the commit each image's content comes from.

The default tag (`{commit}`) is the SHA of the last commit, on HEAD's first-parent line, that
changed the image's build inputs: the Dockerfile, the files of the build context that Docker is
sent (see buildcontext), and the configuration files that set its build arguments, target,
Dockerfile or context. A commit that changes only a spec template, docs outside the context or
dockerignored files keeps the tag, so the image is neither rebuilt nor are the pipelines using it
restarted, and every tag is still a commit that `git show` opens, whose tree has exactly the
image's inputs. `tag = "inputs"` is a hash of the same inputs instead.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from invoke_pachyderm.core.artifacts import ImageArtifact
from invoke_pachyderm.backends.build_context import BuildContext, build_context, default_paths, inside, left_out_paths
from invoke_pachyderm.core.config import ConfigError, ImageConfig, Settings
from invoke_pachyderm.core.errors import GitStateError
from invoke_pachyderm.core.gitinfo import GitInfo, is_valid_tag, sanitize_tag_part

INPUTS = "inputs"
#: Settings that change what is built; the files that set them are watched like build inputs.
BUILD_KEYS = ("images", "dockerfile", "context", "build_args", "target")
INVOKE_CONFIG_FILES = ("invoke.yaml", "invoke.yml", "invoke.json", "invoke.py", "tasks.py")
#: Commits touching the context looked at before settling for HEAD (always a right answer).
WALK_LIMIT = 200


@dataclass(frozen=True)
class ImageCommit:
    sha: str
    time: int | None  # committer time, seconds since the epoch; None when not looked up


def tag_image(settings: Settings, image: ImageConfig, git: GitInfo, allow_dirty: bool = False) -> ImageArtifact:
    """The image's artifact: its tag and, for commit tags, the commit its content is."""
    artifact = ImageArtifact(name=image.name, repository=image.repository, tag="")
    if git.dirty:  # in every tag mode: an inputs hash is claimed for the commit too
        if not allow_dirty:
            claim = "an inputs hash" if settings.tag == INPUTS else f"the tag {git.commit}"
            raise GitStateError(
                f"{settings.project_dir}: the working tree has uncommitted changes, so {claim} "
                "would lie; commit them, or pass --allow-dirty"
            )
        artifact.tag = f"dirty-{git.short_commit}-{git.dirty_digest}"
        return artifact
    if settings.tag == INPUTS:
        from invoke_pachyderm.stages.source import build_source

        with build_source(settings, image, git) as source_dir:  # hash exactly what will be built
            copy = dataclasses.replace(settings, project_dir=source_dir)
            artifact.tag = "inputs-" + inputs_digest(copy, image)[:32]
        return artifact
    source = image_commit(settings, image, git)
    artifact.tag = format_tag(settings, source.sha, git.branch)
    artifact.commit, artifact.source_date = source.sha, source.time
    return artifact


def tag_images(settings: Settings, images: list[ImageConfig], git: GitInfo, allow_dirty: bool = False
               ) -> dict[str, ImageArtifact]:
    """`tag_image` of each image, in order; the commit tags read git once for all of them."""
    if git.dirty or settings.tag == INPUTS:
        return {image.name: tag_image(settings, image, git, allow_dirty) for image in images}
    artifacts = {}
    for image, source in zip(images, image_commits(settings, images, git)):
        artifact = ImageArtifact(name=image.name, repository=image.repository, tag="")
        artifact.tag = format_tag(settings, source.sha, git.branch)
        artifact.commit, artifact.source_date = source.sha, source.time
        artifacts[image.name] = artifact
    return artifacts


def image_tag(settings: Settings, image: ImageConfig, git: GitInfo, allow_dirty: bool = False) -> str:
    return tag_image(settings, image, git, allow_dirty).tag


def format_tag(settings: Settings, commit: str, branch: str) -> str:
    try:
        tag = settings.tag.format(
            commit=commit, short_commit=commit[:12], branch=sanitize_tag_part(branch)
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




# -- the last commit that changed the image's inputs -------------------------------------------
def image_commit(settings: Settings, image: ImageConfig, git: GitInfo) -> ImageCommit:
    """The newest commit on HEAD's first-parent line that changed the image's build inputs.

    Conservative: whenever it cannot tell (settings from the environment, a commit other than
    HEAD as on GitHub pull requests, git trouble, a long history), the answer is HEAD's commit,
    whose tree trivially has the inputs being built.
    """
    return image_commits(settings, [image], git)[0]


def image_commits(settings: Settings, images: list[ImageConfig], git: GitInfo) -> list[ImageCommit]:
    """`image_commit` of each image, from one `git log` of all their inputs (a commit that changed
    one image's inputs is in it, named with that image's files, as in the image's own log)."""
    head = ImageCommit(git.commit, None)
    if any(settings.sources.get(key) in ("environment", "task flag") for key in BUILD_KEYS):
        return [head for _ in images]  # not in git: a change would go unseen
    if git.top and git.head:  # read with the GitInfo: no git process of its own
        top, head_sha = git.top, git.head
    else:
        try:
            top, head_sha = _git(settings.project_dir, "rev-parse", "--show-toplevel", "HEAD").splitlines()
        except (GitStateError, ValueError):
            return [head for _ in images]
    if head_sha != git.commit:
        return [head for _ in images]
    left_out = left_out_paths(settings)
    queries: dict[int, tuple[_InputChanges, list[str]]] = {}
    for index, image in enumerate(images):
        try:
            context = build_context(settings, image, left_out)
        except ConfigError:  # reported by the build, if there is one
            continue
        watched = _watched_files(settings, context)
        changes = _InputChanges(settings, context, Path(top), watched, left_out)
        queries[index] = changes, [os.path.relpath(path, settings.project_dir) for path in [context.root, *watched]]
    found = _first_changes(settings.project_dir, queries, head) if len(queries) > 1 else {}
    for index in queries.keys() - found.keys():  # the image's own log: alone, or beyond the shared one
        changes, pathspecs = queries[index]
        found.update(_first_changes(settings.project_dir, {index: (changes, pathspecs)}, head))
    return [found.get(index, head) for index in range(len(images))]


def _first_changes(project_dir: Path, queries: dict[int, tuple[_InputChanges, list[str]]],
                   head: ImageCommit) -> dict[int, ImageCommit]:
    """For each query, the first of WALK_LIMIT commits touching any query's paths that changed one of
    its inputs, else HEAD. With several queries, those this cannot answer (git failed, or the limit
    was reached before their change) are left out, for their own log to answer."""
    pathspecs = list(dict.fromkeys(spec for _, specs in queries.values() for spec in specs))
    try:
        log = _git(
            project_dir, "log", "--first-parent", "--diff-merges=first-parent", "--no-renames",
            "-z", "--format=%x01%H %ct", "--name-only", f"-n{WALK_LIMIT}", "HEAD", "--", *pathspecs,
        )
    except GitStateError:
        return {index: head for index in queries} if len(queries) == 1 else {}
    found: dict[int, ImageCommit] = {}
    records = log.split("\x01")[1:]
    for record in records:
        header, _, names = record.partition("\0")
        sha, _, time = header.partition(" ")
        listed = [name for name in names.strip("\n").split("\0") if name]
        for index, (changes, _) in queries.items():
            if index not in found and any(changes.is_input(name) for name in listed):
                found[index] = ImageCommit(sha, int(time))
        if len(found) == len(queries):
            break
    if len(queries) == 1 or len(records) < WALK_LIMIT:  # the whole history was read
        found.update({index: head for index in queries if index not in found})
    return found


def _watched_files(settings: Settings, context: BuildContext) -> list[Path]:
    files = [context.dockerfile]
    sources = {settings.sources.get(key) for key in BUILD_KEYS}
    if any(source and source.startswith("pyproject.toml") for source in sources):
        files.append(settings.project_dir / "pyproject.toml")
    if any(source and source.startswith("invoke config") for source in sources):
        files.extend(settings.project_dir / name for name in INVOKE_CONFIG_FILES)
    return [path for path in files if path.is_file()]


class _InputChanges:
    """Whether a path a commit changed (relative to the repository's top) is a build input."""

    def __init__(self, settings: Settings, context: BuildContext, top: Path, watched: list[Path],
                 left_out: list[Path] | None = None):
        self.watched = {path.relative_to(top).as_posix() for path in watched if inside(path, top)}
        self.context = inside(context.root, top) or ""
        self.defaults = default_paths(settings, context.root, left_out)
        self.matcher = None
        if context.user_patterns:
            from docker.utils.build import PatternMatcher

            self.matcher = PatternMatcher(context.patterns)

    def is_input(self, name: str) -> bool:
        if name in self.watched:
            return True
        if self.context and not name.startswith(self.context + "/"):
            return False
        relative = name[len(self.context) + 1 :] if self.context else name
        if relative == ".dockerignore":
            return True
        if self.matcher is not None:
            return not self.matcher.matches(relative)
        # A path once deleted is no longer a known template: counted, which costs a rebuild at most.
        return not any(relative == path or relative.startswith(path + "/") for path in self.defaults)


def _git(project_dir: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=project_dir, capture_output=True, text=True)
    if result.returncode != 0:
        raise GitStateError(f"git {args[0]} failed: {result.stderr.strip()[:200]}")
    return result.stdout


# -- tag = "inputs" ------------------------------------------------------------------------------
def inputs_digest(settings: Settings, image: ImageConfig) -> str:
    """sha256 over the Dockerfile, the files Docker is sent, build args and target."""
    context = build_context(settings, image)
    digest = hashlib.sha256()
    _feed(digest, "dockerfile", context.dockerfile.read_bytes())
    for name, value in sorted(image.build_args.items()):
        _feed(digest, "arg", f"{name}={value}".encode())
    _feed(digest, "target", (image.target or "").encode())
    for relative in context.files():
        path = context.root / relative
        _feed(digest, "file", relative.encode())
        _feed(digest, "mode", str(os.lstat(path).st_mode & 0o111).encode())
        _feed(digest, "content", path.read_bytes() if not path.is_symlink() else os.readlink(path).encode())
    return digest.hexdigest()


def _feed(digest, kind: str, data: bytes) -> None:
    digest.update(f"{kind}:{len(data)}:".encode())
    digest.update(data)
