"""Serving kakin for the browser tests: uvicorn in a thread on 127.0.0.1, on a free port."""

from __future__ import annotations

from typing import Any


class AppServer:
    """An ASGI app (kakin's) served by uvicorn in a thread on 127.0.0.1, on a free port, for the browser tests."""

    def __init__(self, app: Any) -> None:
        import socket
        import threading
        import time

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "kakin did not start"
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
