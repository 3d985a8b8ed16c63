"""The Stripe gateway with the real ``stripe`` SDK against localstripe, through kakin's billing.

localstripe (a stateful fake Stripe server) is started once for the session
in a subprocess on 127.0.0.1, and the SDK's api_base points at it. Each test
uses its own secret key, so idempotency keys (scoped per account at Stripe)
never meet across tests even though every fresh database bills
``nipoplus:c1:…`` again.

What localstripe lacks, and what the launcher below adds so that it answers
as Stripe does (each added piece is small and follows Stripe's documented
behaviour; nothing of kakin's is faked):

* it binds to every interface and pickles its state to /tmp/localstripe.pickle
  after each write: here it listens on 127.0.0.1 only and keeps state in memory;
* it ignores the Idempotency-Key header (a retried POST creates a second
  object): a middleware replays the first response for a repeated key, and
  answers 400 idempotency_error when the key comes back with other parameters;
* of Stripe's test PaymentMethods it knows only pm_card_visa,
  pm_card_visa_chargeDeclined and pm_card_chargeCustomerFail: the launcher adds
  pm_card_chargeDeclined, pm_card_chargeDeclinedInsufficientFunds,
  pm_card_chargeDeclinedExpiredCard, pm_card_authenticationRequired,
  pm_card_visa_chargeDeclinedLostCard and pm_card_visa_chargeDeclinedStolenCard;
* its card errors always say card_declined with no decline_code, have type
  invalid_request_error, and the decline cards (…0002, …9995, …0069, …9987, …9979) are
  refused only when attached, while a charge with them succeeds: the launcher
  gives them Stripe's code/decline_code, type card_error, and declines them
  when charged too.

Handled in the adapter instead (correct for Stripe too): localstripe's card
error names only the Charge, not the PaymentIntent; and off-session it answers a
card that needs 3-D Secure with 200 and status requires_action, where Stripe
answers 402 authentication_required. localstripe also ignores Stripe-Version.

As at Stripe, a card that is declined when charged is refused already when it
is attached to a customer (create_customer/set_payment_method), except
pm_card_chargeCustomerFail, Stripe's "decline after attaching" card: so the
charge-time declines with reasons are exercised on the gateway directly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, func, select

try:
    import localstripe  # noqa: F401
    import stripe
except ImportError as missing:  # pragma: no cover - depends on the machine
    reason = (f"!!! Stripe integration tests NOT RUN: {missing.name} is not installed "
              "(pip install the dev extras: stripe and localstripe) !!!")
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason, allow_module_level=True)

from kakin.adapters.db import tables
from kakin.adapters.db.store import UnitOfWork, in_transaction
from kakin.adapters.stripe_gateway import StripeGateway
from kakin.domain import errors
from kakin.domain.errors import KakinError
from kakin.services import billing, payments
from kakin.services.tenancy import create_tenant, open_tenant

JST = ZoneInfo("Asia/Tokyo")
WEBHOOK_SECRET = "whsec_kakin_test"

LAUNCHER = r'''
import sys
from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError
from localstripe.resources import Charge, PaymentIntent, PaymentMethod

port = int(sys.argv[1])

# State in memory only: localstripe pickles its store to /tmp/localstripe.pickle after every write.
resources.Store.dump_to_disk = lambda self: None

# Stripe's test PaymentMethods that localstripe does not know (docs.stripe.com/testing).
EXTRA = {
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_authenticationRequired": "4000002760003184",
    "pm_card_visa_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_visa_chargeDeclinedStolenCard": "4000000000009979",
}
_canonical = PaymentMethod._try_get_canonical_test_article.__func__

def canonical(cls, id):
    if id in EXTRA:
        return PaymentMethod(type="card", card=dict(number=EXTRA[id], exp_month="12", exp_year="2034", cvc="123"))
    return _canonical(cls, id)

PaymentMethod._try_get_canonical_test_article = classmethod(canonical)

# Stripe's code and decline_code for its decline cards; Stripe declines them when charged, not only when attached.
DECLINES = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": ("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
}
_charging_is_declined = PaymentMethod._charging_is_declined

def charging_is_declined(self):
    return _charging_is_declined(self) or (self.type == "card" and self._card_number in DECLINES)

PaymentMethod._charging_is_declined = charging_is_declined

def card_error(code, decline_code, message, **extra):
    e = UserError(402, message, {"code": code, "decline_code": decline_code, **extra})
    e.body["error"]["type"] = "card_error"
    return e

def set_auth_failure(self):
    pm = PaymentMethod._api_retrieve(self.payment_method)
    code, decline, message = DECLINES.get(getattr(pm, "_card_number", ""), DECLINES["4000000000000002"])
    self.status, self.failure_code, self.failure_message, self._decline_code = "failed", code, message, decline

def raise_failure(self):
    raise card_error(self.failure_code, getattr(self, "_decline_code", None), self.failure_message, charge=self.id)

Charge._set_auth_failure = set_auth_failure
Charge._raise_failure = raise_failure
_attaching_is_declined = PaymentMethod._attaching_is_declined

def attaching_is_declined(self):
    if _attaching_is_declined(self) and self._card_number in DECLINES:
        raise card_error(*DECLINES[self._card_number])
    return _attaching_is_declined(self)

PaymentMethod._attaching_is_declined = attaching_is_declined

# Stripe's idempotency: a repeated key replays the first response; with other parameters it is refused.
_seen = {}

@web.middleware
async def idempotency(request, handler):
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    scope = (request.headers.get("Authorization", ""), key)
    body = await request.read()
    if scope in _seen:
        path, first, status, text = _seen[scope]
        if (path, first) != (request.path, body):
            return web.json_response({"error": {"type": "idempotency_error", "message":
                "Keys for idempotent requests can only be used with the same parameters they were first used with."}},
                status=400)
        return web.Response(status=status, text=text, content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    response = await handler(request)
    _seen[scope] = (request.path, body, response.status, response.text)
    return response

server.app.middlewares.insert(0, idempotency)
web.run_app(server.app, host="127.0.0.1", port=port, access_log=None, print=None)
'''


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=JST)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def localstripe_url() -> Iterator[str]:
    port = _free_port()
    log = tempfile.NamedTemporaryFile(prefix="localstripe-", suffix=".log", delete=False)  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                req = urllib.request.Request(url + "/v1/balance", headers={"Authorization": "Bearer sk_test_ready"})
                with urllib.request.urlopen(req, timeout=1) as r:
                    if r.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                with open(log.name, encoding="utf-8", errors="replace") as f:
                    pytest.fail(f"localstripe did not start (exit {proc.poll()}):\n{f.read()[-3000:]}", pytrace=False)
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        os.unlink(log.name)


@pytest.fixture
def api_key() -> str:
    """A Stripe account of the test's own: idempotency keys are scoped by it."""
    return f"sk_test_{uuid.uuid4().hex}"


@pytest.fixture
def gateway(localstripe_url: str, api_key: str) -> StripeGateway:
    return StripeGateway(api_key, api_base=localstripe_url, webhook_secret=WEBHOOK_SECRET, max_network_retries=2, timeout=10)


@pytest.fixture
def stripe_api(localstripe_url: str, api_key: str) -> stripe.StripeClient:
    """Straight to localstripe, to look at what the gateway did there."""
    return stripe.StripeClient(api_key, base_addresses={"api": localstripe_url})


def sign_up(engine: Engine, gateway: StripeGateway, payment_method: str) -> None:
    """A NipoPlus customer with the card, then the gold plan for 10 seats (1,800 JPY charged at once)."""
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2022, 5, 1))
        billing.create_customer(uow, tenant, gateway, "c0", "顧客0", at(2022, 5, 1), payment_method=payment_method)
    with UnitOfWork(engine) as uow:
        billing.subscribe(uow, open_tenant(uow, "nipoplus"), gateway, "c0", at(2022, 5, 3, 10), "gold", seats=10)


def invoices(engine: Engine) -> list[dict]:  # type: ignore[type-arg]
    with UnitOfWork(engine) as uow:
        return uow.invoices_for(open_tenant(uow, "nipoplus").row)


def attempts(engine: Engine) -> list[dict]:  # type: ignore[type-arg]
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(tables.payment_attempts).order_by(tables.payment_attempts.c.id)).mappings()]


def state(engine: Engine) -> tuple[str | None, str]:
    """The customer's Stripe customer id and plan status."""
    with UnitOfWork(engine) as uow:
        account = billing.load(uow, open_tenant(uow, "nipoplus"), "c0", lock=False)
    assert account.plan_subscription is not None
    return account.gateway_customer, account.plan_subscription.status.value


def intents_of(stripe_api: stripe.StripeClient, customer: str | None) -> list[stripe.PaymentIntent]:
    return [pi for pi in stripe_api.v1.payment_intents.list(params={"limit": 100}).data if pi.customer == customer]


# ---------------------------------------------------------------- charges through kakin
def test_a_subscription_is_paid_by_card_at_stripe(engine: Engine, gateway: StripeGateway,
                                                  stripe_api: stripe.StripeClient) -> None:
    sign_up(engine, gateway, "pm_card_visa")
    [invoice] = invoices(engine)
    assert (invoice["total"], invoice["status"]) == (1800, "paid")
    [attempt] = attempts(engine)
    assert attempt["outcome"] == "succeeded" and attempt["reference"].startswith("pi_")
    customer, status = state(engine)
    assert status == "active"
    pi = stripe_api.v1.payment_intents.retrieve(attempt["reference"])
    assert (pi.status, pi.amount, pi.currency, pi.customer) == ("succeeded", 1800, "jpy", customer)  # JPY: no decimals
    assert pi.metadata["kakin_charge"] == attempt["idempotency_key"]
    cus = stripe_api.v1.customers.retrieve(customer).to_dict()  # type: ignore[arg-type]
    assert cus["metadata"]["kakin_customer"] == "c0"
    default = cus["invoice_settings"]["default_payment_method"]
    assert stripe_api.v1.payment_methods.retrieve(default).customer == customer
    assert gateway.retrieve(pi.id).ok


def test_a_card_refused_when_attached_leaves_nothing_behind(engine: Engine, gateway: StripeGateway) -> None:
    with UnitOfWork(engine) as uow:
        create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2022, 5, 1))
    with pytest.raises(KakinError) as refused:
        with UnitOfWork(engine) as uow:
            billing.create_customer(uow, open_tenant(uow, "nipoplus"), gateway, "c0", "顧客0", at(2022, 5, 1),
                                    payment_method="pm_card_visa_chargeDeclined")
    assert (refused.value.code, refused.value.param) == ("card_declined", "payment_method")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(tables.customers)).scalar_one() == 0


def test_a_sign_up_whose_charge_stripe_declines_is_refused_and_its_attempt_stays_in_the_payment_log(
        engine: Engine, gateway: StripeGateway, stripe_api: stripe.StripeClient) -> None:
    with pytest.raises(KakinError) as refused:
        sign_up(engine, gateway, "pm_card_chargeCustomerFail")  # attaches, then every charge is declined
    assert (refused.value.code, getattr(refused.value, "decline_code", None)) == ("card_declined", "generic_decline")
    assert invoices(engine) == []  # no invoice, nothing owed
    [attempt] = attempts(engine)
    assert (attempt["outcome"], attempt["code"], attempt["invoice_id"], attempt["amount"]) == (
        "failed", "card_declined", None, 1800)
    customer, status = state(engine)
    assert status == "active"  # still on the free plan
    with UnitOfWork(engine) as uow:
        assert billing.load(uow, open_tenant(uow, "nipoplus"), "c0", lock=False).plan_subscription.plan == "free"  # type: ignore[union-attr]
    assert stripe_api.v1.payment_intents.retrieve(attempt["reference"]).status == "requires_payment_method"
    assert [pi.id for pi in intents_of(stripe_api, customer)] == [attempt["reference"]]


@pytest.mark.parametrize(("payment_method", "code"), [
    ("pm_card_chargeDeclined", "card_declined"),
    ("pm_card_chargeDeclinedInsufficientFunds", "insufficient_funds"),
    ("pm_card_chargeDeclinedExpiredCard", "expired_card"),
    ("pm_card_visa_chargeDeclinedLostCard", "lost_card"),
    ("pm_card_visa_chargeDeclinedStolenCard", "stolen_card"),
])
def test_a_declined_charge_carries_stripes_reason(payment_method: str, code: str, gateway: StripeGateway) -> None:
    outcome = gateway.charge(payment_method, 1800, f"decline-{payment_method}")
    assert (outcome.ok, outcome.code, outcome.requires_action) == (False, code, False)
    assert outcome.reference is not None and outcome.reference.startswith("pi_")
    assert gateway.retrieve(outcome.reference).ok is False
    assert gateway.charge(payment_method, 1800, f"decline-{payment_method}") == outcome  # replayed, not charged again
    with pytest.raises(errors.CardDeclined) as refused:  # Stripe checks the card when it is attached already
        gateway.attach(payment_method, "c9", None)
    assert (refused.value.code, refused.value.decline_code) == ("card_declined", "generic_decline" if code == "card_declined" else code)


def test_authentication_required_then_the_customer_authenticates_and_restore_payment_settles(
        engine: Engine, gateway: StripeGateway, stripe_api: stripe.StripeClient, localstripe_url: str) -> None:
    sign_up(engine, gateway, "pm_card_authenticationRequired")
    [invoice] = invoices(engine)
    [attempt] = attempts(engine)
    assert invoice["status"] == "open"
    assert (attempt["outcome"], attempt["code"]) == ("requires_action", "authentication_required")
    assert state(engine)[1] == "incomplete"  # no service until the customer authenticates
    reference = attempt["reference"]
    pi = stripe_api.v1.payment_intents.retrieve(reference)
    assert pi.status == "requires_action"
    with UnitOfWork(engine) as uow:  # nothing to restore yet
        assert payments.restore_payment(uow, open_tenant(uow, "nipoplus"), gateway, "c0", at(2022, 5, 3, 11))["restored"] == []

    # The customer completes 3-D Secure in the browser with the PaymentIntent's client secret (localstripe's Stripe.js
    # does this with its _authenticate endpoint and the publishable key).
    form = f"key=pk_test_kakin&client_secret={pi.client_secret}&success=true".encode()
    with urllib.request.urlopen(urllib.request.Request(f"{localstripe_url}/v1/payment_intents/{reference}/_authenticate",
                                                       data=form, method="POST"), timeout=5) as r:
        assert json.loads(r.read())["status"] == "succeeded"

    with UnitOfWork(engine) as uow:
        restored = payments.restore_payment(uow, open_tenant(uow, "nipoplus"), gateway, "c0", at(2022, 5, 3, 12))
    assert restored["restored"] == [invoice["number"]]
    assert invoices(engine)[0]["status"] == "paid"
    assert state(engine)[1] == "active"
    # settled from Stripe's answer, not charged again: the payment log adds the payment that paid it, same reference
    assert [(a["outcome"], a["reference"]) for a in attempts(engine)] == [("requires_action", reference),
                                                                          ("succeeded", reference)]


def test_a_refund_is_idempotent_and_a_failed_payment_cannot_be_refunded(gateway: StripeGateway) -> None:
    paid = gateway.charge("pm_card_visa", 3600, "refund-me")
    assert paid.ok and paid.reference
    refund = gateway.refund(paid.reference, 1200, "refund-me:1")
    assert refund.ok and refund.reference and refund.reference.startswith("re_")
    assert gateway.refund(paid.reference, 1200, "refund-me:1") == refund
    failed = gateway.charge("pm_card_chargeDeclined", 3600, "refund-failed")
    assert failed.reference
    assert gateway.refund(failed.reference, 3600, "refund-failed:1").ok is False


def test_a_payment_method_stripe_does_not_have_is_a_failed_payment_not_an_error(gateway: StripeGateway) -> None:
    outcome = gateway.charge("pm_gone", 1800, "gone")  # Stripe answers 404: retrying cannot help, dunning can
    assert (outcome.ok, outcome.code, outcome.reference) == (False, "payment_method_unknown", None)
    with pytest.raises(KakinError) as refused:
        gateway.attach("pm_gone", "c9", None)
    assert (refused.value.code, refused.value.param) == ("payment_method_unknown", "payment_method")


def test_only_payment_method_ids_are_known() -> None:
    gateway = StripeGateway("sk_test_x", api_base="http://127.0.0.1:9")
    assert gateway.is_known("pm_1NxYz") and gateway.is_known("pm_card_visa")
    assert not gateway.is_known("4242424242424242") and not gateway.is_known("tok_visa") and not gateway.is_known("")


# ---------------------------------------------------------------- webhooks
def stripe_signature(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header as Stripe builds it: t=…,v1=HMAC-SHA256(secret, "t.payload")."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def test_a_webhook_with_stripes_signature_is_accepted_and_a_forged_one_refused(gateway: StripeGateway) -> None:
    payload = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "api_version": None,
                          "data": {"object": {"id": "pi_1", "object": "payment_intent", "status": "succeeded"}}}).encode()
    event = gateway.verify_webhook(payload, stripe_signature(payload, WEBHOOK_SECRET))
    assert (event["type"], event["data"]["object"]["id"]) == ("payment_intent.succeeded", "pi_1")
    forged = [
        stripe_signature(payload, "whsec_someone_else"),  # not our secret
        stripe_signature(payload.replace(b"succeeded", b"succeedeD"), WEBHOOK_SECRET),  # signed another body
        stripe_signature(payload, WEBHOOK_SECRET, int(time.time()) - 3600),  # replayed an hour later
        "t=1,v1=" + "0" * 64,
        "",
    ]
    for header in forged:
        with pytest.raises(stripe.SignatureVerificationError):
            gateway.verify_webhook(payload, header)


def test_a_webhook_sent_by_localstripe_verifies(gateway: StripeGateway, localstripe_url: str) -> None:
    received: list[tuple[bytes, str]] = []
    arrived = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, self.headers.get("Stripe-Signature", "")))
            arrived.set()
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        form = (f"url=http://127.0.0.1:{hook.server_address[1]}/stripe&secret={WEBHOOK_SECRET}"
                "&events[]=payment_intent.succeeded").encode()
        urllib.request.urlopen(urllib.request.Request(f"{localstripe_url}/_config/webhooks/kakin-{uuid.uuid4().hex}",
                                                      data=form, method="POST"), timeout=5).close()
        paid = gateway.charge("pm_card_visa", 1800, "webhook")
        deadline = time.monotonic() + 10
        mine: list[tuple[bytes, str]] = []
        while not mine and time.monotonic() < deadline:
            arrived.wait(0.2)
            mine = [(b, s) for b, s in received if json.loads(b)["data"]["object"]["id"] == paid.reference]
        assert mine, "localstripe sent no payment_intent.succeeded for the charge"
        body, header = mine[0]
        assert gateway.verify_webhook(body, header)["type"] == "payment_intent.succeeded"
        with pytest.raises(stripe.SignatureVerificationError):
            gateway.verify_webhook(body + b" ", header)
    finally:
        hook.shutdown()
        hook.server_close()


# ---------------------------------------------------------------- network trouble
class LossyProxy:
    """A TCP proxy on 127.0.0.1 that forwards every request and can lose the next response.

    ``lose("drop")`` closes the connection instead of answering; ``lose("hold")``
    never answers, so the client times out. Either way the server has already
    acted on the request. Request lines and Idempotency-Keys are recorded.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = ("127.0.0.1", int(upstream.rsplit(":", 1)[1]))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.mode: str | None = None
        self.lost = 0
        self.seen: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def lose(self, mode: str) -> None:
        with self._lock:
            self.mode = mode

    def close(self) -> None:
        self._stop.set()
        self.listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream = socket.create_connection(self.upstream)
        gone = threading.Event()
        threading.Thread(target=self._requests, args=(client, upstream, gone), daemon=True).start()
        try:
            while data := upstream.recv(65536):
                with self._lock:
                    mode, self.mode = self.mode, None
                    if mode:
                        self.lost += 1
                if mode == "hold":
                    gone.wait(30)  # until the client gives up
                    return
                if mode == "drop":
                    return
                client.sendall(data)
        except OSError:
            pass
        finally:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def _requests(self, client: socket.socket, upstream: socket.socket, gone: threading.Event) -> None:
        try:
            while data := client.recv(65536):
                head = re.match(rb"([A-Z]+ \S+) HTTP/1\.1\r\n(.*?)\r\n\r\n", data, re.S)
                if head:
                    key = re.search(rb"(?im)^idempotency-key: *(\S+)", head.group(2))
                    self.seen.append((head.group(1).decode(), key.group(1).decode() if key else None))
                upstream.sendall(data)
        except OSError:
            pass
        finally:
            gone.set()


@pytest.fixture
def proxy(localstripe_url: str) -> Iterator[LossyProxy]:
    p = LossyProxy(localstripe_url)
    yield p
    p.close()


@pytest.mark.parametrize("loss", ["drop", "hold"])
def test_a_lost_response_is_retried_with_the_same_key_and_charges_once(
        loss: str, engine: Engine, proxy: LossyProxy, api_key: str, stripe_api: stripe.StripeClient) -> None:
    gateway = StripeGateway(api_key, api_base=proxy.url, max_network_retries=2, timeout=1.5)
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2022, 5, 1))
        billing.create_customer(uow, tenant, gateway, "c0", "顧客0", at(2022, 5, 1), payment_method="pm_card_visa")
    proxy.seen.clear()
    proxy.lose(loss)
    with UnitOfWork(engine) as uow:
        billing.subscribe(uow, open_tenant(uow, "nipoplus"), gateway, "c0", at(2022, 5, 3, 10), "gold", seats=10)
    assert proxy.lost == 1
    [attempt] = attempts(engine)
    creates = [key for line, key in proxy.seen if line == "POST /v1/payment_intents"]
    assert creates == [attempt["idempotency_key"]] * 2  # sent, lost, sent again with the same key
    assert invoices(engine)[0]["status"] == "paid"
    customer, _ = state(engine)
    [pi] = intents_of(stripe_api, customer)  # one PaymentIntent, one charge
    assert pi.id == attempt["reference"] and pi.status == "succeeded"
    assert len(stripe_api.v1.charges.list(params={"customer": customer, "limit": 100}).data) == 1  # type: ignore[arg-type]


def test_a_sign_up_whose_answer_stripe_lost_and_that_is_not_sent_again_is_refunded_by_the_worker(
        engine: Engine, proxy: LossyProxy, api_key: str, stripe_api: stripe.StripeClient) -> None:
    # The SDK gives up after one lost answer (no retries): the command is 503 with no invoice, the intent unknown.
    # The worker's pass asks Stripe again with the same key (its idempotency replays the PaymentIntent made) and
    # refunds it: one PaymentIntent at Stripe, refunded, and no charge left without an invoice.
    lossy = StripeGateway(api_key, api_base=proxy.url, max_network_retries=0, timeout=1.5)
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2022, 5, 1))
        billing.create_customer(uow, tenant, lossy, "c0", "顧客0", at(2022, 5, 1), payment_method="pm_card_visa")
    proxy.lose("drop")
    with pytest.raises(errors.PaymentGatewayUnavailable):
        in_transaction(engine, lambda uow: billing.subscribe(uow, open_tenant(uow, "nipoplus"), lossy, "c0",
                                                             at(2022, 5, 3, 10), "gold", seats=10))
    assert proxy.lost == 1 and invoices(engine) == [] and attempts(engine) == []
    steady = StripeGateway(api_key, api_base=proxy.url, max_network_retries=2, timeout=10)
    assert payments.settle_intents(engine, steady, at(2022, 5, 3, 10), grace=timedelta(0))["refunded"] == 1
    with engine.connect() as conn:
        intent = conn.execute(select(tables.payment_intents)).mappings().one()
        gateway_customer = conn.execute(select(tables.customers.c.gateway_customer)).scalar_one()
    [pi] = intents_of(stripe_api, gateway_customer)  # one PaymentIntent, the lost one
    assert (intent["status"], intent["reference"], intent["invoice_id"]) == ("refunded", pi.id, None)
    refunds = stripe_api.v1.refunds.list(params={"limit": 100}).data  # localstripe lists every test's refunds
    assert [r.amount for r in refunds if r.payment_intent == pi.id] == [1800]  # 180 × 10, given back once


def test_when_stripe_cannot_be_reached_the_command_writes_nothing(engine: Engine, gateway: StripeGateway,
                                                                  api_key: str) -> None:
    with UnitOfWork(engine) as uow:
        tenant = create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2022, 5, 1))
        billing.create_customer(uow, tenant, gateway, "c0", "顧客0", at(2022, 5, 1), payment_method="pm_card_visa")
    unreachable = StripeGateway(api_key, api_base=f"http://127.0.0.1:{_free_port()}", max_network_retries=1, timeout=1)
    with pytest.raises(errors.PaymentGatewayUnavailable):  # 503 through the API: nothing changed, try again
        with UnitOfWork(engine) as uow:
            billing.subscribe(uow, open_tenant(uow, "nipoplus"), unreachable, "c0", at(2022, 5, 3, 10), "gold", seats=10)
    assert invoices(engine) == [] and attempts(engine) == []
    with UnitOfWork(engine) as uow:  # later, with Stripe back, the same command bills once
        billing.subscribe(uow, open_tenant(uow, "nipoplus"), gateway, "c0", at(2022, 5, 3, 10), "gold", seats=10)
    assert [i["status"] for i in invoices(engine)] == ["paid"]


def test_a_signed_payment_intent_succeeded_webhook_settles_the_invoice_and_a_forged_one_changes_nothing(
        engine: Engine, gateway: StripeGateway, stripe_api: stripe.StripeClient, localstripe_url: str) -> None:
    from fastapi.testclient import TestClient

    from kakin.api.app import create_app

    sign_up(engine, gateway, "pm_card_authenticationRequired")
    [attempt] = attempts(engine)
    reference = attempt["reference"]
    number = invoices(engine)[0]["number"]
    with UnitOfWork(engine) as uow:  # what the vendor's page hands to Stripe.js
        status = payments.payment_status(uow, open_tenant(uow, "nipoplus"), gateway, "c0", number)
    assert status["status"] == "requires_action" and status["reference"] == reference
    assert status["client_secret"] == stripe_api.v1.payment_intents.retrieve(reference).client_secret
    form = f"key=pk_test_kakin&client_secret={status['client_secret']}&success=true".encode()
    with urllib.request.urlopen(urllib.request.Request(f"{localstripe_url}/v1/payment_intents/{reference}/_authenticate",
                                                       data=form, method="POST"), timeout=5):
        pass
    payload = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded",
                          "data": {"object": {"id": reference, "object": "payment_intent"}}}).encode()
    with TestClient(create_app(engine, gateway, lambda: at(2022, 5, 3, 12))) as client:
        forged = client.post("/v1/gateway/stripe/nipoplus/webhook", content=payload,
                             headers={"Stripe-Signature": stripe_signature(payload, "whsec_forged")})
        assert forged.status_code == 422 and forged.json()["error"]["code"] == "invalid_signature"
        assert invoices(engine)[0]["status"] == "open"
        good = client.post("/v1/gateway/stripe/nipoplus/webhook", content=payload,
                           headers={"Stripe-Signature": stripe_signature(payload, WEBHOOK_SECRET)})
        assert good.status_code == 200, good.text
        assert good.json()["restored"] == [invoices(engine)[0]["number"]]
    assert invoices(engine)[0]["status"] == "paid" and state(engine)[1] == "active"


@pytest.mark.parametrize("data", [{"object": "pi_x"}, {"object": {}}, "x", None])
def test_a_signed_payment_intent_succeeded_webhook_without_a_payment_intent_is_refused_422_not_500(
        engine: Engine, gateway: StripeGateway, data: object) -> None:
    from fastapi.testclient import TestClient

    from kakin.api.app import create_app

    with UnitOfWork(engine) as uow:
        create_tenant(uow, "nipoplus", "NipoPlus", "nipoplus", at(2022, 5, 3, 10))
    payload = json.dumps({"id": "evt_2", "type": "payment_intent.succeeded", "data": data}).encode()
    with TestClient(create_app(engine, gateway, lambda: at(2022, 5, 3, 12))) as client:
        r = client.post("/v1/gateway/stripe/nipoplus/webhook", content=payload,
                        headers={"Stripe-Signature": stripe_signature(payload, WEBHOOK_SECRET)})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == {"code": "invalid_value", "param": "data.object", "message": r.json()["error"]["message"]}


def test_stripe_answering_that_another_request_with_the_key_is_in_flight_is_no_answer_yet(
        gateway: StripeGateway, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two requests with one key at once reach Stripe when a repeat runs while the first is being charged: Stripe
    # answers the second with an IdempotencyError (409). That is not an outcome: the intent stays unknown and the
    # same key is asked again later, which gets the first request's answer. Before, it escaped as a 500.
    from kakin.adapters.payments import GatewayUnavailable

    def in_flight(*args: object, **kwargs: object) -> None:
        raise stripe.IdempotencyError("There is currently another in-progress request using this Idempotent Key")

    monkeypatch.setattr(gateway._client.v1.payment_intents, "create", in_flight)
    with pytest.raises(GatewayUnavailable):
        gateway.charge("pm_card_visa", 1800, "nipoplus:c1:n1:1800:1")
