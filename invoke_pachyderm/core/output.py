"""Where words go: logs to stderr, results to stdout (one JSON document with --json), GitHub Actions extras.

Every line passes through `redact`, so a registered secret never reaches a terminal, log or file.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, Iterator, Mapping, TextIO

from invoke_pachyderm.core.json_text import indented
from invoke_pachyderm.core.secrecy import mask_values, redaction_values


class Reporter:
    def __init__(
        self,
        json_mode: bool = False,
        secrets: tuple[str, ...] | list[str] = (),
        log_stream: TextIO | None = None,
        out_stream: TextIO | None = None,
        environ: Mapping[str, str] | None = None,
    ):
        self.json_mode = json_mode
        self.environ = os.environ if environ is None else environ
        self.log_stream = log_stream or sys.stderr
        self.out_stream = out_stream or sys.stdout
        self.secrets: list[str] = []
        for secret in secrets:
            self.add_secret(secret)

    @property
    def in_github_actions(self) -> bool:
        return self.environ.get("GITHUB_ACTIONS") == "true"

    def add_secret(self, secret: str | None) -> None:
        """Redact it from now on; in GitHub Actions mask it (a multi-line one line by line, see secrecy)."""
        new = [value for value in redaction_values(secret) if value not in self.secrets]
        if not new:
            return
        self.secrets.extend(new)
        self.secrets.sort(key=len, reverse=True)
        if self.in_github_actions:
            # Must come before anything else prints the value. The runner reads workflow commands
            # on stderr too; in --json mode stdout carries nothing but the one JSON document.
            stream = self.log_stream if self.json_mode else self.out_stream
            for value in mask_values(secret):
                if value in new:
                    print(f"::add-mask::{value}", file=stream, flush=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
            escaped = json.dumps(secret)[1:-1]  # as it appears inside a JSON string
            if escaped != secret:
                text = text.replace(escaped, "***")
        return text

    def info(self, message: str) -> None:
        self._line(self.redact(message))

    def _line(self, text: str) -> None:
        """One write with its newline: print() writes the newline apart, and a Ctrl-C between the
        two would glue the next line (the `error:` one) to this one."""
        self.log_stream.write(text + "\n")
        self.log_stream.flush()

    def log_for(self, prefix: str | None):
        label = f"[{prefix}] " if prefix else ""
        return lambda line: self.info(f"{label}{line}")

    @contextlib.contextmanager
    def group(self, title: str) -> Iterator[None]:
        if self.in_github_actions:
            print(f"::group::{self.redact(title)}", file=self.log_stream, flush=True)
        else:
            self.info(f"== {title}")
        try:
            yield
        finally:
            if self.in_github_actions:
                print("::endgroup::", file=self.log_stream, flush=True)

    def result(self, document: Mapping[str, Any], human: str) -> None:
        """The task's answer: JSON on stdout in --json mode, else the human text."""
        if self.json_mode:
            print(self.redact(indented(document, default=str)), file=self.out_stream, flush=True)
        elif human:
            print(self.redact(human), file=self.out_stream, flush=True)

    def error(self, message: str) -> None:
        """One line for the user; in GitHub Actions also an error annotation."""
        line = self.redact(message)
        self._line(f"::error::{line}" if self.in_github_actions else f"error: {line}")

    def github_outputs(self, outputs: Mapping[str, str]) -> None:
        path = self.environ.get("GITHUB_OUTPUT")
        if not path:
            return
        with open(path, "a", encoding="utf-8") as handle:
            for key, value in outputs.items():
                value = self.redact(str(value))
                if "\n" in value:
                    handle.write(f"{key}<<__INVOKE_PACHYDERM_EOF__\n{value}\n__INVOKE_PACHYDERM_EOF__\n")
                else:
                    handle.write(f"{key}={value}\n")

    def github_summary(self, markdown: str) -> None:
        path = self.environ.get("GITHUB_STEP_SUMMARY")
        if not path:
            return
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(self.redact(markdown).rstrip("\n") + "\n\n")
