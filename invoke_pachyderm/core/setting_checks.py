"""What each setting's value means, checked where the settings are read (config.check_key).

Each check gets the value (already of its declared type) and `where` ("<source>: key 'name'")
and raises one ConfigError line that names the key and says how to fix it. Secret values
(`token`, `registry_password`) are never shown.
"""
from __future__ import annotations

import math
import os
import re
from typing import Any, Callable, Mapping

from invoke_pachyderm.core.errors import ConfigError

# Docker's reference grammar (github.com/distribution/reference, regexp.go), for a repository:
# [host[:port]/]path-component[/path-component...], with no tag and no digest.
_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
REPOSITORY = re.compile(rf"(?:(?P<host>{_HOST})(?::(?P<port>[0-9]+))?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
REPOSITORY_LIMIT = 255  # NameTotalLengthMax of distribution/reference
BUILD_ARG_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a Dockerfile ARG is a shell-style variable
IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # `images.<name>` in templates, step outputs
IMAGE_NAME_LIMIT = 63
ENVIRONMENT_NAME = IMAGE_NAME
STAGE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")  # BuildKit's rule for `FROM ... AS name`
JOBS_LIMIT = 256
TIMEOUT_LIMIT = 7 * 24 * 3600  # a week: beyond it threading's waits overflow long before anyone looks
NAME_LIMIT, PATH_LIMIT = 255, 4095  # Linux's NAME_MAX and PATH_MAX (less the NUL)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def text(value: str, where: str, *, secret: bool = False, newlines: bool = True, empty: bool = False) -> None:
    """No NUL byte (no path, argument or variable can hold one); no other control character
    unless `newlines`; not empty or blank unless `empty`."""
    shown = "" if secret else f" = {value!r}"
    if "\0" in value:
        raise ConfigError(f"{where}{shown} contains a NUL byte; remove it")
    if not newlines and CONTROL.search(value):
        raise ConfigError(f"{where}{shown} contains a newline or another control character; remove it")
    if not empty and not value.strip():
        raise ConfigError(f"{where} is empty; set a value, or remove the key to use the default")


def item(where: str, index: int) -> str:
    """`<source>: key 'specs'` -> `<source>: key 'specs[0]'`."""
    return f"{where[:-1]}[{index}]'" if where.endswith("'") else f"{where}[{index}]"


def repository(value: str, where: str) -> None:
    text(value, where, newlines=False)
    example = "e.g. localhost:5000/edges or registry.example.com/team/edges"
    last = value.rsplit("/", 1)[-1]
    if "@" in value:
        raise ConfigError(f"{where}: {value!r} has a digest; give the repository only ({example}); pin_digest = true pins digests")
    if ":" in last:
        raise ConfigError(f"{where}: {value!r} has a tag; give the repository only ({example}) and set the tag with `tag`")
    if len(value) > REPOSITORY_LIMIT:
        raise ConfigError(f"{where}: the repository is {len(value)} characters, over Docker's limit of {REPOSITORY_LIMIT}")
    match = REPOSITORY.fullmatch(value)
    host = match.group("host") if match else None
    if match and host and host.lower() != host and not ("." in host or match.group("port")):
        raise ConfigError(
            f"{where}: in {value!r} Docker takes {host!r} for a registry host (it has capitals); repository paths "
            f"are lowercase ({example})"
        )
    if not match:
        lower = " (repository paths are lowercase)" if value.lower() != value and REPOSITORY.fullmatch(value.lower()) else ""
        raise ConfigError(
            f"{where}: {value!r} is not a valid image repository{lower}; Docker's grammar is [host[:port]/]path "
            f"of lowercase letters and digits separated by '.', '_', '__' or '-' ({example})"
        )
    if match.group("port") and not 0 < int(match.group("port")) < 65536:
        raise ConfigError(f"{where}: {value!r} has port {match.group('port')}, not 1-65535; fix the registry's port")


def relative_path(value: str, where: str, *, leave_project: bool = False, example: str) -> None:
    """A path (or glob) relative to the project; with `leave_project`, '..' may climb out of it (a
    build context in a monorepo), and where it lands is checked against the git repository later."""
    text(value, where, newlines=False)
    if len(os.fsencode(value)) > PATH_LIMIT or any(len(os.fsencode(part)) > NAME_LIMIT for part in value.split("/")):
        raise ConfigError(
            f"{where} is too long for a path (at most {NAME_LIMIT} bytes a name, {PATH_LIMIT} in all); shorten it"
        )
    if os.path.isabs(value) or value.startswith("~"):
        raise ConfigError(f"{where} = {value!r} leaves the project: it is absolute; give a path relative to the project, e.g. {example}")
    if not leave_project and os.path.normpath(value).split(os.sep)[0] == "..":
        raise ConfigError(f"{where} = {value!r} leaves the project; give a path inside it, e.g. {example}")


def build_args(value: Mapping[str, Any], where: str) -> None:
    for name, arg in value.items():
        if not BUILD_ARG_NAME.fullmatch(name):
            raise ConfigError(
                f"{where}: {name!r} is not a valid build-arg name (letters, digits and _, not starting with a digit); "
                "rename it as in the Dockerfile's ARG"
            )
        if isinstance(arg, Mapping) or isinstance(arg, list) or not isinstance(arg, (str, int, float, bool)):
            kind = "a table" if isinstance(arg, Mapping) else "an array" if isinstance(arg, list) else type(arg).__name__
            raise ConfigError(
                f"{where}: build argument '{name}' must be a string or number, got {kind}; "
                "Docker build arguments are flat: NAME = \"value\""
            )
        if isinstance(arg, str):
            text(arg, f"{where}: build argument '{name}'", empty=True)
        elif isinstance(arg, float) and not math.isfinite(arg):
            raise ConfigError(f"{where}: build argument '{name}' is {arg!r}; quote it if the Dockerfile wants that text")


def name(value: str, where: str, pattern: re.Pattern[str] = IMAGE_NAME, what: str = "image name") -> None:
    text(value, where, newlines=False)
    if len(value) > IMAGE_NAME_LIMIT or not pattern.fullmatch(value):
        raise ConfigError(
            f"{where}: {value!r} is not a valid {what}; use letters, digits, '_' and '-', starting with a letter "
            f"or digit, at most {IMAGE_NAME_LIMIT} characters"
        )


def target(value: str, where: str) -> None:
    text(value, where, newlines=False)
    if not STAGE_NAME.fullmatch(value):
        raise ConfigError(f"{where}: {value!r} is not a Dockerfile stage name (FROM ... AS name: letters, digits, '_', '.', '-')")


def token(value: str, where: str) -> None:
    text(value, where, secret=True)
    if re.search(r"\s", value) or CONTROL.search(value):
        raise ConfigError(f"{where} contains whitespace or a control character (a newline copied with it?); set the token alone")


def password(value: str, where: str) -> None:
    # Newlines stay: a service-account key (GCR's `_json_key`) is a multi-line password.
    text(value, where, secret=True)


def single_line(value: str, where: str) -> None:
    text(value, where, newlines=False)


def command(value: str, where: str) -> None:
    text(value, where)


def spec_globs(value: str | list[Any], where: str) -> None:
    patterns = [value] if isinstance(value, str) else value
    if not patterns:
        raise ConfigError(f"{where} lists no template; give at least one glob, e.g. specs = [\"templates/*.json.j2\"]")
    _globs(patterns, where, "templates/*.json.j2", isinstance(value, list))


def generated_inputs(value: list[Any], where: str) -> None:
    _globs(value, where, "models/*.bin", True)


def _globs(patterns: list[Any], where: str, example: str, indexed: bool) -> None:
    for index, pattern in enumerate(patterns):
        at = item(where, index) if indexed else where
        if not isinstance(pattern, str):
            raise ConfigError(f"{at} must be a glob string, got {pattern!r} ({type(pattern).__name__}), e.g. {example!r}")
        relative_path(pattern, at, example=example)


def hooks(value: list[Any], where: str) -> None:
    for index, task in enumerate(value):
        if not isinstance(task, str):
            raise ConfigError(f"{item(where, index)} must be a task invocation like \"render-spec --check\", got {task!r}")
        text(task, item(where, index), newlines=False)


def environments(value: Mapping[str, Any], where: str) -> None:
    for env_name in value:
        name(str(env_name), where, ENVIRONMENT_NAME, "environment name")


def variables(value: Mapping[str, Any], where: str) -> None:
    for key in value:
        text(str(key), f"{where}: variable name", newlines=False)


def jobs(value: int, where: str) -> None:
    if value < 1:
        raise ConfigError(f"{where} must be at least 1 (images built in parallel), got {value}; omit it for one per CPU")
    if value > JOBS_LIMIT:
        raise ConfigError(f"{where} is {value}, over {JOBS_LIMIT} images built at once; use a smaller number or omit it")


def timeout(value: float, where: str) -> None:
    try:
        seconds = float(value)
    except OverflowError:
        seconds = math.inf
    if not (math.isfinite(seconds) and seconds > 0):
        raise ConfigError(f"{where} must be a positive number of seconds, got {value!r}; e.g. timeout = 600")
    if seconds > TIMEOUT_LIMIT:
        raise ConfigError(f"{where} is {value!r} seconds, over a week ({TIMEOUT_LIMIT}); use a smaller number of seconds")


CHECKS: dict[str, Callable[[Any, str], None]] = {
    "image": repository,
    "dockerfile": lambda v, w: relative_path(v, w, leave_project=True, example="Dockerfile"),
    "context": lambda v, w: relative_path(v, w, leave_project=True, example="'.'"),
    "build_args": build_args,
    "target": target,
    "tag": single_line,
    "specs": spec_globs,
    "out_dir": lambda v, w: relative_path(v, w, example="build/pipelines"),
    "generated_inputs": generated_inputs,
    "test_command": command,
    "pachd_address": single_line,
    "token": token,
    "vars": variables,
    "registry_username": single_line,
    "registry_password": password,
    "jobs": jobs,
    "timeout": timeout,
    "hooks": hooks,
    "owner": single_line,
    "pach_context": single_line,
    "environments": environments,
    "env": single_line,
    "smoke_data": lambda v, w: relative_path(v, w, example="tests/data"),
}
