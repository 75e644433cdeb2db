"""Identifiers: unguessable ids (128 bits of randomness) and short order numbers."""

from __future__ import annotations

import base64
import hashlib
import secrets

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def new_id() -> str:
    """22 url-safe characters carrying 128 random bits."""
    return secrets.token_urlsafe(16)


def order_number(market: str) -> str:
    """Human-friendly, e.g. ``ID-7K2M-9QXA`` (40 random bits); the order id is the key."""
    code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"{market}-{code[:4]}-{code[4:]}"


def checkout_ids(cart_id: str, idempotency_key: str, market: str) -> tuple[str, str]:
    """The order id and number a checkout attempt uses, derived from (cart, key).

    A retry of the same request talks to the gateway about the same order, so the
    gateway's own idempotency holds. Unguessable: the cart id is 128 random bits.
    """
    digest = hashlib.sha256(f"{cart_id}\x00{idempotency_key}".encode()).digest()
    order_id = base64.urlsafe_b64encode(digest[:16]).decode().rstrip("=")
    n = int.from_bytes(digest[16:21], "big")
    code = "".join(_ALPHABET[(n >> (5 * i)) & 31] for i in range(8))
    return order_id, f"{market}-{code[:4]}-{code[4:]}"
