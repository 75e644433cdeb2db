"""Identifiers: unguessable ids (128 bits of randomness) and short order numbers."""

from __future__ import annotations

import secrets

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U


def new_id() -> str:
    """22 url-safe characters carrying 128 random bits."""
    return secrets.token_urlsafe(16)


def order_number(market: str) -> str:
    """Human-friendly, e.g. ``ID-7K2M-9QXA`` (40 random bits); the order id is the key."""
    code = "".join(secrets.choice(_ALPHABET) for _ in range(8))
    return f"{market}-{code[:4]}-{code[4:]}"
