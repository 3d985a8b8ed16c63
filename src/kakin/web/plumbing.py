"""What the customer portal and the operator console share to serve a page: the HTTPS check for secure cookies,
asgi-csrf's "every path" set, and rendering a template with the CSRF token, never cached."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse


class EveryPath:
    """asgi-csrf's ``always_protect``: every path of the app is checked, with or without cookies."""

    def __contains__(self, path: object) -> bool:
        return True


def https(request: Request) -> bool:
    """Whether the browser reached kakin over HTTPS (directly, or through a trusted proxy:
    ``app.state.trust_proxy`` and ``X-Forwarded-Proto``)."""
    if request.url.scheme == "https":
        return True
    return bool(request.app.state.trust_proxy) and request.headers.get("x-forwarded-proto", "").lower() == "https"


def render_page(env: Environment, request: Request, locale: str, template: str, status: int = 200,
                **values: Any) -> HTMLResponse:
    """Render ``template`` of ``env`` with the locale, the CSRF token, the path and ``values``; never cached."""
    token = request.scope.get("csrftoken")
    html = env.get_template(template).render(locale=locale, csrftoken=token() if token else "",
                                             path=request.url.path, **values)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})
