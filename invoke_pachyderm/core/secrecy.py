"""Known secrets: what to mask in GitHub Actions, what to redact, and specs that must not hold them.

A secret is the pachd token (setting, or the pach context's session token) or the registry
password. In GitHub Actions a one-line secret is masked whole; a multi-line one (a JSON or PEM
key) line by line, each line of at least MIN_MASKED_LINE characters: shorter lines (`{`, `}`,
`"a": 1,`) are no secret on their own, and masking them would blank those characters in every
log line of the job.
"""
from __future__ import annotations

import json
import logging
import os
import re
from typing import Any, Iterable, Iterator

from invoke_pachyderm.core.errors import TemplateError

MIN_MASKED_LINE = 8
SECRET_ENV = ("INVOKE_PACHYDERM_TOKEN", "INVOKE_PACHYDERM_REGISTRY_PASSWORD")


def mask_values(secret: str | None) -> list[str]:
    """The values to register with `::add-mask::` for one secret."""
    if not secret or not secret.strip():
        return []
    lines = [line.strip() for line in secret.splitlines() if line.strip()]
    if len(lines) == 1:
        return lines
    return [line for line in lines if len(line) >= MIN_MASKED_LINE]


def redaction_values(secret: str | None) -> list[str]:
    """What `redact` replaces: the whole secret and the lines that are masked."""
    if not secret:
        return []
    return list(dict.fromkeys([secret, *mask_values(secret)]))


def known_secrets(settings) -> list[str]:
    """The settings' secrets and the session token of every pach context: any of them can be
    made active by PACH_CONTEXT or `pach_context`, and none belongs in a spec."""
    from invoke_pachyderm.core.config import pach_config_tokens

    return [*settings.secrets(), *pach_config_tokens(os.environ)]


# -- specs ------------------------------------------------------------------------------------
def refuse_secrets_in_specs(specs, secrets: Iterable[str]) -> None:
    """A spec is stored in pachd where anyone who can inspect the pipeline reads it."""
    needles = [value for secret in secrets for value in redaction_values(secret)]
    if not needles:
        return
    for spec in specs:
        for path, text in _strings(spec.spec, "$"):
            if any(needle in text for needle in needles):
                raise TemplateError(
                    f"{spec.source}: {path}: the rendered spec holds the value of a secret (pachd token or "
                    "registry password), which pachd would show to anyone; for Kubernetes secrets use the "
                    "spec's `secrets` field (transform.secrets), never a value in `vars`"
                )


def _strings(node: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)) else f"{path}[{json.dumps(str(key))}]"
            yield child, str(key)
            yield from _strings(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, f"{path}[{index}]")
    elif isinstance(node, str):
        yield path, node


# -- Invoke's own --debug log -----------------------------------------------------------------
_SECRET_ITEM = re.compile(r"""(['"](?:token|registry_password|session_token)['"]\s*:\s*)(['"])(?:\\.|(?!\2).)*\2""")


class RedactingFilter(logging.Filter):
    """`invoke --debug` logs its configuration (invoke.yaml, INVOKE_* variables) before a task runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_ITEM.sub(r"\1'***'", message)
        for name in SECRET_ENV:
            for value in redaction_values(os.environ.get(name)):
                redacted = redacted.replace(value, "***").replace(repr(value)[1:-1], "***")
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


def install_log_filter() -> None:
    logger = logging.getLogger("invoke")
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(RedactingFilter())
