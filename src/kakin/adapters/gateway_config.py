"""Which payment gateway a process uses: Stripe when configured, else the card simulator."""

from __future__ import annotations

import os

from .payments import CardSimulator, PaymentGateway


def gateway_from_env() -> PaymentGateway:
    """KAKIN_STRIPE_API_KEY (and optionally KAKIN_STRIPE_API_BASE, KAKIN_STRIPE_WEBHOOK_SECRET, and
    KAKIN_STRIPE_TIMEOUT, seconds per request, 30 by default) select Stripe."""
    api_key = os.environ.get("KAKIN_STRIPE_API_KEY")
    if not api_key:
        return CardSimulator()
    from .stripe_gateway import StripeGateway

    return StripeGateway(api_key, api_base=os.environ.get("KAKIN_STRIPE_API_BASE") or None,
                         webhook_secret=os.environ.get("KAKIN_STRIPE_WEBHOOK_SECRET") or None,
                         timeout=float(os.environ.get("KAKIN_STRIPE_TIMEOUT") or 30))
