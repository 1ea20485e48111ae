"""A local webhook receiver for notification tests: an HTTP server on 127.0.0.1, port 0."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, statuses: list[int] | None = None) -> None:
        self.bodies: list[bytes] = []
        self.statuses = list(statuses or [])  # answered in turn; then 200
        self.url = ""
        self._lock = threading.Lock()

    def answer(self, body: bytes) -> int:
        with self._lock:
            self.bodies.append(body)
            return self.statuses.pop(0) if self.statuses else 200

    def payloads(self) -> list[Any]:
        return [json.loads(b) for b in self.bodies]

    @property
    def text(self) -> str:
        return "\n".join(b.decode("utf-8") for b in self.bodies)


@contextmanager
def receiver(statuses: list[int] | None = None) -> Iterator[Receiver]:
    got = Receiver(statuses)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status = got.answer(body)
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
