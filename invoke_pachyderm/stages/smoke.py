"""`invoke smoke`: run each pipeline's transform in a local container on sample files, before a
cluster restarts anything.

The container gets what a Pachyderm worker gives a datum: `/pfs/<input name>` holding the files of
`<smoke_data>/<input name>/` (all of them, one datum, as glob `/` would), an empty `/pfs/out`, the
transform's `cmd`, `stdin` lines and `env`, and no network. An input that no sample folder provides
but a pipeline smoked before it produces (its output repo) gets that pipeline's `/pfs/out`, so one
folder of raw samples smokes a whole DAG.

Files are copied in and out through the Docker API (`put_archive` / `get_archive`), not bind-mounted:
that works with a remote daemon (GitLab's docker:dind) and leaves no root-owned files on the host.
The sample folder cannot be changed by the transform (it gets a copy). Containers are removed
whatever happens.
"""
from __future__ import annotations

import contextlib
import socket
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from invoke_pachyderm.core.artifacts import Artifacts, ImageArtifact, RenderedSpec
from invoke_pachyderm.core.config import Settings
from invoke_pachyderm.core.errors import ConfigError, DockerError, RegistryError, SmokeFailed
from invoke_pachyderm.core.output import Reporter

LOG_TAIL = 20
SHOWN_FILES = 20
LABEL = "invoke-pachyderm.io/smoke"


@dataclass
class SmokeRun:
    pipeline: str
    image: str | None = None
    status: str = "passed"  # passed | skipped
    reason: str = ""
    exit_code: int | None = None
    seconds: float = 0.0
    outputs: list[dict[str, Any]] = field(default_factory=list)  # path, size (bytes)
    output_tar: Path | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline, "image": self.image, "status": self.status, "reason": self.reason,
            "exit_code": self.exit_code, "seconds": round(self.seconds, 2), "outputs": self.outputs,
        }

    def human(self) -> str:
        if self.status == "skipped":
            return f"{self.pipeline}: skipped: {self.reason}"
        total = sum(entry["size"] for entry in self.outputs)
        lines = [f"{self.pipeline}: passed in {self.seconds:.1f}s, {len(self.outputs)} file(s) in /pfs/out ({_size(total)})"]
        lines += [f"  {entry['path']}  {_size(entry['size'])}" for entry in self.outputs[:SHOWN_FILES]]
        if len(self.outputs) > SHOWN_FILES:
            lines.append(f"  ... and {len(self.outputs) - SHOWN_FILES} more")
        return "\n".join(lines)


def smoke_stage(
    settings: Settings, reporter: Reporter, artifacts: Artifacts, specs: list[RenderedSpec], only: str | None = None
) -> list[SmokeRun]:
    """Run the transform of every pipeline (in dependency order) whose image this project builds."""
    from invoke_pachyderm.backends import docker_images as images

    data = sample_folder(settings)
    check_pipeline(specs, only)
    client = images.docker_client()
    runs: list[SmokeRun] = []
    produced: dict[str, Path] = {}
    with tempfile.TemporaryDirectory(prefix="invoke-pachyderm-smoke-") as scratch, reporter.group("smoke"):
        for spec in specs:
            if only is not None and spec.name != only:
                continue
            run = SmokeRun(pipeline=spec.name)
            runs.append(run)
            image = built_image(spec, artifacts)
            sources = input_sources(spec, data, produced)
            if image is None:
                run.status, run.reason = "skipped", f"its image {_transform(spec).get('image')!r} is not built by this project"
            elif isinstance(sources, str):
                run.status, run.reason = "skipped", sources
            else:
                run.image = image.ref
                shown = ", ".join(f"/pfs/{name} <- {_shown(source, settings, produced)}" for name, source in sources.items())
                reporter.info(f"{spec.name}: running {image.ref} with {shown}")
                run_transform(client, settings, reporter, spec, image, sources, Path(scratch), run)
                if run.output_tar is not None:
                    produced[spec.name] = run.output_tar
                reporter.info(f"{spec.name}: passed, {len(run.outputs)} file(s) in /pfs/out")
                continue
            reporter.info(run.human())
    if not any(run.status == "passed" for run in runs):
        reasons = "; ".join(f"{run.pipeline}: {run.reason}" for run in runs)
        raise ConfigError(f"smoke: no pipeline could run ({reasons})")
    return runs


def smoke_before_push(
    settings: Settings, reporter: Reporter, artifacts: Artifacts, specs: list[RenderedSpec]
) -> Callable[[], None] | None:
    """With `smoke_before_deploy`, deploy's step between build and push: nothing has left the machine yet.
    The sample folder is checked now, before the tests and the build."""
    if not settings.smoke_before_deploy:
        return None
    sample_folder(settings)

    def run() -> None:
        try:
            smoke_stage(settings, reporter, artifacts, specs)
        except (SmokeFailed, ConfigError) as error:
            raise type(error)(f"{error.message}; nothing was pushed and no pipeline was changed") from None

    return run


def check_pipeline(specs: list[RenderedSpec], only: str | None) -> None:
    if only is not None and only not in {spec.name for spec in specs}:
        known = ", ".join(spec.name for spec in specs)
        raise ConfigError(f"smoke --pipeline: no pipeline {only!r} in the templates; known: {known}")


def sample_folder(settings: Settings) -> Path:
    where = f"{settings.sources.get('smoke_data', 'default')}: key 'smoke_data'"
    relative = Path(settings.smoke_data)
    folder = (settings.project_dir / relative).resolve()
    if relative.is_absolute() or not folder.is_relative_to(settings.project_dir.resolve()):
        raise ConfigError(f"{where} = {settings.smoke_data!r} leaves the project; use a folder of the project, e.g. tests/data")
    if not folder.is_dir():
        raise ConfigError(
            f"{where}: {settings.smoke_data!r} is not a folder of {settings.project_dir}; create it with one folder "
            f"of sample files per pipeline input ({settings.smoke_data}/<input name>/), or set smoke_data"
        )
    return folder


def built_image(spec: RenderedSpec, artifacts: Artifacts) -> ImageArtifact | None:
    reference = str(_transform(spec).get("image") or "").split("@", 1)[0]
    return next((image for image in artifacts.images.values() if image.ref == reference), None)


def input_names(node: Any) -> list[tuple[str, str | None]]:
    """(name under /pfs, repo) of every pfs and cron input, as pachd names them."""
    if isinstance(node, list):
        return [found for child in node for found in input_names(child)]
    if not isinstance(node, dict):
        return []
    found: list[tuple[str, str | None]] = []
    pfs = node.get("pfs")
    if isinstance(pfs, dict) and (pfs.get("name") or pfs.get("repo")):
        found.append((str(pfs.get("name") or pfs.get("repo")), pfs.get("repo")))
    cron = node.get("cron")
    if isinstance(cron, dict) and cron.get("name"):
        found.append((cron["name"], None))
    for key in ("cross", "union", "join", "group"):
        found += input_names(node.get(key))
    return found


def input_sources(spec: RenderedSpec, data: Path, produced: dict[str, Path]) -> dict[str, Path] | str:
    """Each input's sample folder, or the output (a tar) of a pipeline smoked before; else why not."""
    sources: dict[str, Path] = {}
    for name, repo in input_names(spec.spec.get("input")):
        if (data / name).is_dir():
            sources[name] = data / name
        elif repo in produced:
            sources[name] = produced[repo]
        else:
            return f"no sample data for its input {name!r}: create {data / name}/ with sample files"
    return sources


def run_transform(
    client, settings: Settings, reporter: Reporter, spec: RenderedSpec, image: ImageArtifact,
    sources: dict[str, Path], scratch: Path, run: SmokeRun,
) -> None:
    import docker.errors
    import requests.exceptions

    transform = _transform(spec)
    stdin = transform.get("stdin") or []
    ensure_local(client, settings, image)
    began = time.monotonic()
    container = None
    try:
        container = client.containers.create(
            image.ref,
            entrypoint=list(transform["cmd"]) if transform.get("cmd") else None,
            environment={str(k): str(v) for k, v in (transform.get("env") or {}).items()},
            user=transform.get("user") or None,
            working_dir=transform.get("working_dir") or None,
            network_mode="none",
            stdin_open=bool(stdin),
            labels={LABEL: spec.name},
        )
        with pfs_archive(sources, scratch) as archive:
            container.put_archive("/", archive)
        _start(client, container, ("\n".join(stdin) + "\n").encode() if stdin else None)
        try:
            status = container.wait(timeout=settings.timeout)
        except (requests.exceptions.ConnectionError, requests.exceptions.ReadTimeout):
            _fail(reporter, container, spec.name, f"the transform did not finish in {settings.timeout:g}s (the `timeout` setting)")
        run.seconds = time.monotonic() - began
        run.exit_code = int(status.get("StatusCode", -1))
        if run.exit_code != 0:
            _fail(reporter, container, spec.name, f"the transform exited {run.exit_code}")
        run.output_tar = scratch / f"{spec.name}.out.tar"
        run.outputs = read_outputs(container, run.output_tar)
        if not run.outputs:
            _fail(reporter, container, spec.name, "the transform exited 0 but wrote nothing to /pfs/out")
    except docker.errors.ImageNotFound:
        raise DockerError(f"smoke: pipeline {spec.name}: image {image.ref} is not on the Docker daemon; build it first") from None
    except docker.errors.APIError as error:
        raise DockerError(f"smoke: pipeline {spec.name}: the Docker daemon refused: {_short(error)}") from None
    finally:
        if container is not None:
            try:
                container.remove(force=True)
            except docker.errors.NotFound:
                pass


def ensure_local(client, settings: Settings, image: ImageArtifact) -> None:
    """An image the deploy found in the registry (so did not build) is pulled to be smoked."""
    import docker.errors

    from invoke_pachyderm.backends.docker_images import auth_config

    try:
        client.images.get(image.ref)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(image.repository, tag=image.tag, auth_config=auth_config(settings))
    except docker.errors.APIError as error:
        raise RegistryError(f"smoke: cannot pull {image.ref} to run it: {_short(error)}") from None


def _start(client, container, stdin: bytes | None) -> None:
    """Start it; the `stdin` lines go to the transform's standard input, which then ends (as pachd does)."""
    if stdin is None:
        container.start()
        return
    attached = client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
    raw = getattr(attached, "_sock", attached)
    try:
        container.start()
        raw.sendall(stdin)
        raw.shutdown(socket.SHUT_WR)  # end of input: the daemon closes the container's stdin (StdinOnce)
    finally:
        attached.close()


@contextlib.contextmanager
def pfs_archive(sources: dict[str, Path], scratch: Path) -> Iterator[Any]:
    """A tar of /pfs: each input's files under pfs/<name>/, and pfs/out/ empty and writable by any user."""
    with tempfile.TemporaryFile(dir=scratch) as handle:
        with tarfile.open(fileobj=handle, mode="w") as archive:
            _add_directory(archive, "pfs", 0o755)
            _add_directory(archive, "pfs/out", 0o777)
            for name, source in sources.items():
                if source.is_dir():
                    archive.add(source, arcname=f"pfs/{name}", recursive=True)
                else:
                    _add_output_of(archive, source, f"pfs/{name}")
        handle.seek(0)
        yield handle


def _add_directory(archive: tarfile.TarFile, name: str, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = tarfile.DIRTYPE, mode, int(time.time())
    archive.addfile(info)


def _add_output_of(archive: tarfile.TarFile, output_tar: Path, prefix: str) -> None:
    """Another pipeline's /pfs/out (as get_archive gave it, under out/) as this input."""
    _add_directory(archive, prefix, 0o755)
    with tarfile.open(output_tar) as outputs:
        for member in outputs:
            _, _, rest = member.name.partition("/")
            if not rest or not (member.isfile() or member.isdir() or member.issym()):
                continue
            member.name = f"{prefix}/{rest}"
            archive.addfile(member, outputs.extractfile(member) if member.isfile() else None)


def read_outputs(container, keep: Path) -> list[dict[str, Any]]:
    """The files the transform wrote to /pfs/out (path below it, size), its tar kept in `keep`."""
    stream, _ = container.get_archive("/pfs/out")
    with keep.open("wb") as handle:
        for chunk in stream:
            handle.write(chunk)
    outputs = []
    with tarfile.open(keep) as archive:
        for member in archive:
            _, _, path = member.name.partition("/")
            if member.isfile():
                outputs.append({"path": path, "size": member.size})
            elif member.issym() or member.islnk():
                outputs.append({"path": f"{path} -> {member.linkname}", "size": 0})
    return sorted(outputs, key=lambda entry: entry["path"])


def _fail(reporter: Reporter, container, pipeline: str, what: str) -> None:
    """The container's last log lines, then the one error line (raised)."""
    import docker.errors

    try:
        container.kill()
    except docker.errors.APIError:
        pass  # it has exited already
    try:
        tail = container.logs(stdout=True, stderr=True, tail=LOG_TAIL).decode("utf-8", "replace").splitlines()
    except docker.errors.APIError:
        tail = []
    if tail:
        reporter.info(f"{pipeline}: the container's last {len(tail)} log line(s):")
        for line in tail:
            reporter.info(f"{pipeline} | {line}")
    shown = f"its last {len(tail)} log line(s) are above" if tail else "it logged nothing"
    raise SmokeFailed(f"smoke: pipeline {pipeline}: {what}; {shown}")


def _shown(source: Path, settings: Settings, produced: dict[str, Path]) -> str:
    if source.is_dir():
        return source.relative_to(settings.project_dir.resolve()).as_posix() + "/"
    return next(f"the /pfs/out of {name}" for name, tar in produced.items() if tar == source)


def _transform(spec: RenderedSpec) -> dict[str, Any]:
    return spec.spec.get("transform") or {}


def _size(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def _short(error: BaseException) -> str:
    text = getattr(error, "explanation", None) or str(error)
    return " ".join(str(text).split())[:300]
