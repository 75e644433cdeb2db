"""Customers: one profile across channels, tokens stored hashed, export and erase."""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Any

import msgspec

from kernel.errors import NotFound, Unauthorized, ValidationError
from kernel.ids import new_id
from kernel.runtime import Niaga
from kernel.store.base import Customer

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_customer(ctx: Niaga, email: str, name: str | None) -> tuple[Customer, str]:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise ValidationError.field("email", "not an email address")
    token = "ct_" + secrets.token_urlsafe(32)
    customer = Customer(id=new_id(), email=email, name=name, token_hash=hash_token(token),
                        created_at=ctx.clock())
    await ctx.store.create_customer(customer)
    return customer, token


async def customer_for_token(ctx: Niaga, token: str) -> Customer:
    # the lookup is by a SHA-256 of the token: an index probe, not a string compare
    customer = await ctx.store.get_customer_by_token(hash_token(token))
    if customer is None or customer.erased:
        raise Unauthorized("unknown or revoked customer token")
    return customer


async def load_customer(ctx: Niaga, customer_id: str) -> Customer:
    customer = await ctx.store.get_customer(customer_id)
    if customer is None:
        raise NotFound(f"no customer {customer_id}")
    return customer


async def export(ctx: Niaga, customer_id: str) -> dict[str, Any]:
    customer = await load_customer(ctx, customer_id)
    carts = await ctx.store.list_carts(customer.id)
    orders = await ctx.store.list_orders(customer_id=customer.id)
    account = await ctx.store.loyalty_account(customer.id)
    ledger = await ctx.store.loyalty_ledger(customer.id)
    profile = msgspec.to_builtins(customer)
    profile.pop("token_hash", None)
    return {"customer": profile, "carts": msgspec.to_builtins(carts),
            "orders": msgspec.to_builtins(orders),
            "loyalty": {"account": msgspec.to_builtins(account),
                        "ledger": msgspec.to_builtins(ledger)},
            "exported_at": ctx.clock()}


async def erase(ctx: Niaga, customer_id: str) -> None:
    """Personal data leaves the profile, carts and orders; orders stay for accounting.

    The loyalty account and ledger stay as they are: they hold the customer id and
    points only (no name, email or address), and the books need every movement.
    """
    customer = await load_customer(ctx, customer_id)
    carts = await ctx.store.list_carts(customer.id)
    orders = await ctx.store.list_orders(customer_id=customer.id)
    customer.email = None
    customer.name = None
    customer.token_hash = None
    customer.erased = True
    for cart in carts:
        cart.address = None
    for order in orders:
        if order.address is not None:
            order.address = msgspec.structs.replace(
                order.address, name=None, email=None, phone=None, line1=None, postal_code=None)
        order.email = order.card_fingerprint = None
        order.record(ctx.clock(), "customer_erased")
    await ctx.store.erase_customer(customer, carts, orders)
