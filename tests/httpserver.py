"""A small threaded HTTP server on 127.0.0.1 whose replies each test scripts.

Usage::

    with LoopbackServer() as server:
        url = server.serve("/file.bin", Reply(status=503), Reply(body=payload))
        ...
        assert server.count("/file.bin") == 2

Each request to a path consumes the next scripted reply; the last one repeats.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

__all__ = ["LoopbackServer", "Reply"]


@dataclass(frozen=True)
class Reply:
    """One scripted response."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before sending anything (to provoke client timeouts).
    delay: float = 0.0
    #: Announce ``len(body)`` but send only this many bytes, then close.
    truncate_to: int | None = None
    #: Send a Content-Length header; without one the body ends when the connection closes.
    content_length: bool = True
    #: Seconds between single bytes of the body (a trickling server); 0 sends it at once.
    trickle: float = 0.0
    #: Send only this many bytes of the body, then wait until the server stops.
    stall_after: int | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, loopback: LoopbackServer) -> None:
        self.loopback = loopback
        super().__init__(("127.0.0.1", 0), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        reply = self.server.loopback.next_reply(self.path)
        if reply.delay and self.server.loopback.stopping.wait(reply.delay):
            return
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.content_length:
            self.send_header("Content-Length", str(len(reply.body)))
        self.send_header("Connection", "close")
        self.end_headers()
        body = reply.body if reply.truncate_to is None else reply.body[: reply.truncate_to]
        # The client may give up first (for example over the size cap).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self._send(reply, body)
        self.close_connection = True

    def _send(self, reply: Reply, body: bytes) -> None:
        stopping = self.server.loopback.stopping
        if reply.stall_after is not None:
            self.wfile.write(body[: reply.stall_after])
            self.wfile.flush()
            stopping.wait()
            return
        if not reply.trickle:
            self.wfile.write(body)
            return
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            if stopping.wait(reply.trickle):
                return

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


class LoopbackServer:
    """A threaded HTTP server on an ephemeral port, counting requests per path."""

    def __init__(self) -> None:
        self._routes: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self.requests: list[str] = []
        self.stopping = threading.Event()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LoopbackServer:
        self._httpd = _Server(self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stopping.set()
        assert self._httpd is not None and self._thread is not None
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "use the server as a context manager"
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def serve(self, path: str, *replies: Reply) -> str:
        """Script the replies for ``path`` and return its full URL."""
        if not replies:
            raise ValueError("give at least one Reply")
        with self._lock:
            self._routes[path] = list(replies)
        return self.base_url + path

    def next_reply(self, path: str) -> Reply:
        with self._lock:
            self.requests.append(path)
            queue = self._routes.get(path)
            if not queue:
                return Reply(status=404, body=b"not found\n")
            return queue.pop(0) if len(queue) > 1 else queue[0]

    def count(self, path: str) -> int:
        """How many requests arrived for ``path``."""
        with self._lock:
            return self.requests.count(path)
