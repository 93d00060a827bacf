"""The `invoke-pachyderm` command: what is needed before a project has a tasks.py.

    invoke-pachyderm init [DIR] [--name NAME] [--image REPO] [--input-repo REPO]
                          [--base-image IMAGE] [--force] [--json]

Everything else is an invoke task of the scaffolded project (`invoke --list`).
Exit codes are those of `invoke_pachyderm.errors` (0 success, 2 configuration, ..., 64 usage).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from . import __version__
from .errors import PachydermToolError, UsageError
from .flags import argparse_hint
from .output import Reporter
from .scaffold import DEFAULT_BASE_IMAGE, DEFAULT_INPUT_REPO, DEFAULT_REGISTRY, scaffold

INIT_HELP = {
    "dir": "directory of the project (created if missing; default: the current directory)",
    "name": "project and pipeline name (default: the directory's name)",
    "image": f"image repository, without tag (default: {DEFAULT_REGISTRY}/NAME)",
    "input_repo": f"the Pachyderm repo the pipeline reads (default: {DEFAULT_INPUT_REPO})",
    "base_image": (
        f"base image of the Dockerfile (default: {DEFAULT_BASE_IMAGE}); it needs /bin/sh, grep "
        "and, if requirements.txt lists packages, python -m pip"
    ),
    "ci": "the CI configuration to write: github (.github/workflows/pachyderm.yml, the default) or gitlab (.gitlab-ci.yml)",
    "force": "overwrite files that exist and differ (pyproject.toml: replace only [tool.invoke-pachyderm])",
    "json": "print one JSON document on stdout (logs go to stderr)",
}


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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    init = commands.add_parser(
        "init",
        allow_abbrev=False,
        help="write a working project (tasks.py, pyproject.toml, Dockerfile, pipeline template, "
        "transformation and its test, GitHub workflow)",
        description="Write a working project from the templates shipped with invoke-pachyderm. "
        "Existing files are never overwritten without --force; pyproject.toml and .gitignore are "
        "merged (missing tables or lines appended).",
    )
    init.add_argument("dir", nargs="?", default=".", help=INIT_HELP["dir"])
    init.add_argument("--name", help=INIT_HELP["name"])
    init.add_argument("--image", help=INIT_HELP["image"])
    init.add_argument("--input-repo", help=INIT_HELP["input_repo"])
    init.add_argument("--base-image", help=INIT_HELP["base_image"])
    init.add_argument("--ci", choices=("github", "gitlab"), default="github", help=INIT_HELP["ci"])
    init.add_argument("--force", action="store_true", help=INIT_HELP["force"])
    init.add_argument("--json", action="store_true", help=INIT_HELP["json"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reporter = Reporter(json_mode=args.json)
    try:
        if args.command == "init":
            result = scaffold(
                Path(args.dir),
                name=args.name,
                image=args.image,
                input_repo=args.input_repo,
                base_image=args.base_image,
                force=args.force,
                ci=args.ci,
            )
            reporter.result(result.to_json(), result.human())
    except PachydermToolError as error:
        if logging.getLogger().isEnabledFor(logging.DEBUG):
            raise
        reporter.error(error.message)
        return error.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
