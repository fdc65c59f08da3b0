"""A real HTTP receiver for rest-hook notifications, in a thread: it records every request, can
answer 500, hang before answering (a worker killed mid-post), or be down (port closed)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def event_id(self) -> str:
        return self.headers["x-fse-event-id"]


@dataclass
class Receiver:
    mode: str = "ok"  # ok, fail (500) or hang (record, then answer 30 s later)
    received: list[Received] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/notifications"

    def start(self) -> Receiver:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                headers = {k.lower(): v for k, v in self.headers.items()}
                owner.received.append(Received(headers, body))
                if owner.mode == "hang":
                    time.sleep(30)
                self.send_response(500 if owner.mode == "fail" else 200)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Down: the port is closed, a post gets 'connection refused'."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def processed(self) -> list[str]:
        """What an idempotent receiver acts on: each event id once, in arrival order."""
        return list(dict.fromkeys(r.event_id for r in self.received))

    def wait_for(self, count: int, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while len(self.received) < count:
            assert time.monotonic() < deadline, f"{len(self.received)} of {count} notifications"
            time.sleep(0.05)
