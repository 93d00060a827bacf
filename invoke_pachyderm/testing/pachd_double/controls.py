"""What tests steer and observe: calls made, injected faults, delay, auth tokens.

``ControlInterceptor`` applies them to every call before it reaches a servicer.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import grpc

from .errors import RpcFailure

TOKEN_HEADER = "authn-token"
TRANSACTION_HEADER = "pach-transaction"
# pachd answers these without a token even when auth is active
AUTH_FREE_SERVICES = ("versionpb_v2.API", "grpc.health.v1.Health")

NO_TOKEN = "no authentication token (try logging in)"
BAD_TOKEN = "provided auth token is corrupted or has expired (try logging in again)"


@dataclass
class Fault:
    code: grpc.StatusCode
    message: str
    remaining: int


class Controls:
    def __init__(self, tokens=None):
        self.tokens = as_token_list(tokens)
        self.delay = 0.0
        self.method_delays: dict[str, float] = {}
        self._lock = threading.Lock()
        self._calls: list[str] = []
        self._faults: dict[str, list[Fault]] = {}
        self._stop_on_finish = False

    def reset(self) -> None:
        with self._lock:
            self._calls.clear()
            self._faults.clear()
            self._stop_on_finish = False
            self.delay = 0.0
            self.method_delays.clear()

    @property
    def calls(self) -> list:
        with self._lock:
            return list(self._calls)

    def record(self, method: str) -> None:
        with self._lock:
            self._calls.append(method)

    def fail_next(self, method: str, code: grpc.StatusCode, count: int, message: str) -> None:
        method = method.rsplit("/", 1)[-1]  # "/pps_v2.API/CreatePipeline" works too
        with self._lock:
            self._faults.setdefault(method, []).append(Fault(code, message, count))

    def take_fault(self, method: str) -> RpcFailure | None:
        with self._lock:
            queue = self._faults.get(method)
            if not queue:
                return None
            fault = queue[0]
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.pop(0)
            return RpcFailure(fault.code, fault.message)

    def stop_on_next_finish(self) -> None:
        with self._lock:
            self._stop_on_finish = True

    def take_stop_on_finish(self) -> bool:
        with self._lock:
            armed, self._stop_on_finish = self._stop_on_finish, False
            return armed

    @property
    def auth_active(self) -> bool:
        return bool(self.tokens)

    def auth_failure(self, service: str, metadata) -> RpcFailure | None:
        if not self.tokens or service in AUTH_FREE_SERVICES:
            return None
        token = header(metadata, TOKEN_HEADER)
        if token is None:
            return RpcFailure(grpc.StatusCode.UNAUTHENTICATED, NO_TOKEN)
        if token not in self.tokens:
            return RpcFailure(grpc.StatusCode.UNAUTHENTICATED, BAD_TOKEN)
        return None


def as_token_list(tokens) -> list:
    """None, one token, or several."""
    if isinstance(tokens, str):
        return [tokens]
    return list(tokens or [])


def header(metadata, key: str) -> str | None:
    for name, value in metadata or ():
        if name == key:
            return value
    return None


class ControlInterceptor(grpc.ServerInterceptor):
    """Records the call, then applies an injected fault, the auth check and the delay."""

    def __init__(self, controls: Controls):
        self.controls = controls

    def intercept_service(self, continuation, handler_call_details):
        handler = continuation(handler_call_details)
        if handler is None:
            return None
        _, service, method = handler_call_details.method.split("/")
        self.controls.record(method)
        failure = self.controls.take_fault(method) or self.controls.auth_failure(
            service, handler_call_details.invocation_metadata
        )
        delay = self.controls.method_delays.get(method, self.controls.delay)
        if failure is None and not delay:
            return handler
        return _guarded(handler, delay, failure)


def _guarded(handler, delay: float, failure: RpcFailure | None):
    """The same handler, sleeping and/or aborting first (in the worker thread)."""

    def guard(context):
        if delay:
            time.sleep(delay)
            if not context.is_active():  # the client cancelled meanwhile: pachd's ctx is done
                context.abort(grpc.StatusCode.CANCELLED, "context canceled")
        if failure is not None:
            context.abort(failure.code, failure.message)

    def wrap(behavior):
        def guarded_behavior(request_or_iterator, context):
            guard(context)
            return behavior(request_or_iterator, context)

        return guarded_behavior

    for kind, make in (
        ("unary_unary", grpc.unary_unary_rpc_method_handler),
        ("unary_stream", grpc.unary_stream_rpc_method_handler),
        ("stream_unary", grpc.stream_unary_rpc_method_handler),
        ("stream_stream", grpc.stream_stream_rpc_method_handler),
    ):
        behavior = getattr(handler, kind)
        if behavior is not None:
            return make(
                wrap(behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler
