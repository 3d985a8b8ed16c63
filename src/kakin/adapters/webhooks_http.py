"""POSTing webhooks over HTTP (httpx): the ``services.webhooks.Poster`` port."""

from __future__ import annotations

import threading

import httpx

TIMEOUT_SECONDS = 10.0
_client: httpx.Client | None = None
_lock = threading.Lock()


def _shared_client() -> httpx.Client:
    """One client for the process (thread-safe): its TLS context and connections are reused across posts."""
    global _client
    with _lock:
        if _client is None:
            _client = httpx.Client(timeout=TIMEOUT_SECONDS)
        return _client


def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body`` to ``url``; returns the HTTP status. Raises httpx errors when the receiver cannot be reached."""
    return _shared_client().post(url, content=body, headers=headers).status_code
