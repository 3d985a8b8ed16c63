"""How a portal form's POST runs: one command, one transaction, the principal of the session; POST/redirect/GET.

A page module declares a form with :func:`form_post`: ``command(ctx, form)`` runs the change through the services
with ``ctx.principal`` (the session's member) inside one transaction (run again after a deadlock, like an API write)
and returns :class:`Done`, where to go and which flash message to show there. Then:

- success: the transaction commits and the browser is sent (303) to ``Done.to`` with ``?flash=KEY``; the page
  shows the message of ``KEY`` (``portal/_messages.html``: only known keys are shown, so a link cannot make the page
  say anything else);
- a :class:`~kakin.domain.errors.KakinError`: nothing changes (the transaction is rolled back); the page is rendered
  again by ``page(request, ctx, form)`` with what was typed and the error's stable code, whose message in the page's
  language (``portal/_messages.html``) is shown next to the field named by the error's ``param`` (or above the form
  when no field has that name); the status is the API's for that error (409, 402, 422, …);
- NotFound (another customer's thing): the 404 page; no session: the 401 page.

CSRF is checked before any of this (asgi-csrf in :func:`kakin.web.portal.create_portal`): a POST without the token
is 403 and runs nothing. Roles are never checked here: the services refuse (services/authorization.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.api.errors import status_of
from kakin.domain import errors
from kakin.services import portal

from .portal import COOKIE, _Context, _refusal

SECRET_FIELDS = frozenset({"csrftoken", "card_number", "cvc"})  # never echoed back into a page


@dataclass
class Form:
    """What a form sent (``values``: field → text, the CSRF token left out) and, after a refusal, the ``error``."""

    values: Mapping[str, str] = field(default_factory=dict)
    error: errors.KakinError | None = None

    def get(self, name: str, default: str = "") -> str:
        """What was typed in field ``name`` (``default`` when it was not sent)."""
        return self.values.get(name, default)

    def error_for(self, name: str) -> str | None:
        """The error code to show next to field ``name``, if the refusal named that field."""
        return self.error.code if self.error is not None and self.error.param == name else None

    def general_error(self, *fields: str) -> str | None:
        """The error code to show above the form: a refusal that names none of ``fields`` (the acting member, …)."""
        return self.error.code if self.error is not None and self.error.param not in fields else None


@dataclass(frozen=True)
class Done:
    """Where a successful form goes (a ``/portal/`` path, or the vendor's ``return_url`` when the session ended) and
    the flash message key shown there (None: no message)."""

    to: str
    flash: str | None = "saved"

    def url(self) -> str:
        if self.flash is None:
            return self.to
        sep = "&" if "?" in self.to else "?"
        return f"{self.to}{sep}{urlencode({'flash': self.flash})}"


Command = Callable[[_Context, Form], Done]
Page = Callable[[Request, _Context, Form], Response]


def form_post(page: Page, command: Command) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint for a form's POST: ``command`` in one transaction, then redirect (303) with a flash, or
    ``page`` again with the form as typed and the refusal, at the refusal's HTTP status. See the module's doc."""

    async def endpoint(request: Request) -> Response:
        sent = await request.form()
        values = {k: v for k, v in sent.items() if isinstance(v, str) and k not in SECRET_FIELDS}
        form = Form(values)
        state = request.app.state
        cookie = request.cookies.get(COOKIE)

        def attempt(uow: UnitOfWork) -> Response:
            session = portal.current(uow, cookie, state.clock())
            if session is None:
                return _refusal(request, 401, "session_ended")
            done = command(_Context(uow, session, state.clock, state.gateway, state.dns), form)
            return RedirectResponse(done.url(), status_code=303)

        def again(error: errors.KakinError) -> Response:
            with UnitOfWork(state.engine) as uow:
                session = portal.current(uow, cookie, state.clock())
                if session is None:
                    return _refusal(request, 401, "session_ended")
                if isinstance(error, errors.NotFound):
                    return _refusal(request, 404, "not_found", session.locale)
                response = page(request, _Context(uow, session, state.clock, state.gateway, state.dns),
                                Form(values, error))
                response.status_code = status_of(error)
                return response

        def work() -> Response:
            try:
                return in_transaction(state.engine, attempt)
            except errors.KakinError as error:  # rolled back: nothing changed
                return again(error)

        return await run_in_threadpool(work)

    return endpoint


def flash_of(request: Request) -> str | None:
    """The flash message key of a page reached after a successful form (``?flash=KEY``), if any."""
    value = request.query_params.get("flash")
    return value if value and value.isidentifier() and len(value) <= 40 else None
