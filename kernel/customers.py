"""A customer's profile beyond the login: saved addresses and marketing consents.

The profile is one document (``kernel.store.base.Customer``) shared by every channel.
Consents are per topic; each change is kept in ``consent_history`` (when, from which
channel) because a merchant must be able to show when and where a customer agreed.
"""

from __future__ import annotations

import msgspec

from kernel.cart import Address

CONSENT_TOPICS: tuple[str, ...] = ("marketing_email", "marketing_sms", "marketing_whatsapp")
MAX_ADDRESSES = 20  # an address book, not a mailing list: bounds the document's size
# the newest changes kept as proof of consent; older ones fall off (the document stays small)
MAX_CONSENT_HISTORY = 100


class SavedAddress(Address, kw_only=True):
    """An address in the customer's book: a ``kernel.cart.Address`` with an id and a label."""

    id: str
    label: str | None = None
    default: bool = False  # at most one address is the default


class Consent(msgspec.Struct, kw_only=True):
    """The current answer for one topic; never asked: not granted, no time, no channel."""

    granted: bool = False
    changed_at: float | None = None
    channel: str | None = None  # where the change came from (web, app, pos...); None: unnamed


class ConsentChange(msgspec.Struct, kw_only=True, frozen=True):
    topic: str
    granted: bool
    at: float
    channel: str | None = None
