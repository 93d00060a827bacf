"""Settings: `pyproject.toml` < invoke config `pachyderm:` < `INVOKE_PACHYDERM_*` env < task flags.

Every key is declared once in ``KEYS`` with its type; unknown keys and wrong types are
reported with the key's name and where it came from, before anything runs.
"""
from __future__ import annotations

import base64
import difflib
import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from invoke_pachyderm.core import setting_checks
from invoke_pachyderm.core.errors import ConfigError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

ENV_PREFIX = "INVOKE_PACHYDERM_"
DEFAULT_PACHD_ADDRESS = "grpc://localhost:30650"
SECRET_KEYS = frozenset({"token", "registry_password"})

# key -> (accepted python types, default, one-line description for messages and docs)
KEYS: dict[str, tuple[tuple[type, ...], Any, str]] = {
    "image": ((str,), None, "image repository without tag, e.g. localhost:5000/edges"),
    "dockerfile": ((str,), "Dockerfile", "Dockerfile path, relative to the project"),
    "context": ((str,), ".", "build context directory, relative to the project"),
    "build_args": ((dict,), {}, "table of Docker build arguments"),
    "target": ((str,), None, "Dockerfile stage to build"),
    "images": ((list,), [], "list of images: name, repository, dockerfile, context, build_args, target"),
    "tag": ((str,), "{commit}", "image tag template ({commit}, {short_commit}, {branch}) or 'inputs'"),
    "specs": ((str, list), ["templates/*.json.j2"], "glob(s) of pipeline spec templates"),
    "out_dir": ((str,), "build/pipelines", "directory for rendered specs"),
    "generated_inputs": ((list,), [], "globs of generated (git-ignored) files to add to the build context"),
    "test_command": ((str,), "python -m pytest", "command that runs the project's tests"),
    "pachd_address": ((str,), None, "pachd address, grpc://host:port or grpcs://host:port"),
    "token": ((str,), None, "pachd auth token"),
    "project": ((str,), "default", "Pachyderm project"),
    "vars": ((dict,), {}, "extra template variables"),
    "registry_username": ((str,), None, "registry user name"),
    "registry_password": ((str,), None, "registry password"),
    "pin_digest": ((bool,), False, "render image references as repo:tag@sha256:..."),
    "jobs": ((int,), None, "images built and pushed in parallel (default: CPUs + 4, at most 32)"),
    "wait": ((bool,), None, "wait for deployed pipelines to be RUNNING (default: on in CI)"),
    "timeout": ((int, float), 600, "seconds to wait for pipelines to be RUNNING"),
    "hooks": ((list,), ["test", "render-spec --check"], "tasks the git pre-push hook runs"),
    "owner": ((str,), None, "owner annotation of deployed pipelines (default: git remote and directory)"),
    "pach_context": ((str,), None, "pach config context to take the pachd address, token and project from"),
    "environments": ((dict,), {}, "named tables of settings layered over these ([...environments.NAME])"),
    "env": ((str,), None, "the environment to use, a key of `environments` (--env, INVOKE_PACHYDERM_ENV)"),
    "preview": ((int,), None, "a pull request number: use its preview project pr-N (--preview N, INVOKE_PACHYDERM_PREVIEW)"),
    "smoke_data": ((str,), "tests/data", "folder of sample files for `invoke smoke`, one folder per pipeline input"),
    "smoke_before_deploy": ((bool,), False, "deploy runs `smoke` after the build, before anything is pushed"),
    "max_spec_bytes": ((int,), 1 << 20, "largest rendered spec template, and file it reads, in bytes (YAML aliases expanded)"),
    "render_timeout": ((int, float), 10, "seconds all spec templates of a command may take to render"),
}
IMAGE_KEYS: dict[str, tuple[tuple[type, ...], Any]] = {
    "name": ((str,), None),
    "repository": ((str,), None),
    "dockerfile": ((str,), "Dockerfile"),
    "context": ((str,), "."),
    "build_args": ((dict,), {}),
    "target": ((str,), None),
}

IMAGE_CHECKS: dict[str, Callable[[Any, str], None]] = {
    "name": setting_checks.name,
    **{key: setting_checks.CHECKS[key] for key in ("dockerfile", "context", "build_args", "target")},
    "repository": setting_checks.CHECKS["image"],
}


@dataclass(frozen=True)
class ImageConfig:
    name: str
    repository: str
    dockerfile: str = "Dockerfile"
    context: str = "."
    build_args: Mapping[str, str] = field(default_factory=dict)
    target: str | None = None


@dataclass(frozen=True)
class Settings:
    project_dir: Path
    values: Mapping[str, Any]
    sources: Mapping[str, str]  # key -> where its value came from
    base_project: str | None = None  # with `preview`: the project pfs inputs read from (see preview.py)

    def __getattr__(self, key: str) -> Any:
        if key in KEYS:
            return self.values.get(key, KEYS[key][1])
        raise AttributeError(key)

    @property
    def spec_globs(self) -> list[str]:
        specs = self.specs
        return [specs] if isinstance(specs, str) else list(specs)

    @property
    def image_configs(self) -> list[ImageConfig]:
        """The `images` list, or the single `image` key as an image named `main`."""
        if self.images:
            return [_image_config(entry, index) for index, entry in enumerate(self.images)]
        if self.image:
            return [
                ImageConfig(
                    name="main",
                    repository=self.image,
                    dockerfile=self.dockerfile,
                    context=self.context,
                    build_args={k: str(v) for k, v in self.build_args.items()},
                    target=self.target,
                )
            ]
        return []

    def require_images(self) -> list[ImageConfig]:
        images = self.image_configs
        if not images:
            raise ConfigError(
                "no image configured: set `image = \"registry/repository\"` under "
                "[tool.invoke-pachyderm] in pyproject.toml (or INVOKE_PACHYDERM_IMAGE)"
            )
        return images

    def redacted(self) -> dict[str, Any]:
        return {k: ("***" if k in SECRET_KEYS and v else v) for k, v in self.values.items()}

    def secrets(self) -> list[str]:
        return [str(self.values[k]) for k in SECRET_KEYS if self.values.get(k)]


def load_settings(
    project_dir: str | os.PathLike = ".",
    invoke_config: Mapping[str, Any] | None = None,
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Merge every source in order of precedence and check each key."""
    project_dir = Path(project_dir).resolve()
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    layers = [
        ("pyproject.toml [tool.invoke-pachyderm]", read_pyproject(project_dir)),
        ("invoke config 'pachyderm'", to_plain(invoke_config or {})),
        ("environment", read_environment(environ)),
        ("task flag", {k: v for k, v in (flags or {}).items() if v is not None}),
    ]
    for source, layer in layers:
        if not isinstance(layer, Mapping):
            raise ConfigError(f"{source} must be a mapping of settings, got {type(layer).__name__}")
        for key, value in layer.items():
            check_key(key, value, source)
            values[key] = value
            sources[key] = source
    from invoke_pachyderm.core.environments import select_environment

    select_environment(values, sources, environ)
    settings = preview_settings(Settings(project_dir=project_dir, values=values, sources=sources))
    names: dict[str, int] = {}
    for index, entry in enumerate(settings.images):
        name = _image_config(entry, index, sources.get("images", "configuration")).name
        if name in names:
            raise ConfigError(
                f"{sources['images']}: images[{index}] and images[{names[name]}] are both named '{name}'; "
                "give each image its own name"
            )
        names[name] = index
    check_out_dir(project_dir, settings.out_dir, sources.get("out_dir", "default"))
    return settings


def read_pyproject(project_dir: Path) -> dict[str, Any]:
    path = project_dir / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML ({error}); fix the syntax") from None
    section = data.get("tool", {}).get("invoke-pachyderm", {})
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: [tool.invoke-pachyderm] must be a table")
    return {key.replace("-", "_"): value for key, value in section.items()}


def read_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name.startswith(ENV_PREFIX + "TEST_"):
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in KEYS:
            raise ConfigError(f"environment: unknown variable {name}{_suggest(key, KEYS, ENV_PREFIX)}")
        values[key] = _parse_env_value(name, key, raw)
    return values


def _parse_env_value(name: str, key: str, raw: str) -> Any:
    types = KEYS[key][0]
    if key == "preview":  # the --preview flag's twin: refused as that flag's value is
        from invoke_pachyderm.core.flags import pull_request_number

        try:
            return pull_request_number(raw)
        except ValueError as error:
            raise UsageError(f"environment: {name}: {error}") from None
    if str in types:
        return raw
    if bool in types:
        from invoke_pachyderm.core.flags import switch

        try:
            return switch(raw) if raw.strip() else False
        except ValueError:
            pass
        raise ConfigError(f"environment: {name}={raw!r} is not a boolean; use true or false")
    if int in types or float in types:
        try:
            return int(raw)
        except ValueError:
            pass
        try:
            if float in types:
                return float(raw)
        except ValueError:
            pass
        raise ConfigError(f"environment: {name}={raw!r} is not a number")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        raise ConfigError(f"environment: {name} must be JSON ({types[0].__name__}); got {raw!r}") from None
    return value


def check_key(key: str, value: Any, source: str) -> None:
    if key not in KEYS:
        raise ConfigError(f"{source}: unknown key {key!r}{_suggest(key, KEYS)}")
    types = KEYS[key][0]
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types)
    if not ok:
        wanted = " or ".join("table" if t is dict else "array" if t is list else t.__name__ for t in types)
        shown = "***" if key in SECRET_KEYS else repr(value)
        raise ConfigError(f"{source}: key '{key}' must be {wanted}, got {shown} ({type(value).__name__})")
    check = VALUE_CHECKS.get(key)
    if check:
        check(value, f"{source}: key '{key}'")


# pachd's rules for a project name: src/pfs/pfs.go (*Project).ValidateName, which calls
# src/internal/ancestry/ancestry.go ValidateName; projectNameLimit there is 63 - 8 - len("-v99").
PROJECT_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_-]*")
PROJECT_NAME_LIMIT = 63 - 8 - len("-v99")


def _check_project(value: str, where: str) -> None:
    if value == "default":
        return
    if len(value) > PROJECT_NAME_LIMIT:
        raise ConfigError(f"{where}: project name {value!r} is longer than pachd's limit of {PROJECT_NAME_LIMIT} characters")
    if not PROJECT_NAME.fullmatch(value):
        raise ConfigError(
            f"{where}: {value!r} is not a valid Pachyderm project name; use letters, digits, '_' and '-', "
            "starting with a letter or digit (pachd's rule)"
        )


def _check_preview(value: int, where: str) -> None:
    from invoke_pachyderm.core.flags import pull_request_number

    try:
        pull_request_number(value)
    except ValueError as error:
        raise ConfigError(f"{where}: {error}") from None


def _check_images(value: list[Any], where: str) -> None:
    source = where.rsplit(": key ", 1)[0]
    for index, entry in enumerate(value):
        _image_config(entry, index, source)


def _check_pachd_address(value: str, where: str) -> None:
    setting_checks.single_line(value, where)
    parse_pachd_address(value, where)


VALUE_CHECKS: dict[str, Callable[[Any, str], None]] = {
    **setting_checks.CHECKS,
    "preview": _check_preview, "project": _check_project, "images": _check_images,
    "pachd_address": _check_pachd_address,
}


def _check_max_spec_bytes(value: int, where: str) -> None:
    if not 1024 <= value <= 1 << 30:
        raise ConfigError(f"{where} must be from 1024 to {1 << 30} bytes, got {value}; e.g. max_spec_bytes = 4194304")


VALUE_CHECKS.update({"max_spec_bytes": _check_max_spec_bytes, "render_timeout": setting_checks.timeout})


def check_build_files(settings: Settings, image: ImageConfig, top: str | None = None) -> None:
    """The build context and Dockerfile exist (inside the git repository at `top`: images are
    built from commits), checked before anything slow runs."""
    key = "images" if settings.images else "context"
    source = settings.sources.get(key, "default")
    for what, relative, setting in (("build context", image.context, "context"), ("Dockerfile", image.dockerfile, "dockerfile")):
        resolved = (settings.project_dir / relative).resolve()
        if top is not None and not resolved.is_relative_to(Path(top).resolve()):
            where = settings.sources.get("images" if settings.images else setting, "default")
            raise ConfigError(
                f"{where}: image '{image.name}': key '{setting}' = {relative!r} resolves to {resolved}, outside the "
                f"git repository {top}; images are built from commits, so use a path inside it"
            )
    if not (settings.project_dir / image.context).is_dir():
        raise ConfigError(
            f"{source}: image '{image.name}': build context {image.context!r} is not a directory of "
            f"{settings.project_dir}; create it or fix the `context` key"
        )
    if not (settings.project_dir / image.dockerfile).is_file():
        source = settings.sources.get("images" if settings.images else "dockerfile", "default")
        raise ConfigError(
            f"{source}: image '{image.name}': Dockerfile {image.dockerfile!r} not found in "
            f"{settings.project_dir}; create it or fix the `dockerfile` key"
        )


def check_out_dir(project_dir: Path, out_dir: str, source: str) -> None:
    """Rendered specs must never land in git's own directory (they would overwrite its files)."""
    git_dir = (project_dir / ".git").resolve()
    target = (project_dir / out_dir).resolve()
    if ".git" in Path(os.path.normpath(out_dir)).parts or target == git_dir or git_dir in target.parents:
        raise ConfigError(f"{source}: key 'out_dir' = {out_dir!r} is inside .git; use a directory such as build/pipelines")
    if target != project_dir and project_dir not in target.parents:  # '..' or a symlink: specs land elsewhere
        raise ConfigError(
            f"{source}: key 'out_dir' = {out_dir!r} resolves to {target}, not a directory inside the project; "
            "use a directory such as build/pipelines"
        )


def _image_config(entry: Any, index: int, source: str = "configuration") -> ImageConfig:
    where = f"{source}: images[{index}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a table with name and repository")
    entry = to_plain(entry)
    for key, value in entry.items():
        if key not in IMAGE_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}{_suggest(key, IMAGE_KEYS)}")
        if not isinstance(value, IMAGE_KEYS[key][0]):
            raise ConfigError(f"{where}: key '{key}' has the wrong type ({type(value).__name__})")
    for required in ("name", "repository"):
        if not entry.get(required):
            raise ConfigError(f"{where}: missing '{required}'")
    for key, value in entry.items():
        IMAGE_CHECKS[key](value, f"{where}: key '{key}'")
    return ImageConfig(
        name=entry["name"],
        repository=entry["repository"],
        dockerfile=entry.get("dockerfile", "Dockerfile"),
        context=entry.get("context", "."),
        build_args={k: str(v) for k, v in entry.get("build_args", {}).items()},
        target=entry.get("target"),
    )


def to_plain(value: Any) -> Any:
    """Invoke's DataProxy is not a Mapping; turn it (recursively) into dicts and lists."""
    if hasattr(value, "items"):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


def _suggest(key: str, known: Mapping[str, Any], prefix: str = "") -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean '{prefix}{close[0].upper() if prefix else close[0]}'?)" if close else (
        "; known keys: " + ", ".join(sorted(known))
    )


def is_ci(environ: Mapping[str, str] | None = None) -> bool:
    environ = os.environ if environ is None else environ
    return environ.get("CI", "").lower() in ("1", "true", "yes") or "GITHUB_ACTIONS" in environ


@dataclass(frozen=True)
class PachdTarget:
    host: str
    port: int
    tls: bool
    token: str | None
    source: str  # where the address came from, for messages
    root_certs: bytes | None = None  # PEM CAs for grpcs, from the pach context's server_cas

    @property
    def address(self) -> str:
        return f"{'grpcs' if self.tls else 'grpc'}://{self.host}:{self.port}"

    def __repr__(self) -> str:  # never show the token
        return f"PachdTarget({self.address}, token={'***' if self.token else None}, source={self.source!r})"


def resolve_pachd(settings: Settings, environ: Mapping[str, str] | None = None) -> PachdTarget:
    """Address: setting, else PACHD_ADDRESS, else the active pach context, else the default."""
    environ = os.environ if environ is None else environ
    context, context_source = active_pach_context(environ, settings.pach_context)
    if settings.pachd_address:
        address, source = settings.pachd_address, settings.sources["pachd_address"]
    elif settings.pach_context and context.get("pachd_address"):  # named in the settings: beats PACHD_ADDRESS
        address, source = context["pachd_address"], context_source
    elif environ.get("PACHD_ADDRESS"):
        address, source = environ["PACHD_ADDRESS"], "PACHD_ADDRESS"
    elif context.get("pachd_address"):
        address, source = context["pachd_address"], context_source
    else:
        address, source = DEFAULT_PACHD_ADDRESS, "default"
    host, port, tls = parse_pachd_address(address, source)
    token = settings.token or context.get("session_token") or None
    if token and not settings.token:
        if not isinstance(token, str):
            raise ConfigError(f"{context_source}: session_token must be a string; fix the context (pachctl auth login)")
        setting_checks.token(token, f"{context_source}: session_token")
    root_certs = None
    if tls and source == context_source and context.get("server_cas"):  # the CAs go with that address
        try:
            root_certs = base64.b64decode(context["server_cas"], validate=True)
        except (ValueError, TypeError):
            raise ConfigError(f"{context_source}: server_cas is not base64 of PEM certificates; fix the context") from None
    return PachdTarget(host=host, port=port, tls=tls, token=token, source=source, root_certs=root_certs)


PACHD_HOST = re.compile(r"[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\]")


def parse_pachd_address(address: str, source: str) -> tuple[str, int, bool]:
    scheme, sep, rest = address.partition("://")
    if not sep:
        scheme, rest = "grpc", address
    if scheme not in ("grpc", "grpcs", "http", "https"):
        raise ConfigError(
            f"{source}: pachd address {address!r} has scheme {scheme!r}; use grpc://host:port or grpcs://host:port"
        )
    rest = rest.rstrip("/")
    host, _, port_text = rest.rpartition(":") if ":" in rest else (rest, "", "30650")
    try:
        port = int(port_text)
    except ValueError:
        port = 0
    if not 0 < port < 65536:
        raise ConfigError(f"{source}: pachd address {address!r} has a bad port {port_text!r}")
    if not host:
        raise ConfigError(f"{source}: pachd address {address!r} has no host")
    if not PACHD_HOST.fullmatch(host):
        raise ConfigError(f"{source}: pachd address {address!r} has a bad host {host!r}; use a host name or IP address")
    return host, port, scheme in ("grpcs", "https")


def active_pach_context(environ: Mapping[str, str], named: str | None = None) -> tuple[dict[str, Any], str]:
    """The active (or `named`) context of the Pachyderm config file (PACH_CONFIG, else ~/.pachyderm/config.json)."""
    path = Path(environ.get("PACH_CONFIG") or Path(environ.get("HOME", "~")).expanduser() / ".pachyderm/config.json")
    if not path.is_file():
        if named:
            raise ConfigError(f"pach_context: context {named!r} is set but {path} does not exist; fix pach_context or PACH_CONFIG")
        return {}, str(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the Pachyderm config ({error.__class__.__name__}); fix or remove it") from None
    v2 = data.get("v2") or {}
    name = named or environ.get("PACH_CONTEXT") or v2.get("active_context")
    context = (v2.get("contexts") or {}).get(name) if name else None
    if named and context is None:
        known = ", ".join(sorted(v2.get("contexts") or {})) or "none"
        raise ConfigError(f"pach_context: {path} has no context {named!r}; known contexts: {known}")
    return (context or {}), f"{path} context {name!r}"


def pach_config_tokens(environ: Mapping[str, str]) -> list[str]:
    """The session token of every context of the Pachyderm config file (an unreadable one has none)."""
    try:
        path = Path(environ.get("PACH_CONFIG") or Path(environ.get("HOME", "~")).expanduser() / ".pachyderm/config.json")
        contexts = (json.loads(path.read_text()).get("v2") or {}).get("contexts") or {}
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(contexts, dict):
        return []
    tokens = (context.get("session_token") for context in contexts.values() if isinstance(context, dict))
    return [token for token in tokens if isinstance(token, str) and token]


# -- previews: a pull request deployed to a project of its own (stages/preview.py) ------------
PREVIEW_PROJECT_PREFIX = "pr-"


def preview_project_name(number: int) -> str:
    return f"{PREVIEW_PROJECT_PREFIX}{number}"


def preview_settings(settings: Settings) -> Settings:
    """With `preview` set: the project becomes pr-N, the one named before is the base project."""
    if settings.preview is None:
        return settings
    base = settings.project
    name = preview_project_name(settings.preview)
    where = f"{settings.sources.get('preview', 'preview')}: preview of pull request {settings.preview}"
    return replace(
        settings,
        values={**settings.values, "project": name},
        sources={**settings.sources, "project": f"{where} (base project '{base}')"},
        base_project=base,
    )
