"""A TCP proxy in front of a real service (the Docker daemon, a registry) that makes it fail
part-way, as a daemon that dies or a registry that goes away would: in the manner of Toxiproxy.

The service behind it is real; only the connection is cut, stalled, or answered 502 once a
trigger (bytes seen in one direction) fires.
"""
from __future__ import annotations

import socket
import threading

CUT = "cut"  # close both sides at once: the client sees the connection drop mid-response
STALL = "stall"  # stop forwarding, keep the connection open: the client waits
BAD_GATEWAY = "502"  # answer this and every later request with 502, as a dead backend behind a balancer
# pass the request that triggered on, then nothing more the service sends on that connection until
# cut() drops it: the service acts on the request, its answer is lost (later connections work)
HOLD = "hold"

BAD_GATEWAY_RESPONSE = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n"
    b"Connection: close\r\n\r\nBad Gateway"
)


class FaultProxy:
    """Listens on 127.0.0.1:<free port>; forwards to `upstream` (a unix socket path or host:port).

    `from_server` / `from_client`: bytes that, once seen in that direction, trigger `action`.
    `fired` is set when it has triggered.
    """

    def __init__(self, upstream: str, action: str, from_server: bytes | None = None, from_client: bytes | None = None):
        self.upstream = upstream
        self.action = action
        self.from_server = from_server
        self.from_client = from_client
        self.fired = threading.Event()
        self._sockets: list[socket.socket] = []
        self._upstream_sockets: set[socket.socket] = set()
        self._held: dict[socket.socket, socket.socket] = {}  # client -> upstream, see HOLD
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _connect_upstream(self) -> socket.socket:
        if self.upstream.startswith("/"):
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            upstream.connect(self.upstream)
        else:
            host, port = self.upstream.rsplit(":", 1)
            upstream = socket.create_connection((host, int(port)))
        return upstream

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.fired.is_set() and self.action == BAD_GATEWAY:
                _answer_502(client)
                continue
            try:
                upstream = self._connect_upstream()
            except OSError:
                client.close()
                continue
            self._sockets += [client, upstream]
            self._upstream_sockets.add(upstream)
            threading.Thread(target=self._pump, args=(client, upstream, self.from_client), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, self.from_server), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, trigger: bytes | None) -> None:
        seen = b""
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                data = b""
            if not data:
                _close(source, target)
                return
            seen = (seen + data)[-4096:]
            if trigger is not None and trigger in seen and not self.fired.is_set():
                self.fired.set()
                if self.action == BAD_GATEWAY and source not in self._upstream_sockets:
                    _answer_502(source)
                    _close(target)
                    return
                if self.action == HOLD and source not in self._upstream_sockets:
                    self._held[source] = target
                if self.action == CUT:
                    if source in self._upstream_sockets:
                        _send(target, data)  # the client sees the line that triggered, then the drop
                    _close(source, target)
                    return
            if self.fired.is_set() and self.action == STALL:
                threading.Event().wait()  # forever: a daemon thread, gone with the test process
            if target in self._held:
                continue
            _send(target, data)

    def cut(self) -> None:
        """Drop the connections whose answers HOLD holds back; new ones are served."""
        for client, upstream in list(self._held.items()):
            _close(client, upstream)

    def close(self) -> None:
        self._closed = True
        _close(self._listener, *self._sockets)


def _answer_502(client: socket.socket) -> None:
    _send(client, BAD_GATEWAY_RESPONSE)
    _close(client)


def _send(sock: socket.socket, data: bytes) -> None:
    try:
        sock.sendall(data)
    except OSError:
        pass


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        sock.close()


def unix_socket_path(docker_host: str) -> str:
    if not docker_host.startswith("unix://"):
        raise ValueError(f"expected a unix:// DOCKER_HOST, got {docker_host!r}")
    return docker_host[len("unix://"):]

