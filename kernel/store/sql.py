"""The Piccolo adapter of the storage port: SQLite (embedded) and PostgreSQL.

Documents (carts, orders, customers, products) are stored as JSON next to the
columns we query by. Stock is relational, because the one thing that must be
exact under any concurrency is ``UPDATE … WHERE on_hand - reserved >= :q``.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import Any

import msgspec
from piccolo.columns import BigInt, Boolean, DoublePrecision, Integer, Text, Varchar
from piccolo.columns.combination import WhereRaw
from piccolo.engine.base import Engine
from piccolo.querystring import QueryString
from piccolo.table import Table

from kernel.cart import Cart
from kernel.catalog import Location, Product
from kernel.errors import Conflict, InProgress, NotFound, VersionConflict
from kernel.events import Event
from kernel.inventory import (
    MAX_ON_HAND,
    Reservation,
    StockLevel,
    fell_low,
    low_stock_events,
)
from kernel.loyalty import LedgerEntry, LoyaltyAccount
from kernel.orders import Order
from kernel.store.base import (
    Customer,
    IdempotencyRecord,
    StockEffects,
    StockShortage,
    Store,
)
from kernel.store.quiet import quiet_payload_loggers

_enc = msgspec.json.Encoder()
_dec_cart = msgspec.json.Decoder(Cart)
_dec_order = msgspec.json.Decoder(Order)
_dec_product = msgspec.json.Decoder(Product)
_dec_location = msgspec.json.Decoder(Location)
_dec_customer = msgspec.json.Decoder(Customer)
_dec_event_data = msgspec.json.Decoder(dict[str, Any])


def _doc(obj: Any) -> str:
    return _enc.encode(obj).decode()


def _stock_key(sku: str, location_id: str) -> str:
    return f"{sku}@{location_id}"


class Tables:
    """The schema, bound to one engine (tests run SQLite and PostgreSQL side by side)."""

    def __init__(self, engine: Engine):
        class ProductRow(Table, tablename="niaga_product", db=engine):
            sku = Varchar(length=64, primary_key=True)
            doc = Text()

        class LocationRow(Table, tablename="niaga_location", db=engine):
            id = Varchar(length=64, primary_key=True)
            doc = Text()

        class StockRow(Table, tablename="niaga_stock", db=engine):
            id = Varchar(length=140, primary_key=True)  # sku@location
            sku = Varchar(length=64, index=True)
            location_id = Varchar(length=64)
            on_hand = Integer(default=0)
            reserved = Integer(default=0)
            low_threshold = Integer(default=0)

        class StockMovementRow(Table, tablename="niaga_stock_movement", db=engine):
            id = Varchar(length=40, primary_key=True)
            sku = Varchar(length=64, index=True)
            location_id = Varchar(length=64)
            delta = Integer()
            reason = Varchar(length=64)
            at = DoublePrecision()

        class ReservationRow(Table, tablename="niaga_reservation", db=engine):
            id = Varchar(length=200, primary_key=True)  # order:sku@location
            order_id = Varchar(length=40, index=True)
            sku = Varchar(length=64)
            location_id = Varchar(length=64)
            quantity = Integer()
            expires_at = DoublePrecision(null=True, index=True)

        class CartRow(Table, tablename="niaga_cart", db=engine):
            id = Varchar(length=40, primary_key=True)
            market = Varchar(length=8)
            customer_id = Varchar(length=40, null=True, index=True)
            status = Varchar(length=20)
            version = Integer()
            updated_at = DoublePrecision()
            doc = Text()

        class OrderRow(Table, tablename="niaga_order", db=engine):
            id = Varchar(length=40, primary_key=True)
            cart_id = Varchar(length=40, unique=True)
            customer_id = Varchar(length=40, null=True, index=True)
            market = Varchar(length=8)
            status = Varchar(length=24, index=True)
            created_at = DoublePrecision(index=True)
            payment_due_at = DoublePrecision(null=True, index=True)
            version = Integer()
            doc = Text()
            # velocity rules (kernel.checkout): lower-cased email, sha256 of the card token
            email = Varchar(length=320, null=True, index=True)
            card_fingerprint = Varchar(length=64, null=True, index=True)

        class CustomerRow(Table, tablename="niaga_customer", db=engine):
            id = Varchar(length=40, primary_key=True)
            email = Varchar(length=320, null=True, unique=True)
            token_hash = Varchar(length=64, null=True, unique=True)
            doc = Text()

        class OutboxRow(Table, tablename="niaga_outbox", db=engine):
            id = Varchar(length=40, primary_key=True)
            type = Varchar(length=40)
            market = Varchar(length=8)
            subject = Varchar(length=140)
            at = DoublePrecision()
            data = Text()
            delivered = Boolean(default=False, index=True)

        class IdempotencyRow(Table, tablename="niaga_idempotency", db=engine):
            id = Varchar(length=400, primary_key=True)  # scope|key
            request_hash = Varchar(length=64)
            status = Integer()
            body = Text()
            created_at = DoublePrecision()

        class FxRateRow(Table, tablename="niaga_fx_rate", db=engine):
            id = Varchar(length=8, primary_key=True)  # "IDR:USD"
            base = Varchar(length=3)
            currency = Varchar(length=3)
            rate = Varchar(length=40)
            updated_at = DoublePrecision()

        self.fx_rate = FxRateRow
        self.product = ProductRow
        self.location = LocationRow
        self.stock = StockRow
        self.movement = StockMovementRow
        self.reservation = ReservationRow
        self.cart = CartRow
        self.order = OrderRow
        self.customer = CustomerRow
        self.outbox = OutboxRow
        self.idempotency = IdempotencyRow

        class LoyaltyAccountRow(Table, tablename="niaga_loyalty_account", db=engine):
            customer_id = Varchar(length=40, primary_key=True)
            balance = BigInt(default=0)  # never below zero: every debit is conditioned on it
            lifetime_base = BigInt(default=0)

        class LoyaltyLedgerRow(Table, tablename="niaga_loyalty_ledger", db=engine):
            id = Varchar(length=200, primary_key=True)  # the idempotency key, e.g. earn:<order>
            customer_id = Varchar(length=40, index=True)
            points = BigInt()
            kind = Varchar(length=20)
            order_id = Varchar(length=40, null=True)
            market = Varchar(length=8, null=True)
            at = DoublePrecision()
            base_points = BigInt(default=0)
            note = Text(null=True)

        self.loyalty_account = LoyaltyAccountRow
        self.loyalty_ledger = LoyaltyLedgerRow
        self.all = [ProductRow, LocationRow, StockRow, StockMovementRow, ReservationRow,
                    CartRow, OrderRow, CustomerRow, OutboxRow, IdempotencyRow,
                    LoyaltyAccountRow, LoyaltyLedgerRow, FxRateRow]


def _is_unique_violation(exc: Exception) -> bool:
    name = type(exc).__name__
    return name in ("IntegrityError", "UniqueViolationError") or "UNIQUE" in str(exc)


class SqlStore(Store):
    """Piccolo on SQLite (``sqlite:///path`` or a path) or PostgreSQL (``postgresql://…``)."""

    def __init__(self, url: str, *, pool_size: int = 4):
        self.url = url
        if url.startswith(("postgres://", "postgresql://")):
            from piccolo.engine.postgres import PostgresEngine

            self.engine: Engine = PostgresEngine(config={"dsn": url})
            self.name = "postgresql"
        else:
            from kernel.store.sqlite_engine import PooledSQLiteEngine

            path = url.removeprefix("sqlite:///").removeprefix("sqlite://")
            self.engine = PooledSQLiteEngine(path=path, pool_size=pool_size)
            self.name = "sqlite"
        self._pool_size = pool_size
        self.t = Tables(self.engine)

    # lifecycle -------------------------------------------------------------
    def _tx(self) -> Any:
        if self.name == "sqlite":
            from piccolo.engine.sqlite import TransactionType

            # take the write lock up front: no deadlock upgrading a read lock
            return self.engine.transaction(transaction_type=TransactionType.immediate)
        return self.engine.transaction()

    async def start(self) -> None:
        quiet_payload_loggers()  # aiosqlite logs SQL parameters (personal data) at DEBUG
        if self.name == "postgresql":
            await self.engine.start_connection_pool(min_size=1, max_size=self._pool_size)

    async def close(self) -> None:
        if self.name == "postgresql":
            await self.engine.close_connection_pool()
        else:
            await self.engine.close_pool()

    async def create_schema(self) -> None:
        for table in self.t.all:
            await self._add_missing_columns(table)
            await table.create_table(if_not_exists=True)  # and its indexes, if not there

    async def _add_missing_columns(self, table: type[Table]) -> None:
        """A table created by an older Niaga gets the nullable columns added since."""
        name = table._meta.tablename
        if self.name == "postgresql":
            rows = await table.raw("SELECT column_name AS name FROM information_schema.columns "
                                   "WHERE table_name = {} AND table_schema = current_schema()",
                                   name)
        else:
            rows = await table.raw(f"PRAGMA table_info({name})")
        present = {r["name"] for r in rows}
        if not present:
            return  # a new table: create_table makes it whole
        for column in table._meta.columns:
            if column._meta.db_column_name not in present and column._meta.null:
                await table.alter().add_column(column._meta.name, column)

    async def drop_schema(self) -> None:
        for table in reversed(self.t.all):
            await table.alter().drop_table(if_exists=True)

    async def is_empty(self) -> bool:
        return not await self.t.product.exists().where(self.t.product.sku.is_not_null())

    # catalog ---------------------------------------------------------------
    async def put_product(self, product: Product) -> None:
        P = self.t.product
        # one upsert: a delete + insert pair races itself on PostgreSQL (unique violation)
        await P.insert(P(sku=product.sku, doc=_doc(product))).on_conflict(
            target=P.sku, action="DO UPDATE", values=[P.doc])

    async def delete_product(self, sku: str) -> bool:
        P = self.t.product
        rows = await P.delete().where(P.sku == sku).returning(P.sku)
        return bool(rows)

    async def get_products(self, skus: Iterable[str]) -> dict[str, Product]:
        skus = list(dict.fromkeys(skus))
        if not skus:
            return {}
        P = self.t.product
        rows = await P.select(P.doc).where(P.sku.is_in(skus))
        products = [_dec_product.decode(r["doc"]) for r in rows]
        return {p.sku: p for p in products}

    async def list_products(self) -> list[Product]:
        P = self.t.product
        rows = await P.select(P.doc).order_by(P.sku)
        return [_dec_product.decode(r["doc"]) for r in rows]

    async def put_location(self, location: Location) -> None:
        L = self.t.location
        await L.insert(L(id=location.id, doc=_doc(location))).on_conflict(
            target=L.id, action="DO UPDATE", values=[L.doc])

    async def list_locations(self, market: str | None = None) -> list[Location]:
        L = self.t.location
        rows = await L.select(L.doc).order_by(L.id)
        locations = [_dec_location.decode(r["doc"]) for r in rows]
        return [loc for loc in locations if market is None or market in loc.markets]

    # stock -----------------------------------------------------------------
    @staticmethod
    def _level(row: dict[str, Any]) -> StockLevel:
        return StockLevel(sku=row["sku"], location_id=row["location_id"], on_hand=row["on_hand"],
                          reserved=row["reserved"], low_threshold=row["low_threshold"])

    async def _movement(self, sku: str, location_id: str, delta: int, reason: str,
                        at: float) -> None:
        from kernel.ids import new_id

        M = self.t.movement
        await M.insert(M(id=new_id(), sku=sku, location_id=location_id, delta=delta,
                         reason=reason, at=at))

    async def set_stock(self, sku: str, location_id: str, on_hand: int | None, reason: str,
                        at: float, *, low_threshold: int | None = None) -> StockLevel:
        S = self.t.stock
        key = _stock_key(sku, location_id)

        def locked() -> Any:
            query = S.select().where(S.id == key)
            # PostgreSQL: hold the row so no reservation lands between the check and the
            # update (SQLite's BEGIN IMMEDIATE already serializes writers)
            return query.lock_rows() if self.name == "postgresql" else query

        async with self._tx():
            rows = await locked()
            if not rows:
                level = StockLevel(sku=sku, location_id=location_id, on_hand=on_hand or 0,
                                   low_threshold=low_threshold or 0)
                inserted = await S.insert(
                    S(id=key, sku=sku, location_id=location_id, on_hand=level.on_hand,
                      reserved=0, low_threshold=level.low_threshold)
                ).on_conflict(action="DO NOTHING").returning(S.id)
                if inserted:
                    if level.on_hand:
                        await self._movement(sku, location_id, level.on_hand, reason, at)
                    return level
                rows = await locked()  # a concurrent set_stock created it meanwhile
            before = self._level(rows[0])
            if on_hand is not None and on_hand < before.reserved:
                raise Conflict(
                    f"on_hand {on_hand} is below the {before.reserved} unit(s) reserved for "
                    f"orders of {sku} at {location_id}",
                    errors=[{"field": "on_hand",
                             "message": f"must be at least {before.reserved}"}],
                )
            after = msgspec.structs.replace(
                before, on_hand=before.on_hand if on_hand is None else on_hand,
                low_threshold=before.low_threshold if low_threshold is None else low_threshold)
            await S.update({S.on_hand: after.on_hand, S.low_threshold: after.low_threshold}
                           ).where(S.id == key)
            if after.on_hand != before.on_hand:
                await self._movement(sku, location_id, after.on_hand - before.on_hand, reason,
                                     at)
            if fell_low(before, after):
                await self._low_stock(after, at, reason)
            return after

    async def adjust_stock(self, sku: str, location_id: str, delta: int, reason: str,
                           at: float) -> StockLevel:
        S = self.t.stock
        key = _stock_key(sku, location_id)
        async with self._tx():
            rows = await (
                S.update({S.on_hand: S.on_hand + delta})
                .where((S.id == key) & WhereRaw("on_hand + {} >= reserved", delta)
                       & WhereRaw("on_hand + {} >= 0", delta)
                       # two racing receipts past the service's bound: a 409, not an overflow
                       & WhereRaw("on_hand + {} <= {}", delta, MAX_ON_HAND))
                .returning(S.sku, S.location_id, S.on_hand, S.reserved, S.low_threshold)
            )
            if not rows:
                exists = await S.select(S.on_hand, S.reserved).where(S.id == key)
                if not exists:
                    raise NotFound(f"no stock record for {sku} at {location_id}")
                level = exists[0]
                raise Conflict(
                    f"adjusting {sku} at {location_id} by {delta} would leave "
                    f"{level['on_hand'] + delta} on hand with {level['reserved']} reserved",
                    errors=[{"field": "delta", "message": "would go below reserved stock"}],
                )
            await self._movement(sku, location_id, delta, reason, at)
            after = self._level(rows[0])
            before = msgspec.structs.replace(after, on_hand=after.on_hand - delta)
            if fell_low(before, after):
                await self._low_stock(after, at, reason)
            return after

    async def _low_stock(self, level: StockLevel, at: float, reason: str,
                         order_id: str | None = None) -> list[Event]:
        """Inside a transaction: ``stock.low`` for each market the location serves. Only a
        change that crosses the threshold pays for the location read."""
        from kernel.ids import new_id

        L = self.t.location
        rows = await L.select(L.doc).where(L.id == level.location_id)
        markets = _dec_location.decode(rows[0]["doc"]).markets if rows else []
        events = low_stock_events(level, markets, at, new_id(), reason=reason,
                                  order_id=order_id)
        await self._write_events(events)
        return events

    async def get_stock(self, skus: Iterable[str],
                        location_ids: Iterable[str] | None = None, *, fresh: bool = True
                        ) -> dict[tuple[str, str], StockLevel]:
        skus = list(dict.fromkeys(skus))
        if not skus:
            return {}
        S = self.t.stock
        query = S.select().where(S.sku.is_in(skus))
        if location_ids is not None:
            locs = list(location_ids)
            if not locs:
                return {}
            query = query.where(S.location_id.is_in(locs))
        return {(r["sku"], r["location_id"]): self._level(r) for r in await query}

    async def reserve(self, reservations: list[Reservation], market: str,
                      events: list[Event]) -> None:
        S, R = self.t.stock, self.t.reservation
        # a fixed row order means two checkouts never wait on each other in a cycle
        ordered = sorted(reservations, key=lambda r: (r.sku, r.location_id))
        short: list[tuple[str, str]] = []
        low: list[StockLevel] = []
        async with self._tx() as tx:
            for res in ordered:
                rows = await (
                    S.update({S.reserved: S.reserved + res.quantity})
                    .where((S.id == _stock_key(res.sku, res.location_id))
                           & WhereRaw("on_hand - reserved >= {}", res.quantity))
                    .returning(S.sku, S.location_id, S.on_hand, S.reserved, S.low_threshold)
                )
                if not rows:
                    short.append((res.sku, res.location_id))  # keep going: name every row
                    continue
                level = self._level(rows[0])
                before = msgspec.structs.replace(level, reserved=level.reserved - res.quantity)
                if fell_low(before, level):
                    low.append(level)
            if short:
                await tx.rollback()
            else:
                first = ordered[0]
                # one marker row per order, in the same INSERT: a second attempt for the same
                # order collides on it wherever its stock was allocated
                marker = R(id=f"{first.order_id}:*", order_id=first.order_id, sku="*",
                           location_id="*", quantity=0, expires_at=first.expires_at)
                try:
                    await R.insert(marker, *[
                        R(id=f"{r.order_id}:{_stock_key(r.sku, r.location_id)}",
                          order_id=r.order_id, sku=r.sku, location_id=r.location_id,
                          quantity=r.quantity, expires_at=r.expires_at)
                        for r in ordered
                    ])
                except Exception as exc:
                    if not _is_unique_violation(exc):
                        raise
                    await tx.rollback()
                    raise InProgress("a checkout for this order is already holding stock; "
                                     "retry in a moment", order_id=first.order_id) from exc
                if events:
                    await self._write_events(events)
                for level in low:
                    await self._low_stock(level, time.time(), "reservation", first.order_id)
        if short:
            raise StockShortage(short)

    async def _release(self, order_id: str) -> int:
        """Inside a transaction: give back what is still reserved for an order."""
        S, R = self.t.stock, self.t.reservation
        rows = await R.delete().where(R.order_id == order_id).returning(
            R.sku, R.location_id, R.quantity)
        for row in sorted(rows, key=lambda r: (r["sku"], r["location_id"])):
            if row["quantity"]:
                await S.update({S.reserved: S.reserved - row["quantity"]}).where(
                    S.id == _stock_key(row["sku"], row["location_id"]))
        return sum(r["quantity"] for r in rows)

    async def release_orphans(self, order_id: str) -> int:
        O = self.t.order
        async with self._tx():
            if await O.exists().where(O.id == order_id):
                return 0  # it became an order after all; the order owns the stock now
            return await self._release(order_id)

    async def orphan_reservations(self, now: float) -> list[str]:
        R, O = self.t.reservation, self.t.order
        rows = await R.select(R.order_id).where(
            (R.expires_at < now) & R.expires_at.is_not_null()).distinct()
        ids = [r["order_id"] for r in rows]
        if not ids:
            return []
        placed = {r["id"] for r in await O.select(O.id).where(O.id.is_in(ids))}
        return [i for i in ids if i not in placed]

    # carts -----------------------------------------------------------------
    async def create_cart(self, cart: Cart) -> None:
        C = self.t.cart
        await C.insert(C(id=cart.id, market=cart.market, customer_id=cart.customer_id,
                         status=cart.status, version=cart.version, updated_at=cart.updated_at,
                         doc=_doc(cart)))

    async def get_cart(self, cart_id: str) -> Cart | None:
        C = self.t.cart
        rows = await C.select(C.doc).where(C.id == cart_id)
        return _dec_cart.decode(rows[0]["doc"]) if rows else None

    def _cart_update(self, cart: Cart, expected_version: int) -> Any:
        C = self.t.cart
        return C.update({C.doc: _doc(cart), C.version: cart.version, C.status: cart.status,
                         C.customer_id: cart.customer_id, C.market: cart.market,
                         C.updated_at: cart.updated_at}).where(
            (C.id == cart.id) & (C.version == expected_version)).returning(C.id)

    async def save_cart(self, cart: Cart, expected_version: int) -> None:
        if not await self._cart_update(cart, expected_version):
            raise VersionConflict(
                f"cart {cart.id} changed since version {expected_version}; read it and retry")

    async def find_open_cart(self, customer_id: str, market: str) -> Cart | None:
        C = self.t.cart
        rows = await C.select(C.doc).where(
            (C.customer_id == customer_id) & (C.market == market) & (C.status == "open")
        ).order_by(C.updated_at, ascending=False).limit(1)
        return _dec_cart.decode(rows[0]["doc"]) if rows else None

    async def list_carts(self, customer_id: str) -> list[Cart]:
        C = self.t.cart
        rows = await C.select(C.doc).where(C.customer_id == customer_id)
        return [_dec_cart.decode(r["doc"]) for r in rows]

    # orders ----------------------------------------------------------------
    def _order_row(self, order: Order) -> Any:
        O = self.t.order
        return O(id=order.id, cart_id=order.cart_id, customer_id=order.customer_id,
                 market=order.market, status=order.status, created_at=order.created_at,
                 payment_due_at=order.payment_due_at if order.status == "pending_payment"
                 else None, version=order.version, doc=_doc(order), email=order.email,
                 card_fingerprint=order.card_fingerprint)

    async def place_order(self, order: Order, cart: Cart, expected_cart_version: int,
                          events: list[Event], ledger: Sequence[LedgerEntry] = ()) -> None:
        O = self.t.order
        try:
            async with self._tx():
                if not await self._cart_update(cart, expected_cart_version):
                    raise VersionConflict(
                        f"cart {cart.id} changed during checkout; read it and check out again")
                await O.insert(self._order_row(order))
                await self._write_events(events)
                if ledger:  # points redeemed: debited with the order, or no order at all
                    await self._apply_ledger(ledger)
        except Conflict:  # VersionConflict, or a balance too low for the points redeemed
            raise
        except Exception as exc:
            if _is_unique_violation(exc):
                raise Conflict(f"cart {cart.id} already has an order") from exc
            raise

    async def get_order(self, order_id: str) -> Order | None:
        O = self.t.order
        rows = await O.select(O.doc).where(O.id == order_id)
        return _dec_order.decode(rows[0]["doc"]) if rows else None

    async def get_order_by_cart(self, cart_id: str) -> Order | None:
        O = self.t.order
        rows = await O.select(O.doc).where(O.cart_id == cart_id)
        return _dec_order.decode(rows[0]["doc"]) if rows else None

    async def list_orders(self, *, customer_id: str | None = None, since: float | None = None,
                          until: float | None = None, limit: int = 1000) -> list[Order]:
        O = self.t.order
        query = O.select(O.doc).order_by(O.created_at, ascending=False).limit(limit)
        if customer_id is not None:
            query = query.where(O.customer_id == customer_id)
        if since is not None:
            query = query.where(O.created_at >= since)
        if until is not None:
            query = query.where(O.created_at < until)
        return [_dec_order.decode(r["doc"]) for r in await query]

    async def save_order(self, order: Order, expected_version: int, events: list[Event],
                         effects: StockEffects | None = None,
                         idempotency: IdempotencyRecord | None = None) -> None:
        O, S, R, IDEM = self.t.order, self.t.stock, self.t.reservation, self.t.idempotency
        async with self._tx():
            rows = await O.update({
                O.doc: _doc(order), O.status: order.status, O.version: order.version,
                O.customer_id: order.customer_id,
                O.payment_due_at: order.payment_due_at if order.status == "pending_payment"
                else None,
            }).where((O.id == order.id) & (O.version == expected_version)).returning(O.id)
            if not rows:
                raise VersionConflict(f"order {order.number} changed meanwhile; retry")
            if effects is not None:
                for item in sorted(effects.fulfil, key=lambda a: (a.sku, a.location_id)):
                    key = _stock_key(item.sku, item.location_id)
                    await S.update({S.on_hand: S.on_hand - item.quantity,
                                    S.reserved: S.reserved - item.quantity}).where(S.id == key)
                    await R.update({R.quantity: R.quantity - item.quantity}).where(
                        R.id == f"{order.id}:{key}")
                for item in sorted(effects.restock, key=lambda a: (a.sku, a.location_id)):
                    await S.update({S.on_hand: S.on_hand + item.quantity}).where(
                        S.id == _stock_key(item.sku, item.location_id))
                    await self._movement(item.sku, item.location_id, item.quantity, "return",
                                         order.history[-1].at if order.history else time.time())
                if effects.release:
                    await self._release(order.id)
            if events:
                await self._write_events(events)
            if idempotency is not None:
                await IDEM.insert(IDEM(id=f"{idempotency.scope}|{idempotency.key}",
                                       request_hash=idempotency.request_hash,
                                       status=idempotency.status,
                                       body=idempotency.body.decode(), created_at=time.time()))

    async def unpaid_orders_due(self, now: float, limit: int = 100) -> list[Order]:
        O = self.t.order
        rows = await O.select(O.doc).where(
            (O.status == "pending_payment") & (O.payment_due_at < now)).limit(limit)
        return [_dec_order.decode(r["doc"]) for r in rows]

    async def count_recent_orders(self, since: list[float], *, customer_id: str | None,
                                  email: str | None,
                                  card_fingerprint: str | None) -> list[dict[str, int]]:
        keys = [(name, column, value) for name, column, value in (
            ("customer", "customer_id", customer_id), ("email", "email", email),
            ("card", "card_fingerprint", card_fingerprint)) if value is not None]
        zero = [{"customer": 0, "email": 0, "card": 0} for _ in since]
        if not since or not keys:
            return zero
        # one SELECT: a conditional sum per (window, key), over the rows of the widest
        # window that match any key (each key column and created_at are indexed)
        sums, args = [], []
        for i, cut in enumerate(since):
            for name, column, value in keys:
                sums.append(f"COALESCE(SUM(CASE WHEN created_at >= {{}} AND {column} = {{}} "
                            f"THEN 1 ELSE 0 END), 0) AS {name}_{i}")
                args += [cut, value]
        match = " OR ".join(f"{column} = {{}}" for _, column, _ in keys)
        args += [min(since), *(value for _, _, value in keys)]
        O = self.t.order
        query = (f"SELECT {', '.join(sums)} FROM {O._meta.tablename} "
                 f"WHERE created_at >= {{}} AND ({match})")
        row = (await O.raw(query, *args))[0]
        for i, counts in enumerate(zero):
            for name, _, _ in keys:
                counts[name] = int(row[f"{name}_{i}"] or 0)
        return zero

    # customers -------------------------------------------------------------
    def _customer_row(self, customer: Customer) -> Any:
        return self.t.customer(id=customer.id, email=customer.email,
                               token_hash=customer.token_hash, doc=_doc(customer))

    async def create_customer(self, customer: Customer) -> None:
        try:
            await self.t.customer.insert(self._customer_row(customer))
        except Exception as exc:
            if _is_unique_violation(exc):
                raise Conflict(f"a customer with email {customer.email} exists",
                               errors=[{"field": "email", "message": "already registered"}]
                               ) from exc
            raise

    async def _customer_where(self, clause: Any) -> Customer | None:
        K = self.t.customer
        rows = await K.select(K.doc).where(clause)
        return _dec_customer.decode(rows[0]["doc"]) if rows else None

    async def get_customer(self, customer_id: str) -> Customer | None:
        return await self._customer_where(self.t.customer.id == customer_id)

    async def get_customer_by_token(self, token_hash: str) -> Customer | None:
        return await self._customer_where(self.t.customer.token_hash == token_hash)

    async def get_customer_by_email(self, email: str) -> Customer | None:
        return await self._customer_where(self.t.customer.email == email)

    async def save_customer(self, customer: Customer, expected_version: int) -> None:
        # the version lives in the document (no column of its own): the condition reads it
        # there; a document from before versions counts as version 1
        K = self.t.customer
        stored = ("COALESCE(json_extract(doc, '$.version'), 1) = {}" if self.name == "sqlite"
                  else "COALESCE((doc::jsonb ->> 'version')::bigint, 1) = {}")
        if not await K.update({K.doc: _doc(customer)}).where(
                (K.id == customer.id) & WhereRaw(stored, expected_version)).returning(K.id):
            raise VersionConflict(f"customer {customer.id} changed since version "
                                  f"{expected_version}; read it and retry")

    async def erase_customer(self, customer: Customer, carts: list[Cart],
                             orders: list[Order], ledger: Sequence[LedgerEntry] = ()) -> None:
        K, C, O, L = self.t.customer, self.t.cart, self.t.order, self.t.loyalty_ledger
        notes: dict[str | None, list[str]] = {}
        for entry in ledger:  # one UPDATE per distinct note (erasure clears them all: one)
            notes.setdefault(entry.note, []).append(entry.id)
        async with self._tx():
            await K.update({K.email: customer.email, K.token_hash: customer.token_hash,
                            K.doc: _doc(customer)}).where(K.id == customer.id)
            for note, ids in notes.items():
                await L.update({L.note: note}).where(
                    (L.customer_id == customer.id) & L.id.is_in(ids))
            for cart in carts:
                await C.update({C.doc: _doc(cart)}).where(C.id == cart.id)
            for order in orders:
                await O.update({O.doc: _doc(order), O.email: order.email,
                                O.card_fingerprint: order.card_fingerprint}).where(
                    O.id == order.id)

    # loyalty ---------------------------------------------------------------
    async def loyalty_account(self, customer_id: str) -> LoyaltyAccount:
        A = self.t.loyalty_account
        rows = await A.select(A.balance, A.lifetime_base).where(A.customer_id == customer_id)
        if not rows:
            return LoyaltyAccount(customer_id=customer_id)
        return LoyaltyAccount(customer_id=customer_id, balance=int(rows[0]["balance"]),
                              lifetime_base_points=int(rows[0]["lifetime_base"]))

    async def loyalty_apply(self, entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
        if not entries:
            return []
        async with self._tx():
            return await self._apply_ledger(entries)

    async def _apply_ledger(self, entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
        """Inside a transaction: one INSERT of the new ledger rows (an id already there is
        skipped), then one balance update per customer, conditioned on staying >= 0."""
        L, A = self.t.loyalty_ledger, self.t.loyalty_account
        unique: list[LedgerEntry] = []
        for e in entries:  # an id named twice in one call counts once (the first)
            if all(u.id != e.id for u in unique):
                unique.append(e)
        rows = await L.insert(*[
            L(id=e.id, customer_id=e.customer_id, points=e.points, kind=e.kind,
              order_id=e.order_id, market=e.market, at=e.at, base_points=e.base_points,
              note=e.note)
            for e in unique
        ]).on_conflict(action="DO NOTHING").returning(L.id)
        inserted = {r["id"] for r in rows}
        applied = [e for e in unique if e.id in inserted]
        moves: dict[str, list[int]] = {}
        for e in applied:
            move = moves.setdefault(e.customer_id, [0, 0])
            move[0] += e.points
            move[1] += e.base_points
        table = A._meta.tablename
        # a fixed order: two writers never wait on each other's accounts in a cycle
        for customer_id, (points, base) in sorted(moves.items()):
            if points >= 0:  # a credit: create the account or add to it, in one statement
                await A.insert(A(customer_id=customer_id, balance=points, lifetime_base=base)
                               ).on_conflict(target=A.customer_id, action="DO UPDATE", values=[
                    (A.balance, QueryString(f'"{table}"."balance" + EXCLUDED."balance"')),
                    (A.lifetime_base,
                     QueryString(f'"{table}"."lifetime_base" + EXCLUDED."lifetime_base"')),
                ])
                continue
            debited = await A.update({A.balance: A.balance + points,
                                      A.lifetime_base: A.lifetime_base + base}).where(
                (A.customer_id == customer_id) & WhereRaw("balance + {} >= 0", points)
            ).returning(A.balance)
            if not debited:
                have = (await self.loyalty_account(customer_id)).balance
                raise Conflict(
                    f"customer {customer_id} has {have} loyalty points; "
                    f"{-points} cannot be taken",
                    errors=[{"field": "points", "message": f"the balance is {have} points"}],
                    customer_id=customer_id, balance=have)
        return applied

    async def loyalty_ledger(self, customer_id: str) -> list[LedgerEntry]:
        L = self.t.loyalty_ledger
        rows = await L.select().where(L.customer_id == customer_id).order_by(L.at, L.id)
        return [LedgerEntry(id=r["id"], customer_id=r["customer_id"], points=int(r["points"]),
                            kind=r["kind"], order_id=r["order_id"], market=r["market"],
                            at=r["at"], base_points=int(r["base_points"]), note=r["note"])
                for r in rows]

    # outbox and idempotency --------------------------------------------------
    async def _write_events(self, events: list[Event]) -> None:
        if not events:
            return  # an INSERT of no rows is a syntax error
        E = self.t.outbox
        await E.insert(*[
            E(id=e.id, type=e.type, market=e.market, subject=e.subject, at=e.at,
              data=_doc(e.data), delivered=False)
            for e in events
        ])

    async def pending_events(self, limit: int = 100) -> list[Event]:
        E = self.t.outbox
        rows = await E.select().where(E.delivered == False).order_by(E.at).limit(limit)  # noqa: E712
        return [Event(id=r["id"], type=r["type"], market=r["market"], subject=r["subject"],
                      at=r["at"], data=_dec_event_data.decode(r["data"])) for r in rows]

    async def mark_events_delivered(self, ids: list[str], at: float) -> None:
        if ids:
            E = self.t.outbox
            await E.update({E.delivered: True}).where(E.id.is_in(ids))

    async def get_idempotency(self, scope: str, key: str) -> IdempotencyRecord | None:
        IDEM = self.t.idempotency
        rows = await IDEM.select().where(IDEM.id == f"{scope}|{key}")
        if not rows:
            return None
        r = rows[0]
        return IdempotencyRecord(scope=scope, key=key, request_hash=r["request_hash"],
                                 status=r["status"], body=r["body"].encode())

    # exchange rates ----------------------------------------------------------
    async def fx_rates(self) -> dict[str, dict[str, str]]:
        F = self.t.fx_rate
        table: dict[str, dict[str, str]] = {}
        for row in await F.select(F.base, F.currency, F.rate):
            table.setdefault(row["base"], {})[row["currency"]] = row["rate"]
        return table

    async def put_fx_rates(self, base: str, rates: dict[str, str], at: float) -> None:
        F = self.t.fx_rate
        if rates:
            await F.insert(*[F(id=f"{base}:{cur}", base=base, currency=cur, rate=rate,
                               updated_at=at) for cur, rate in sorted(rates.items())]
                           ).on_conflict(target=F.id, action="DO UPDATE",
                                         values=[F.rate, F.updated_at])

