"""The failure a handler raises: a gRPC status code and pachd's message for it.

pachd returns its typed errors (ErrRepoNotFound, ErrPipelineAlreadyExists, ...)
with their own gRPC code, and plain ``errors.Errorf`` errors as UNKNOWN, which is
what a Go gRPC server does with an error that carries no status.
"""
from __future__ import annotations

import grpc


class RpcFailure(Exception):
    """Abort the current call with ``code`` and ``message``."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def wrapped(self, prefix: str) -> "RpcFailure":
        """Like Go's errors.Wrapf: same code, message prefixed."""
        return RpcFailure(self.code, f"{prefix}: {self.message}")


def unknown(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.UNKNOWN, message)


def not_found(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.NOT_FOUND, message)


def already_exists(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.ALREADY_EXISTS, message)


def unimplemented(message: str) -> RpcFailure:
    return RpcFailure(grpc.StatusCode.UNIMPLEMENTED, message)
