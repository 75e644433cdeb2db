"""Customers: one profile across channels, tokens stored hashed, export and erase.

Profile edits (name, phone, locale, consents, the address book) are read-change-save
with the profile's version: two channels editing at once never lose a change (the
loser re-reads and re-applies, like carts). Export and erase also ask every market's
plugins for the personal data they hold (``niaga_customer_export`` and
``niaga_customer_erase``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

import msgspec

from kernel.customers import (
    CONSENT_TOPICS,
    MAX_ADDRESSES,
    MAX_CONSENT_HISTORY,
    Consent,
    ConsentChange,
    SavedAddress,
)
from kernel.errors import (
    GatewayError,
    NiagaError,
    NotFound,
    Unauthorized,
    ValidationError,
    VersionConflict,
)
from kernel.ids import new_id
from kernel.markets import CHANNELS
from kernel.runtime import Niaga
from kernel.store.base import Customer

log = logging.getLogger("niaga.customers")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,}$")
RETRIES = 3
EXPORT_HOOK = "niaga_customer_export"
ERASE_HOOK = "niaga_customer_erase"
CHANNEL_FIELD = "Niaga-Channel"  # the request header naming where a change comes from


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_customer(ctx: Niaga, email: str, name: str | None) -> tuple[Customer, str]:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise ValidationError.field("email", "not an email address")
    token = "ct_" + secrets.token_urlsafe(32)
    now = ctx.clock()
    customer = Customer(id=new_id(), email=email, name=name, token_hash=hash_token(token),
                        created_at=now, updated_at=now)
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


# -- profile edits ---------------------------------------------------------------------


async def _mutate(ctx: Niaga, customer: Customer, change: Callable[[Customer], Any]) -> Customer:
    """Apply ``change`` and save conditioned on the version; on a lost race re-read and
    re-apply (``change`` validates, so bad input raises before anything is written)."""
    for attempt in range(RETRIES):
        if attempt:
            fresh = await ctx.store.get_customer(customer.id)
            if fresh is None or fresh.erased:
                raise Unauthorized("unknown or revoked customer token")
            customer = fresh
        draft = msgspec.structs.replace(
            customer, addresses=[msgspec.structs.replace(a) for a in customer.addresses],
            consents=dict(customer.consents), consent_history=list(customer.consent_history))
        result = change(draft)
        draft.version = customer.version + 1
        draft.updated_at = ctx.clock()
        try:
            await ctx.store.save_customer(draft, customer.version)
        except VersionConflict:
            if attempt == RETRIES - 1:
                raise
            continue
        return draft if result is None else result
    raise AssertionError("unreachable")  # pragma: no cover


def _check_channel(channel: str | None) -> None:
    if channel is not None and channel not in CHANNELS:
        raise ValidationError.field(CHANNEL_FIELD, f"unknown channel {channel!r} "
                                                   f"(known: {', '.join(CHANNELS)})")


def _known_locales(ctx: Niaga) -> list[str]:
    return sorted({loc for m in ctx.markets.values() for loc in m.locales})


async def update_profile(ctx: Niaga, customer: Customer, fields: dict[str, Any],
                         consents: dict[str, bool], channel: str | None) -> Customer:
    """``fields``: the given ones of name, phone, locale (None clears one); ``consents``:
    topic -> granted. A consent that changes gets the time and channel and a history entry;
    one given with its current answer changes nothing."""
    _check_channel(channel)
    locale = fields.get("locale")
    if locale is not None and locale not in _known_locales(ctx):
        raise ValidationError.field("locale", f"{locale!r} is not a locale of any market "
                                              f"(known: {', '.join(_known_locales(ctx))})")
    for topic in consents:
        if topic not in CONSENT_TOPICS:
            raise ValidationError.field(f"consents.{topic}", "unknown consent topic (known: "
                                                             f"{', '.join(CONSENT_TOPICS)})")

    def change(c: Customer) -> None:
        for name, value in fields.items():
            setattr(c, name, value)
        now = ctx.clock()
        for topic, granted in consents.items():
            if c.consents.get(topic, Consent()).granted == granted and topic in c.consents:
                continue
            c.consents[topic] = Consent(granted=granted, changed_at=now, channel=channel)
            c.consent_history.append(ConsentChange(topic=topic, granted=granted, at=now,
                                                   channel=channel))
        del c.consent_history[:-MAX_CONSENT_HISTORY]

    return await _mutate(ctx, customer, change)


def _find(c: Customer, address_id: str) -> int:
    for i, a in enumerate(c.addresses):
        if a.id == address_id:
            return i
    raise NotFound(f"no address {address_id} in this customer's book")


def _make_default(c: Customer, address_id: str) -> None:
    for a in c.addresses:
        a.default = a.id == address_id


async def add_address(ctx: Niaga, customer: Customer, fields: dict[str, Any],
                      default: bool | None) -> SavedAddress:
    """The first address of a book becomes its default unless ``default`` is False."""

    def change(c: Customer) -> SavedAddress:
        if len(c.addresses) >= MAX_ADDRESSES:
            raise ValidationError.field("addresses", f"at most {MAX_ADDRESSES} addresses; "
                                                     "delete one first")
        address = SavedAddress(id=new_id(), **fields)
        c.addresses.append(address)
        if default or (default is None and len(c.addresses) == 1):
            _make_default(c, address.id)
        return address

    return await _mutate(ctx, customer, change)


async def replace_address(ctx: Niaga, customer: Customer, address_id: str,
                          fields: dict[str, Any], default: bool | None) -> SavedAddress:
    """PUT: every field replaced; ``default`` None keeps the address's flag."""

    def change(c: Customer) -> SavedAddress:
        i = _find(c, address_id)
        keep = c.addresses[i].default if default is None else default
        c.addresses[i] = SavedAddress(id=address_id, **fields)
        if keep:
            _make_default(c, address_id)
        return c.addresses[i]

    return await _mutate(ctx, customer, change)


async def delete_address(ctx: Niaga, customer: Customer, address_id: str) -> None:
    """Deleting the default makes the oldest remaining address the default."""

    def change(c: Customer) -> None:
        gone = c.addresses.pop(_find(c, address_id))
        if gone.default and c.addresses:
            c.addresses[0].default = True

    await _mutate(ctx, customer, change)


# -- export and erase (GDPR/CCPA) --------------------------------------------------------


def _ask_plugins(ctx: Niaga, code: str, customer: Customer) -> dict[str, Any]:
    """plugin name -> its answer in market ``code`` (None answers left out). Collect
    semantics, but kept per plugin: the export says whose data is whose."""
    plugins = ctx.plugins_for(code)
    answers: dict[str, Any] = {}
    for impl in reversed(getattr(plugins.pm.hook, EXPORT_HOOK).get_hookimpls()):
        args = {"customer": customer, "market": ctx.market(code)}
        try:
            data = impl.function(*[args[a] for a in impl.argnames])
        except NiagaError:
            raise
        except Exception as exc:  # an incomplete export must not pass as a complete one
            raise GatewayError(f"plugin {impl.plugin_name} failed in {EXPORT_HOOK}: "
                               f"{type(exc).__name__}: {exc}",
                               plugin=impl.plugin_name) from exc
        if data is not None:
            answers[impl.plugin_name] = data
    return answers


async def _plugin_exports(ctx: Niaga, customer: Customer) -> dict[str, dict[str, Any]]:
    """``{plugin: {market: data}}`` over every market's plugins (each market has its own
    instances and settings, so each answers for itself); off the event loop: plugins may
    call their own services."""
    exports: dict[str, dict[str, Any]] = {}
    for code in ctx.markets:
        names = ctx.plugins_for(code).implementers(EXPORT_HOOK)
        if not names:
            continue
        answers = await ctx.offload(_ask_plugins, ctx, code, customer, market=code,
                                    plugin=",".join(names))
        for name, data in answers.items():
            try:
                exports.setdefault(name, {})[code] = msgspec.to_builtins(data)
            except (TypeError, msgspec.EncodeError) as exc:  # a plugin bug, not a 500
                raise GatewayError(f"plugin {name} answered {EXPORT_HOOK} with data that is "
                                   f"not JSON: {exc}", plugin=name) from exc
    return exports


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
            "plugins": await _plugin_exports(ctx, customer),
            "exported_at": ctx.clock()}


async def _notify_erase(ctx: Niaga, customer: Customer) -> None:
    for code in ctx.markets:
        plugins = ctx.plugins_for(code)
        names = plugins.implementers(ERASE_HOOK)
        if not names:
            continue
        call = functools.partial(plugins.notify, ERASE_HOOK, customer=customer,
                                 market=ctx.market(code))
        try:  # notify: a plugin that fails or hangs is logged; the erasure goes on
            await ctx.offload(call, market=code, plugin=",".join(names))
        except GatewayError:
            log.exception("%s in market %s timed out for customer %s", ERASE_HOOK, code,
                          customer.id)


async def erase(ctx: Niaga, customer_id: str) -> None:
    """Personal data leaves the profile, carts, orders and loyalty ledger; orders and
    ledger entries stay (the books need them), anonymised.

    Plugins are told first, with the profile as it still is (email, name, phone), so they
    can find what they hold; then one write anonymises the kernel's documents. Erasing an
    erased customer again is harmless (and asks the plugins again).

    The ledger keeps every entry's id, points, kind, order id, market and time (the points
    are a liability in the books, and reversals need them), and the balance stays. Only the
    note of an ``adjust`` entry goes: free text a person wrote ("goodwill for <name>"). The
    kernel's own notes on earn/redeem/reverse entries name an order number and an amount,
    which the kept orders hold anyway.
    """
    customer = await load_customer(ctx, customer_id)
    await _notify_erase(ctx, customer)
    carts = await ctx.store.list_carts(customer.id)
    orders = await ctx.store.list_orders(customer_id=customer.id)
    ledger = [msgspec.structs.replace(e, note=None)
              for e in await ctx.store.loyalty_ledger(customer.id)
              if e.note is not None and e.kind == "adjust"]
    erased = msgspec.structs.replace(
        customer, email=None, name=None, token_hash=None, erased=True, phone=None,
        locale=None, addresses=[], consents={}, consent_history=[],
        version=customer.version + 1, updated_at=ctx.clock())
    for cart in carts:
        cart.address = None
    for order in orders:
        if order.address is not None:
            order.address = msgspec.structs.replace(
                order.address, name=None, email=None, phone=None, line1=None, postal_code=None)
        order.email = order.card_fingerprint = None
        order.record(ctx.clock(), "customer_erased")
    await ctx.store.erase_customer(erased, carts, orders, ledger)
