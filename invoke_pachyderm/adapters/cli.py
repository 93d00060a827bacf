"""The `invoke-pachyderm` command: what is needed before a project has a tasks.py.

    invoke-pachyderm init [DIR] [--name NAME] [--image IMAGE] [--input-repo INPUT_REPO]
                          [--base-image BASE_IMAGE] [--force] [--json]

Its options come from the `init` command's declaration (commands.py), as the `invoke init` task's do.
Everything else is an invoke task of the scaffolded project (`invoke --list`).
Exit codes are those of `invoke_pachyderm.core.errors` (0 success, 2 configuration, ..., 64 usage).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from invoke_pachyderm import __version__
from invoke_pachyderm.adapters.argparsing import add_flags
from invoke_pachyderm.commands import COMMANDS, Request, execute
from invoke_pachyderm.core.errors import UsageError
from invoke_pachyderm.core.flags import argparse_hint

CLI_COMMANDS = ("init",)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse exits 2, the configuration errors' code
        self.print_usage(sys.stderr)
        self.exit(UsageError.exit_code, f"{self.prog}: error: {message}{argparse_hint(self, message)}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        allow_abbrev=False,
        prog="invoke-pachyderm",
        description="Build, push and deploy Pachyderm pipelines from git commits. "
        "`init` writes a new project; then use its invoke tasks (invoke --list).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")
    subcommands.required = True
    for name in CLI_COMMANDS:
        command = COMMANDS[name]
        sub = subcommands.add_parser(name, allow_abbrev=False, help=command.help, description=command.help)
        add_flags(sub, command)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = vars(build_parser().parse_args(argv))
    command = COMMANDS[args.pop("command")]
    code, _ = execute(command, Request(Path("."), args))
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
