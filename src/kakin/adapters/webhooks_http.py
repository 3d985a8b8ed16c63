"""POSTing webhooks over HTTP (httpx): the ``services.webhooks.Poster`` port."""

from __future__ import annotations

import httpx

TIMEOUT_SECONDS = 10.0


def http_post(url: str, body: bytes, headers: dict[str, str]) -> int:
    """POST ``body`` to ``url``; returns the HTTP status. Raises httpx errors when the receiver cannot be reached."""
    return httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS).status_code
