"""Environments: `[tool.invoke-pachyderm.environments.NAME]` tables layered over the base settings.

The one chosen by `--env NAME` (or `INVOKE_PACHYDERM_ENV`, or an `env` setting) overrides what
pyproject.toml and the Invoke configuration set; `INVOKE_PACHYDERM_*` variables and task flags
still override it. `vars` and `build_args` are merged key by key, every other key is replaced.
Every table is checked, chosen or not, so a typo in `production` fails on a staging deploy too.
"""
from __future__ import annotations

from typing import Any, Mapping

from invoke_pachyderm.core.errors import ConfigError

MERGED_KEYS = ("vars", "build_args")
EXPLICIT_SOURCES = ("environment", "task flag")  # these win over an environment table
NOT_IN_AN_ENVIRONMENT = ("environments", "env")


def select_environment(values: dict[str, Any], sources: dict[str, str], environ: Mapping[str, str]) -> None:
    """Layer the chosen environment's table into `values`; then the pach context's project."""
    from invoke_pachyderm.core.config import check_key, to_plain

    tables = to_plain(values.get("environments") or {})
    where = sources.get("environments", "configuration")
    for name, table in tables.items():
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: environments.{name} must be a table of settings")
        for key, value in table.items():
            if key.replace("-", "_") in NOT_IN_AN_ENVIRONMENT:
                raise ConfigError(f"{where}: environments.{name}: key '{key}' cannot be set inside an environment")
            check_key(key.replace("-", "_"), value, f"{where}: environments.{name}")
    name = values.get("env")
    if name is not None:
        if name not in tables:
            known = ", ".join(sorted(tables)) or f"none (add [tool.invoke-pachyderm.environments.{name}])"
            raise ConfigError(f"{sources.get('env', 'env')}: unknown environment '{name}'; known environments: {known}")
        _layer(values, sources, tables[name], f"{where}: environments.{name}")
    _context_project(values, sources, environ)


def _layer(values: dict[str, Any], sources: dict[str, str], table: Mapping[str, Any], where: str) -> None:
    for key, value in table.items():
        key = key.replace("-", "_")
        if sources.get(key) in EXPLICIT_SOURCES:
            continue
        if key in MERGED_KEYS and isinstance(values.get(key), dict):
            value = {**values[key], **value}
        values[key] = value
        sources[key] = where


def _context_project(values: dict[str, Any], sources: dict[str, str], environ: Mapping[str, str]) -> None:
    """With no `project` set, the pach context's project (as pachctl would use it)."""
    from invoke_pachyderm.core.config import active_pach_context, check_key

    if "project" in values:
        return
    try:
        context, context_source = active_pach_context(environ, values.get("pach_context"))
    except ConfigError:
        return  # reported when pachd is needed, by resolve_pachd
    if context.get("project"):
        check_key("project", context["project"], context_source)
        values["project"] = context["project"]
        sources["project"] = context_source
