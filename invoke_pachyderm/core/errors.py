"""Errors a user can act on, each with a documented exit code.

Anything that is not a ``PachydermToolError`` is a bug and keeps its traceback.
The exit codes are listed in the README; keep both in step.
"""
from __future__ import annotations


class PachydermToolError(Exception):
    """Base class: one clear line for the user, and an exit code."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(PachydermToolError):
    """A key of the configuration is unknown, missing or of the wrong type."""

    exit_code = 2


class TemplateError(PachydermToolError):
    """A pipeline spec template does not render, or renders to an invalid spec."""

    exit_code = 3


class GitStateError(PachydermToolError):
    """Not a git repository, no commit yet, or a dirty working tree."""

    exit_code = 4


class TestsFailed(PachydermToolError):
    """The project's test command failed, so nothing was pushed or deployed."""

    __test__ = False  # not a pytest test class
    exit_code = 5


class DockerError(PachydermToolError):
    """The Docker daemon is unreachable or the image build failed."""

    exit_code = 6


class RegistryError(PachydermToolError):
    """The registry refused a push or a look-up, or could not be reached."""

    exit_code = 7


class PachdError(PachydermToolError):
    """pachd is unreachable or refused a request; nothing was changed (read back from pachd when
    its connection was lost mid-call)."""

    exit_code = 8


class ConnectionLost(PachdError):
    """A call reached pachd, or may have, but its answer never came (the connection dropped, or
    no answer in time): whether it took effect is known only by reading pachd back."""


class HealthError(PachydermToolError):
    """A deployed pipeline did not become RUNNING (crashing, failed or timed out)."""

    exit_code = 9


class RefusedError(PachydermToolError):
    """Refused: the deploy would go backwards (an older commit), or touch a pipeline this project does not own."""

    exit_code = 10


class UsageError(PachydermToolError):
    """The command line is wrong: an unknown flag, a value that is not of the flag's type."""

    exit_code = 64  # EX_USAGE of sysexits.h; 2 is already the configuration errors' code


class Interrupted(PachydermToolError):
    """Ctrl-C (SIGINT): the line says what was and was not applied. 128 + SIGINT, as shells do."""

    exit_code = 130


class ConcurrentDeployError(PachydermToolError):
    """Another deploy changed a pipeline this one planned against; nothing was changed."""

    exit_code = 11


class SmokeFailed(PachydermToolError):
    """The transform failed on the sample files in a local container (non-zero exit, nothing in /pfs/out)."""

    exit_code = 12


class PartlyApplied(PachydermToolError):
    """Something was changed on pachd before a failure, or whether it was is unknown (pachd did
    not answer when read back): the line lists what was applied, what was not, and what is unknown."""

    exit_code = 13


EXIT_CODES = {
    cls.exit_code: cls
    for cls in (
        ConfigError,
        TemplateError,
        GitStateError,
        TestsFailed,
        DockerError,
        RegistryError,
        PachdError,
        HealthError,
        RefusedError,
        UsageError,
        Interrupted,
        ConcurrentDeployError,
        SmokeFailed,
        PartlyApplied,
    )
}
