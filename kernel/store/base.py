"""The storage port. Adapters: Piccolo (SQLite, PostgreSQL) now, DynamoDB later.

Carts, orders and customers are documents with a few indexed fields beside
them; every write that changes money or stock is one atomic operation here,
so a crash never leaves half an order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import msgspec

from kernel.cart import Cart
from kernel.catalog import Location, Product
from kernel.customers import Consent, ConsentChange, SavedAddress
from kernel.events import Event
from kernel.inventory import Reservation, StockLevel
from kernel.loyalty import LedgerEntry, LoyaltyAccount
from kernel.orders import Allocated, Order


class Customer(msgspec.Struct, kw_only=True):
    """One profile across channels; email is the natural key (unique, lower-cased)."""

    id: str
    email: str | None
    name: str | None = None
    token_hash: str | None = None
    created_at: float = 0.0
    erased: bool = False
    version: int = 1  # bumped by every save_customer / erase (optimistic concurrency)
    updated_at: float = 0.0
    phone: str | None = None
    locale: str | None = None  # preferred, e.g. "id-ID"
    addresses: list[SavedAddress] = []
    consents: dict[str, Consent] = {}  # topic (kernel.customers.CONSENT_TOPICS) -> answer
    consent_history: list[ConsentChange] = []  # oldest first


class IdempotencyRecord(msgspec.Struct, kw_only=True, frozen=True):
    scope: str  # e.g. "capture:<order id>"
    key: str
    request_hash: str
    status: int
    body: bytes


class StockShortage(Exception):
    """Raised by :meth:`Store.reserve` with the (sku, location) rows that fell short."""

    def __init__(self, rows: list[tuple[str, str]]):
        super().__init__(f"not enough stock for {rows}")
        self.rows = rows


class StockEffects(msgspec.Struct, kw_only=True):
    """Stock changes applied atomically with an order update."""

    release: bool = False  # give back every unit still reserved for the order
    fulfil: list[Allocated] = []  # units leave: on_hand and reserved both drop
    restock: list[Allocated] = []  # returned units back on the shelf


class Store(ABC):
    """Everything the kernel persists. Every method is one round of I/O or one atomic write."""

    name: str = "store"

    # lifecycle -------------------------------------------------------------
    @abstractmethod
    async def start(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def create_schema(self) -> None: ...

    @abstractmethod
    async def is_empty(self) -> bool: ...

    # catalog ---------------------------------------------------------------
    @abstractmethod
    async def put_product(self, product: Product) -> None: ...

    @abstractmethod
    async def delete_product(self, sku: str) -> bool: ...

    @abstractmethod
    async def get_products(self, skus: Iterable[str]) -> dict[str, Product]: ...

    @abstractmethod
    async def list_products(self) -> list[Product]: ...

    @abstractmethod
    async def put_location(self, location: Location) -> None: ...

    @abstractmethod
    async def list_locations(self, market: str | None = None) -> list[Location]: ...

    # stock -----------------------------------------------------------------
    @abstractmethod
    async def set_stock(self, sku: str, location_id: str, on_hand: int | None, reason: str,
                        at: float, *, low_threshold: int | None = None) -> StockLevel:
        """Set on_hand (a count) and/or the low-stock threshold (None keeps what is there; a
        new row starts at 0 of both); Conflict if on_hand would fall below what is reserved.

        A change that takes the row into low stock (:func:`kernel.inventory.fell_low`) adds
        ``stock.low`` events, one per market the location serves, in the same write (SQL);
        DynamoDB's stream worker derives them from the row's images instead.
        """

    @abstractmethod
    async def adjust_stock(self, sku: str, location_id: str, delta: int, reason: str,
                           at: float) -> StockLevel:
        """on_hand += delta in one conditional update; Conflict if below reserved or zero.
        ``stock.low`` as :meth:`set_stock` says."""

    @abstractmethod
    async def get_stock(self, skus: Iterable[str], location_ids: Iterable[str] | None = None,
                        *, fresh: bool = True) -> dict[tuple[str, str], StockLevel]:
        """Levels by (sku, location). ``fresh=False``: a read that only advises (offers,
        allocation before the conditional reserve) and may lag a write by a moment, where
        an engine reads that more cheaply (DynamoDB: eventually consistent, half the units)."""

    @abstractmethod
    async def reserve(self, reservations: list[Reservation], market: str,
                      events: list[Event]) -> None:
        """All or nothing: one conditional update per row (available >= quantity).

        Raises :class:`StockShortage` naming every row that fell short; then nothing is
        held. A row that falls to its low-stock threshold adds ``stock.low`` events as
        :meth:`set_stock` says (the order id in their data).
        """

    @abstractmethod
    async def release_orphans(self, order_id: str) -> int:
        """Release the reservations of a checkout that did not become an order."""

    @abstractmethod
    async def orphan_reservations(self, now: float) -> list[str]:
        """Order ids with reservations past expiry and no order: crashed checkouts."""

    # carts -----------------------------------------------------------------
    @abstractmethod
    async def create_cart(self, cart: Cart) -> None: ...

    @abstractmethod
    async def get_cart(self, cart_id: str) -> Cart | None: ...

    @abstractmethod
    async def save_cart(self, cart: Cart, expected_version: int) -> None:
        """Write ``cart`` (its version already bumped) if the stored one is still at
        ``expected_version``; else raise :class:`kernel.errors.VersionConflict`."""

    @abstractmethod
    async def find_open_cart(self, customer_id: str, market: str) -> Cart | None: ...

    # orders ----------------------------------------------------------------
    @abstractmethod
    async def place_order(self, order: Order, cart: Cart, expected_cart_version: int,
                          events: list[Event], ledger: Sequence[LedgerEntry] = ()) -> None:
        """Atomically: insert the order, close the cart (version-conditioned), write events,
        and apply ``ledger`` (the points the order redeems) as :meth:`loyalty_apply` does.

        VersionConflict if the cart changed meanwhile; Conflict if it already has an order
        or a balance is too low for the ledger (then nothing is placed). An empty ledger
        costs no statement.
        """

    @abstractmethod
    async def get_order(self, order_id: str) -> Order | None: ...

    @abstractmethod
    async def get_order_by_cart(self, cart_id: str) -> Order | None: ...

    @abstractmethod
    async def list_orders(self, *, customer_id: str | None = None, since: float | None = None,
                          until: float | None = None, limit: int = 1000) -> list[Order]:
        """Newest first."""

    @abstractmethod
    async def save_order(self, order: Order, expected_version: int, events: list[Event],
                         effects: StockEffects | None = None,
                         idempotency: IdempotencyRecord | None = None) -> None:
        """Atomically: the order (version-conditioned), its events, stock effects, and the
        idempotency record of the request that caused it."""

    @abstractmethod
    async def unpaid_orders_due(self, now: float, limit: int = 100) -> list[Order]: ...

    @abstractmethod
    async def count_recent_orders(self, since: list[float], *, customer_id: str | None,
                                  email: str | None,
                                  card_fingerprint: str | None) -> list[dict[str, int]]:
        """For each cut-off in ``since``: ``{"customer": n, "email": n, "card": n}``, the
        orders (any market, any status) created at or after it with that customer id,
        ``Order.email`` and ``Order.card_fingerprint``; 0 for a key given as None. One read."""

    # customers -------------------------------------------------------------
    @abstractmethod
    async def create_customer(self, customer: Customer) -> None:
        """Conflict if the email is taken."""

    @abstractmethod
    async def get_customer(self, customer_id: str) -> Customer | None: ...

    @abstractmethod
    async def get_customer_by_token(self, token_hash: str) -> Customer | None: ...

    @abstractmethod
    async def get_customer_by_email(self, email: str) -> Customer | None: ...

    @abstractmethod
    async def save_customer(self, customer: Customer, expected_version: int) -> None:
        """Write the profile (its version already bumped) if the stored one is still at
        ``expected_version``; else :class:`kernel.errors.VersionConflict` (also for an
        unknown id). The email and token are keys: they must not change here (only
        ``erase_customer`` removes them). One conditional write."""

    @abstractmethod
    async def erase_customer(self, customer: Customer, carts: list[Cart],
                             orders: list[Order], ledger: Sequence[LedgerEntry] = ()) -> None:
        """Atomically write the anonymised profile (unconditionally: erasure wins over a
        concurrent edit), carts and orders, and each ``ledger`` entry's ``note`` (only the
        note: points, kinds and ids are the books' and never change)."""

    @abstractmethod
    async def list_carts(self, customer_id: str) -> list[Cart]: ...

    # loyalty ---------------------------------------------------------------
    @abstractmethod
    async def loyalty_account(self, customer_id: str) -> LoyaltyAccount:
        """The customer's account; a zero one if nothing was ever applied."""

    @abstractmethod
    async def loyalty_apply(self, entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
        """Atomically append ``entries`` to the ledger and move the balances.

        An entry whose id is already in the ledger is skipped (at-least-once callers
        stay exact); the applied ones are returned. Each customer's balance moves by
        the sum of their applied entries' points, and ``lifetime_base_points`` by their
        ``base_points``. If a balance would fall below zero, raise
        :class:`kernel.errors.Conflict` naming it, and apply nothing.
        """

    @abstractmethod
    async def loyalty_ledger(self, customer_id: str) -> list[LedgerEntry]:
        """The customer's entries, oldest first (by ``at``, then id)."""

    # outbox and idempotency --------------------------------------------------
    @abstractmethod
    async def pending_events(self, limit: int = 100) -> list[Event]: ...

    @abstractmethod
    async def mark_events_delivered(self, ids: list[str], at: float) -> None: ...

    @abstractmethod
    async def get_idempotency(self, scope: str, key: str) -> IdempotencyRecord | None: ...

    # exchange rates set by the merchant -----------------------------------------
    @abstractmethod
    async def fx_rates(self) -> dict[str, dict[str, str]]:
        """``{base currency: {currency: rate}}``, rates as decimal strings."""

    @abstractmethod
    async def put_fx_rates(self, base: str, rates: dict[str, str], at: float) -> None:
        """Set (replace) the given rates from ``base``; others stay as they are."""
