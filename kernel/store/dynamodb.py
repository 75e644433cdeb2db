"""The DynamoDB adapter of the storage port: one table, boto3, the serverless shape.

Single-table design (``pk``/``sk`` strings; documents are msgspec JSON in ``d``,
zlib-compressed with a preset dictionary to keep items under the 1 KB write unit):

====================  ==============  ===================================================
pk                    sk              what
====================  ==============  ===================================================
``CATALOG``           ``P#<sku>``     product (``d``)
``CATALOG``           ``L#<id>``      location (``d``)
``FX``                ``<base>#<cur>`` exchange rate (``r``, ``at``)
``S#<sku>``           ``L#<loc>``     stock: ``oh`` on hand, ``rv`` reserved, ``av`` available
                                      (= oh - rv, kept in every write so a condition can
                                      read it), ``lt`` low threshold, ``rsn``/``at`` of the
                                      last change (the stream carries them: no movement rows),
                                      ``ro`` order of the last reservation
``R#<order>``         ``R``           a checkout's hold: ``rows`` map ``<sku>#<loc>`` →
                                      quantity, ``exp``, ``ttl`` (exp + 1 h: DynamoDB's
                                      backstop), GSI4 ``RESEXP`` by ``exp`` (the sweeper's
                                      orphans); one item per order, so a second reserve for it
                                      collides on it. Placing the order copies ``rows`` onto
                                      the order and leaves this item to the sweeper and TTL
``RX#<order>``        ``RX``          a reservation deleted by TTL was released (``ttl``)
``C#<cart>``          ``C``           cart (``v`` version, ``st``, ``mk``, ``d``; ``o`` its
                                      order once placed); GSI1 ``CC#<customer>`` by updated_at
``O#<order>``         ``O``           order (``v``, ``st``, ``d``, ``rows`` the units it still
                                      holds); GSI1 ``CO#<customer>``, GSI2 ``E#<email>``,
                                      GSI3 ``K#<card>`` by created_at, GSI4 ``ORDERS`` by
                                      created_at, GSI5 ``DUE`` by payment_due_at while
                                      pending_payment
``U#<customer>``      ``U``           customer profile (``d``)
``EM#<email>``        ``EM``          unique email → ``u``; ``TK#<hash>``/``TK`` the same
``EV#<event>``        ``EV``          outbox event (no index: the stream relays it; ``dl``
                                      and ``ttl`` once delivered)
``I#<scope>|<key>``   ``I``           idempotency record
``Y#<customer>``      ``A`` / ``E#<id>`` loyalty account (``bal``, ``lb``) and ledger entries
====================  ==============  ===================================================

Every GSI projects keys only (index writes stay at one unit); documents are read
back from the table with a ``BatchGetItem``. Index reads are eventually consistent on
AWS (moto answers at once); so are catalog reads and advisory stock reads
(``get_stock(fresh=False)``), at half the read units. Conditional writes decide.

Writes that must be atomic are one ``TransactWriteItems`` (at most 100 actions: a
cart has at most ``kernel.cart.MAX_LINES`` lines, so a checkout fits). A checkout is two:
``reserve`` (a conditional update per stock row + the hold) before the payment, and
``place_order`` (cart + order + outbox) after it. botocore is blocking: every port
method runs its calls in a worker thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import random
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlparse

import msgspec

from kernel.cart import MAX_LINES, Cart
from kernel.catalog import Location, Product
from kernel.errors import Busy, Conflict, InProgress, NotFound, VersionConflict
from kernel.events import Event
from kernel.inventory import Reservation, StockLevel, fell_low, low_stock_events
from kernel.loyalty import LedgerEntry, LoyaltyAccount
from kernel.orders import Order
from kernel.store.base import Customer, IdempotencyRecord, StockEffects, StockShortage, Store
from kernel.store.quiet import quiet_payload_loggers

MAX_ACTIONS = 100  # TransactWriteItems
# reserve: one stock update per (sku, location) row + the reservation item + its events;
# place_order: cart + order + cart-order item + events + ledger rows. A line allocated from
# one location is one row; a cart of MAX_LINES lines split across many locations can still
# exceed the limit, and is then refused with a Conflict naming it.
assert MAX_LINES + 2 <= MAX_ACTIONS, "a cart's lines must fit one reserve transaction"

GSIS = ("gsi1", "gsi2", "gsi3", "gsi4", "gsi5")
POOL_SIZE = 10  # threads for blocking calls = botocore's default max_pool_connections
DELIVERED_TTL = 7 * 86400  # delivered outbox events are kept a week, then DynamoDB drops them
# An unplaced reservation's item expires by TTL this long after its window: the sweeper
# releases it on time; TTL (lazy, up to days) is the backstop if the sweeper is not running,
# and the stream worker then releases what the deleted item held.
RESERVATION_TTL_GRACE = 3600

_enc = msgspec.json.Encoder()
_dec_cart = msgspec.json.Decoder(Cart)
_dec_order = msgspec.json.Decoder(Order)
_dec_product = msgspec.json.Decoder(Product)
_dec_location = msgspec.json.Decoder(Location)
_dec_customer = msgspec.json.Decoder(Customer)
_dec_data = msgspec.json.Decoder(dict[str, Any])

T = TypeVar("T")


@functools.cache
def _zdict() -> bytes:
    """zlib's preset dictionary for documents: a cart and an order with their values blanked
    (kernel/data/dynamodb-zdict-v1.json). Most of a document is its keys and repeated money
    objects, so the dictionary takes an order of 3 lines from ~1.2 KB to ~0.5 KB, under the
    1 KB write unit. Frozen: stored documents name it by its Adler-32 (zlib's FDICT header);
    a new version must be added beside it, never edited."""
    return (Path(__file__).parent.parent / "data" / "dynamodb-zdict-v1.json").read_bytes()


def _pack(obj: Any) -> dict[str, bytes]:
    packer = zlib.compressobj(6, zdict=_zdict())
    return {"B": packer.compress(_enc.encode(obj)) + packer.flush()}


def _unpack(attr: dict[str, Any], decoder: msgspec.json.Decoder[T]) -> T:
    data = attr["B"]
    if len(data) > 1 and data[1] & 0x20:  # FDICT: packed with the preset dictionary
        unpacker = zlib.decompressobj(zdict=_zdict())
        return decoder.decode(unpacker.decompress(data) + unpacker.flush())
    return decoder.decode(zlib.decompress(data))  # documents written before the dictionary


def S(value: str) -> dict[str, str]:  # DynamoDB's own type letters
    return {"S": value}


def N(value: float | int) -> dict[str, str]:
    if isinstance(value, int):
        return {"N": str(value)}
    return {"N": format(Decimal(repr(float(value))), "f")}


def _int(item: dict[str, Any], name: str, default: int = 0) -> int:
    return int(item[name]["N"]) if name in item else default


def _float(item: dict[str, Any], name: str) -> float | None:
    return float(item[name]["N"]) if name in item else None


def _key(pk: str, sk: str) -> dict[str, Any]:
    return {"pk": S(pk), "sk": S(sk)}


def _reasons(exc: Exception) -> list[str]:
    response = getattr(exc, "response", {}) or {}
    return [r.get("Code", "None") for r in response.get("CancellationReasons", [])]


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", {}) or {}
    return response.get("Error", {}).get("Code", "")


class _Cancelled(Exception):
    def __init__(self, reasons: list[str]):
        super().__init__(f"transaction cancelled: {reasons}")
        self.reasons = reasons


class _Contended(_Cancelled, Busy):
    """Still a transaction conflict after every retry: nothing was written. Callers that read
    ``reasons`` see no failed condition; re-raised, it is a 409 ``busy`` with Retry-After."""

    def __init__(self, reasons: list[str]):
        _Cancelled.__init__(self, reasons)
        self.detail = ("the store is busy with concurrent changes to the same items; nothing "
                       "was changed, retry shortly")


# TransactionConflict: another transaction or write touched an item at the same moment.
# Retried with jittered exponential backoff (jitter: racing retries must not meet again).
CONFLICT_ATTEMPTS = 8
CONFLICT_BACKOFF_S = 0.01  # the first wait; doubles per attempt, 0.5-1x jitter, ~1.3 s in all


class DynamoStore(Store):
    """One DynamoDB table. ``client``: a boto3 DynamoDB client (made lazily if not given)."""

    name = "dynamodb"

    def __init__(self, table_name: str = "niaga", *, client: Any = None,
                 region_name: str | None = None, endpoint_url: str | None = None):
        self.table_name = table_name
        self.url = f"dynamodb://{table_name}"
        self._client = client
        self._region = region_name
        self._endpoint = endpoint_url
        self._pool: Any = None

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> DynamoStore:
        """``dynamodb://<table>?region=eu-central-1&endpoint=http://localhost:5000``"""
        parsed = urlparse(url)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        return cls(parsed.netloc or "niaga", region_name=query.get("region"),
                   endpoint_url=query.get("endpoint"), **kwargs)

    @property
    def client(self) -> Any:
        if self._client is None:
            # botocore directly: boto3 adds nothing for a low-level client but its import
            # (and s3transfer's), ~70 ms of every cold start
            import botocore.session

            self._client = botocore.session.get_session().create_client(
                "dynamodb", region_name=self._region, endpoint_url=self._endpoint)
        return self._client

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        # a pool of its own, as large as botocore's connection pool: store calls neither
        # starve the loop's default pool nor wait for a connection inside a thread
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=POOL_SIZE,
                                            thread_name_prefix="niaga-dynamodb")
        call = functools.partial(contextvars.copy_context().run, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    # low-level helpers (sync, run in a worker thread) ------------------------
    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        out = self.client.get_item(TableName=self.table_name, Key=_key(pk, sk),
                                   ConsistentRead=True)
        return out.get("Item")

    def _batch_get(self, keys: list[tuple[str, str]], consistent: bool = True
                   ) -> dict[tuple[str, str], dict[str, Any]]:
        found: dict[tuple[str, str], dict[str, Any]] = {}
        keys = list(dict.fromkeys(keys))
        for i in range(0, len(keys), 100):
            pending: dict[str, Any] = {self.table_name: {
                "Keys": [_key(pk, sk) for pk, sk in keys[i:i + 100]],
                "ConsistentRead": consistent}}
            while pending:
                out = self.client.batch_get_item(RequestItems=pending)
                for item in out.get("Responses", {}).get(self.table_name, []):
                    found[(item["pk"]["S"], item["sk"]["S"])] = item
                pending = out.get("UnprocessedKeys") or {}
        return found

    def _query(self, *, index: str | None = None, pk: str, sk_cond: str = "",
               values: dict[str, Any] | None = None, forward: bool = True,
               limit: int | None = None, consistent: bool = True,
               stop: Callable[[dict[str, Any]], bool] | None = None) -> list[dict[str, Any]]:
        """All items (up to ``limit``) of one partition, paging; ``stop``: the first item it
        is true for ends the listing (and is left out)."""
        pk_name = f"{index}pk" if index else "pk"
        sk_name = f"{index}sk" if index else "sk"
        args: dict[str, Any] = {
            "TableName": self.table_name,
            "KeyConditionExpression": "#pk = :pk" + (f" AND {sk_cond}" if sk_cond else ""),
            "ExpressionAttributeNames": {"#pk": pk_name, **({"#sk": sk_name} if sk_cond else {})},
            "ExpressionAttributeValues": {":pk": S(pk), **(values or {})},
            "ScanIndexForward": forward,
        }
        if index:
            args["IndexName"] = index
        else:
            args["ConsistentRead"] = consistent
        items: list[dict[str, Any]] = []
        while True:
            if limit is not None:
                args["Limit"] = max(limit - len(items), 1)
            out = self.client.query(**args)
            page = out.get("Items", [])
            if stop is not None:
                cut = next((i for i, item in enumerate(page) if stop(item)), None)
                if cut is not None:
                    items.extend(page[:cut])
                    break
            items.extend(page)
            if "LastEvaluatedKey" not in out or (limit is not None and len(items) >= limit):
                break
            args["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        return items[:limit] if limit is not None else items

    def _transact(self, actions: list[dict[str, Any]]) -> None:
        """One TransactWriteItems; retried on a transaction conflict, _Cancelled otherwise."""
        if not actions:
            return
        if len(actions) > MAX_ACTIONS:
            raise Conflict(f"one atomic write may change at most {MAX_ACTIONS} items; "
                           f"this one needs {len(actions)}")
        for attempt in range(CONFLICT_ATTEMPTS):
            try:
                self.client.transact_write_items(TransactItems=actions)
                return
            except Exception as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise
                reasons = _reasons(exc)
                if "TransactionConflict" not in reasons:
                    raise _Cancelled(reasons) from exc
                if attempt < CONFLICT_ATTEMPTS - 1:
                    time.sleep(CONFLICT_BACKOFF_S * 2 ** attempt * random.uniform(0.5, 1.0))
                    continue
                if "ConditionalCheckFailed" in reasons:
                    raise _Cancelled(reasons) from exc  # a condition failed: the caller says which
                raise _Contended(reasons) from exc

    def _put(self, item: dict[str, Any], condition: str | None = None,
             values: dict[str, Any] | None = None) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.table_name, "Item": item}
        if condition:
            put["ConditionExpression"] = condition
        if values:
            put["ExpressionAttributeValues"] = values
        return {"Put": put}

    def _update(self, pk: str, sk: str, expression: str, values: dict[str, Any] | None = None,
                condition: str | None = None, names: dict[str, str] | None = None
                ) -> dict[str, Any]:
        update: dict[str, Any] = {"TableName": self.table_name, "Key": _key(pk, sk),
                                  "UpdateExpression": expression}
        if values:
            update["ExpressionAttributeValues"] = values
        if condition:
            update["ConditionExpression"] = condition
        if names:
            update["ExpressionAttributeNames"] = names
        return {"Update": update}

    def _delete(self, pk: str, sk: str, condition: str | None = None,
                values: dict[str, Any] | None = None, names: dict[str, str] | None = None
                ) -> dict[str, Any]:
        delete: dict[str, Any] = {"TableName": self.table_name, "Key": _key(pk, sk)}
        if names:
            delete["ExpressionAttributeNames"] = names
        if condition:
            delete["ConditionExpression"] = condition
        if values:
            delete["ExpressionAttributeValues"] = values
        return {"Delete": delete}

    # lifecycle -------------------------------------------------------------
    async def start(self) -> None:
        quiet_payload_loggers()  # botocore logs request bodies (personal data) at DEBUG

    async def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    async def create_schema(self) -> None:
        await self._run(self._create_schema)

    def _create_schema(self) -> None:
        client = self.client
        try:
            client.describe_table(TableName=self.table_name)
            return
        except Exception as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
        attrs = [{"AttributeName": "pk", "AttributeType": "S"},
                 {"AttributeName": "sk", "AttributeType": "S"}]
        indexes = []
        for gsi in GSIS:
            attrs += [{"AttributeName": f"{gsi}pk", "AttributeType": "S"},
                      {"AttributeName": f"{gsi}sk", "AttributeType": "N"}]
            indexes.append({"IndexName": gsi,
                            "KeySchema": [{"AttributeName": f"{gsi}pk", "KeyType": "HASH"},
                                          {"AttributeName": f"{gsi}sk", "KeyType": "RANGE"}],
                            "Projection": {"ProjectionType": "KEYS_ONLY"}})
        client.create_table(
            TableName=self.table_name, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=attrs,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                       {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=indexes,
            StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
        )
        client.get_waiter("table_exists").wait(TableName=self.table_name)
        client.update_time_to_live(TableName=self.table_name, TimeToLiveSpecification={
            "Enabled": True, "AttributeName": "ttl"})

    async def drop_schema(self) -> None:
        def drop() -> None:
            try:
                self.client.delete_table(TableName=self.table_name)
            except Exception as exc:
                if _code(exc) != "ResourceNotFoundException":
                    raise
        await self._run(drop)

    async def is_empty(self) -> bool:
        items = await self._run(lambda: self._query(
            pk="CATALOG", sk_cond="begins_with(#sk, :p)", values={":p": S("P#")}, limit=1))
        return not items

    # catalog ---------------------------------------------------------------
    async def put_product(self, product: Product) -> None:
        await self._run(lambda: self.client.put_item(TableName=self.table_name, Item={
            **_key("CATALOG", f"P#{product.sku}"), "d": _pack(product)}))

    async def delete_product(self, sku: str) -> bool:
        out = await self._run(lambda: self.client.delete_item(
            TableName=self.table_name, Key=_key("CATALOG", f"P#{sku}"), ReturnValues="ALL_OLD"))
        return bool(out.get("Attributes"))

    async def get_products(self, skus: Iterable[str]) -> dict[str, Product]:
        keys = [("CATALOG", f"P#{sku}") for sku in dict.fromkeys(skus)]
        if not keys:
            return {}
        # eventually consistent (half the read units): a catalog edit shows within a second
        items = await self._run(self._batch_get, keys, False)
        products = [_unpack(item["d"], _dec_product) for item in items.values()]
        return {p.sku: p for p in sorted(products, key=lambda p: p.sku)}

    async def list_products(self) -> list[Product]:
        items = await self._run(lambda: self._query(
            pk="CATALOG", sk_cond="begins_with(#sk, :p)", values={":p": S("P#")}))
        return [_unpack(item["d"], _dec_product) for item in items]

    async def put_location(self, location: Location) -> None:
        await self._run(lambda: self.client.put_item(TableName=self.table_name, Item={
            **_key("CATALOG", f"L#{location.id}"), "d": _pack(location)}))

    async def list_locations(self, market: str | None = None) -> list[Location]:
        items = await self._run(lambda: self._query(
            pk="CATALOG", sk_cond="begins_with(#sk, :p)", values={":p": S("L#")}))
        locations = [_unpack(item["d"], _dec_location) for item in items]
        return [loc for loc in locations if market is None or market in loc.markets]

    # stock -----------------------------------------------------------------
    @staticmethod
    def _level(item: dict[str, Any]) -> StockLevel:
        return StockLevel(sku=item["pk"]["S"][2:], location_id=item["sk"]["S"][2:],
                          on_hand=_int(item, "oh"), reserved=_int(item, "rv"),
                          low_threshold=_int(item, "lt"))

    def _set_stock(self, sku: str, location_id: str, on_hand: int | None, reason: str,
                   at: float, low_threshold: int | None) -> StockLevel:
        # one write whether or not the row exists: a new row starts with nothing reserved;
        # stock.low, if the change crosses the threshold, comes from the stream worker
        values: dict[str, Any] = {":z": N(0), ":r": S(reason), ":at": N(at)}
        sets = ["rv = if_not_exists(rv, :z)", "rsn = :r", "#at = :at"]
        if on_hand is None:
            sets += ["oh = if_not_exists(oh, :z)", "av = if_not_exists(av, :z)"]
            condition = None
        else:
            sets += ["oh = :n", "av = :n - if_not_exists(rv, :z)"]
            values[":n"] = N(on_hand)
            condition = "attribute_not_exists(pk) OR rv <= :n"
        if low_threshold is None:
            sets.append("lt = if_not_exists(lt, :z)")
        else:
            sets.append("lt = :lt")
            values[":lt"] = N(low_threshold)
        try:
            out = self.client.update_item(
                TableName=self.table_name, Key=_key(f"S#{sku}", f"L#{location_id}"),
                UpdateExpression="SET " + ", ".join(sets),
                **({"ConditionExpression": condition} if condition else {}),
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW")
            return self._level(out["Attributes"])
        except Exception as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
        current = self._get(f"S#{sku}", f"L#{location_id}") or {}
        reserved = _int(current, "rv")
        raise Conflict(
            f"on_hand {on_hand} is below the {reserved} unit(s) reserved for "
            f"orders of {sku} at {location_id}",
            errors=[{"field": "on_hand", "message": f"must be at least {reserved}"}])

    async def set_stock(self, sku: str, location_id: str, on_hand: int | None, reason: str,
                        at: float, *, low_threshold: int | None = None) -> StockLevel:
        return await self._run(self._set_stock, sku, location_id, on_hand, reason, at,
                               low_threshold)

    def _adjust_stock(self, sku: str, location_id: str, delta: int, reason: str,
                      at: float) -> StockLevel:
        pk, sk = f"S#{sku}", f"L#{location_id}"
        try:
            out = self.client.update_item(
                TableName=self.table_name, Key=_key(pk, sk),
                UpdateExpression="SET oh = oh + :d, av = av + :d, rsn = :r, #at = :at",
                # on_hand + d >= reserved  <=>  av >= -d;  on_hand + d >= 0  <=>  oh >= -d
                ConditionExpression="attribute_exists(pk) AND av >= :nd AND oh >= :nd",
                ExpressionAttributeNames={"#at": "at"},
                ExpressionAttributeValues={":d": N(delta), ":nd": N(-delta), ":r": S(reason),
                                           ":at": N(at)},
                ReturnValues="ALL_NEW")
            return self._level(out["Attributes"])
        except Exception as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
        current = self._get(pk, sk)
        if current is None:
            raise NotFound(f"no stock record for {sku} at {location_id}")
        on_hand, reserved = _int(current, "oh"), _int(current, "rv")
        raise Conflict(
            f"adjusting {sku} at {location_id} by {delta} would leave "
            f"{on_hand + delta} on hand with {reserved} reserved",
            errors=[{"field": "delta", "message": "would go below reserved stock"}])

    async def adjust_stock(self, sku: str, location_id: str, delta: int, reason: str,
                           at: float) -> StockLevel:
        return await self._run(self._adjust_stock, sku, location_id, delta, reason, at)

    def _get_stock(self, skus: list[str], locs: list[str] | None, fresh: bool
                   ) -> dict[tuple[str, str], StockLevel]:
        if locs is not None and fresh:
            items = self._batch_get([(f"S#{s}", f"L#{loc}") for s in skus for loc in locs])
            levels = [self._level(item) for item in items.values()]
        else:  # one query per SKU: its rows are one partition, read in one unit per 4 KB
            wanted = None if locs is None else set(locs)
            levels = [self._level(item) for s in skus
                      for item in self._query(pk=f"S#{s}", consistent=fresh)
                      if wanted is None or item["sk"]["S"][2:] in wanted]
        return {(lv.sku, lv.location_id): lv
                for lv in sorted(levels, key=lambda lv: (lv.sku, lv.location_id))}

    async def get_stock(self, skus: Iterable[str],
                        location_ids: Iterable[str] | None = None, *, fresh: bool = True
                        ) -> dict[tuple[str, str], StockLevel]:
        skus = list(dict.fromkeys(skus))
        locs = None if location_ids is None else list(dict.fromkeys(location_ids))
        if not skus or locs == []:
            return {}
        return await self._run(self._get_stock, skus, locs, fresh)

    def _event_put(self, event: Event) -> dict[str, Any]:
        return self._put({**_key(f"EV#{event.id}", "EV"), "ty": S(event.type),
                          "mk": S(event.market), "sub": S(event.subject), "at": N(event.at),
                          "data": S(_enc.encode(event.data).decode())},
                         "attribute_not_exists(pk)")

    def _reserve(self, reservations: list[Reservation], market: str,
                 events: list[Event]) -> None:
        ordered = sorted(reservations, key=lambda r: (r.sku, r.location_id))
        first = ordered[0]
        rows: dict[str, int] = {}
        actions: list[dict[str, Any]] = []
        for res in ordered:
            rows[f"{res.sku}#{res.location_id}"] = rows.get(
                f"{res.sku}#{res.location_id}", 0) + res.quantity
        merged = {tuple(k.split("#", 1)): q for k, q in rows.items()}
        for (sku, loc), q in merged.items():
            # ro names the order for a stock.low the stream worker derives from this change
            actions.append(self._update(f"S#{sku}", f"L#{loc}",
                                        "SET rv = rv + :q, av = av - :q, ro = :o",
                                        {":q": N(q), ":o": S(first.order_id)}, "av >= :q"))
        item: dict[str, Any] = {**_key(f"R#{first.order_id}", "R"),
                                "rows": {"M": {k: N(q) for k, q in rows.items()}}}
        if first.expires_at is not None:
            item.update(exp=N(first.expires_at), gsi4pk=S("RESEXP"),
                        gsi4sk=N(first.expires_at),
                        ttl=N(int(first.expires_at) + RESERVATION_TTL_GRACE))
        actions.append(self._put(item, "attribute_not_exists(pk)"))
        marker_at = len(actions) - 1
        actions += [self._event_put(e) for e in events]
        if len(actions) > MAX_ACTIONS:
            raise Conflict(f"a checkout of {len(merged)} stock rows is too large for one "
                           f"atomic write ({len(actions)} > {MAX_ACTIONS} items)")
        try:
            self._transact(actions)
        except _Cancelled as exc:
            short = [key for key, code in zip(merged, exc.reasons, strict=False)
                     if code == "ConditionalCheckFailed"]
            if short:
                raise StockShortage(short) from exc  # type: ignore[arg-type]
            if len(exc.reasons) > marker_at and exc.reasons[marker_at] == "ConditionalCheckFailed":
                raise InProgress("a checkout for this order is already holding stock; "
                                 "retry in a moment", order_id=first.order_id) from exc
            raise

    async def reserve(self, reservations: list[Reservation], market: str,
                      events: list[Event]) -> None:
        """As the port says, except ``stock.low``: a transaction cannot read the levels it
        writes, so the stream worker derives it from the stock rows' old and new images
        (:meth:`low_stock_event`)."""
        if reservations:
            await self._run(self._reserve, reservations, market, events)

    @staticmethod
    def _held(item: dict[str, Any] | None) -> dict[tuple[str, str], int]:
        if not item:
            return {}
        return {tuple(k.split("#", 1)): int(v["N"])  # type: ignore[misc]
                for k, v in item.get("rows", {}).get("M", {}).items()}

    def _release_orphans(self, order_id: str) -> int:
        for _ in range(5):
            item = self._get(f"R#{order_id}", "R")
            if not item:
                return 0
            held = self._held(item)
            actions: list[dict[str, Any]] = [{"ConditionCheck": {
                "TableName": self.table_name, "Key": _key(f"O#{order_id}", "O"),
                "ConditionExpression": "attribute_not_exists(pk)"}}]
            actions.append(self._delete(f"R#{order_id}", "R", "#rows = :rows",
                                        {":rows": item["rows"]}, {"#rows": "rows"}))
            for (sku, loc), q in sorted(held.items()):
                if q:
                    actions.append(self._update(f"S#{sku}", f"L#{loc}",
                                                "SET rv = rv - :q, av = av + :q", {":q": N(q)}))
            try:
                self._transact(actions)
                return sum(held.values())
            except _Cancelled as exc:
                if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                    return 0  # it became an order after all; the order owns the stock now
                continue  # released (or changed) meanwhile: look again
        return 0

    async def release_orphans(self, order_id: str) -> int:
        return await self._run(self._release_orphans, order_id)

    def _release_deleted(self, order_id: str, rows: dict[str, Any], at: float) -> int:
        held = self._held({"rows": rows})
        actions: list[dict[str, Any]] = [
            {"ConditionCheck": {  # placed meanwhile: the order owns that stock
                "TableName": self.table_name, "Key": _key(f"O#{order_id}", "O"),
                "ConditionExpression": "attribute_not_exists(pk)"}},
            self._put({**_key(f"RX#{order_id}", "RX"), "at": N(at),
                       "ttl": N(int(at) + DELIVERED_TTL)}, "attribute_not_exists(pk)"),
        ]
        for (sku, loc), q in sorted(held.items()):
            if q:
                actions.append(self._update(f"S#{sku}", f"L#{loc}",
                                            "SET rv = rv - :q, av = av + :q", {":q": N(q)},
                                            "attribute_exists(pk)"))
        try:
            self._transact(actions)
        except _Cancelled as exc:
            if "ConditionalCheckFailed" in exc.reasons[:2]:
                return 0  # an order's stock, or released already (a redelivered record)
            raise
        return sum(held.values())

    async def release_deleted_reservation(self, order_id: str, rows: dict[str, Any],
                                          at: float) -> int:
        """Release what a reservation item held when DynamoDB deleted it (TTL), from the
        ``rows`` of its old image as the stream shows it. Once per order: an ``RX#<order>``
        marker (kept a week) makes a redelivered record a no-op; nothing is released when
        the order exists."""
        return await self._run(self._release_deleted, order_id, rows, at)

    def _low_stock(self, old: dict[str, Any], new: dict[str, Any], event_id: str,
                   at: float) -> list[Event]:
        if not old or not new:
            return []
        before, after = self._level(old), self._level(new)
        if not fell_low(before, after):
            return []
        # a reservation moves only rv; anything else (adjust, count, threshold) says its rsn
        reserved = after.on_hand == before.on_hand and after.reserved > before.reserved
        location = self._get("CATALOG", f"L#{after.location_id}")
        markets = _unpack(location["d"], _dec_location).markets if location else []
        events = low_stock_events(
            after, markets, at, event_id,
            reason="reservation" if reserved else new.get("rsn", {}).get("S", "count"),
            order_id=new.get("ro", {}).get("S") if reserved else None)
        for event in events:  # each put is idempotent on its id: a retry writes the rest
            try:
                self.client.put_item(**self._event_put(event)["Put"])
            except Exception as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise  # the record is retried; the ones written stay written once
        return events

    async def low_stock_event(self, old: dict[str, Any], new: dict[str, Any], event_id: str,
                              at: float) -> list[Event]:
        """``stock.low`` for a stock row whose change took it into low stock
        (:func:`kernel.inventory.fell_low`), from the row's old and new images as the stream
        shows them (a transaction cannot read what it writes, so :meth:`reserve` cannot add
        it, and deriving it here costs the checkout nothing). One event per market the
        location serves, written to the outbox under ``event_id:<market>`` (derived from the
        stream record, so a redelivered record writes each once); the stream then delivers
        them like any other event. Empty when the change crossed nothing."""
        return await self._run(self._low_stock, old, new, event_id, at)

    def _orphans(self, now: float) -> list[str]:
        keys = self._query(index="gsi4", pk="RESEXP", sk_cond="#sk < :now",
                           values={":now": N(now)})
        ids = list(dict.fromkeys(k["pk"]["S"][2:] for k in keys))
        if not ids:
            return []
        placed = self._batch_get([(f"O#{i}", "O") for i in ids])
        done = [i for i in ids if (f"O#{i}", "O") in placed]
        for i in range(0, len(done), 25):  # the order holds their units: drop them
            requests = [{"DeleteRequest": {"Key": _key(f"R#{o}", "R")}} for o in done[i:i + 25]]
            while requests:
                out = self.client.batch_write_item(RequestItems={self.table_name: requests})
                requests = out.get("UnprocessedItems", {}).get(self.table_name, [])
        return [i for i in ids if (f"O#{i}", "O") not in placed]

    async def orphan_reservations(self, now: float) -> list[str]:
        return await self._run(self._orphans, now)

    # carts -----------------------------------------------------------------
    def _cart_set(self, cart: Cart) -> tuple[str, dict[str, Any]]:
        expression = "SET v = :v, st = :st, mk = :mk, ua = :ua, d = :d"
        values = {":v": N(cart.version), ":st": S(cart.status), ":mk": S(cart.market),
                  ":ua": N(cart.updated_at), ":d": _pack(cart)}
        if cart.customer_id:
            expression += ", gsi1pk = :g1, gsi1sk = :ua"
            values[":g1"] = S(f"CC#{cart.customer_id}")
        else:
            expression += " REMOVE gsi1pk, gsi1sk"
        return expression, values

    async def create_cart(self, cart: Cart) -> None:
        item = {**_key(f"C#{cart.id}", "C"), "v": N(cart.version), "st": S(cart.status),
                "mk": S(cart.market), "ua": N(cart.updated_at), "d": _pack(cart)}
        if cart.customer_id:
            item.update(gsi1pk=S(f"CC#{cart.customer_id}"), gsi1sk=N(cart.updated_at))

        def put() -> None:
            try:
                self.client.put_item(TableName=self.table_name, Item=item,
                                     ConditionExpression="attribute_not_exists(pk)")
            except Exception as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    raise Conflict(f"cart {cart.id} exists") from exc
                raise
        await self._run(put)

    async def get_cart(self, cart_id: str) -> Cart | None:
        item = await self._run(self._get, f"C#{cart_id}", "C")
        return _unpack(item["d"], _dec_cart) if item else None

    def _cart_update(self, cart: Cart, expected_version: int, order_id: str | None = None
                     ) -> dict[str, Any]:
        expression, values = self._cart_set(cart)
        condition = "v = :ev"
        if order_id is not None:  # the cart's one order: ``o`` on the cart item
            expression = expression.replace("SET ", "SET o = :o, ", 1)
            values[":o"] = S(order_id)
            condition += " AND attribute_not_exists(o)"
        return self._update(f"C#{cart.id}", "C", expression, {**values,
                            ":ev": N(expected_version)}, condition)

    async def save_cart(self, cart: Cart, expected_version: int) -> None:
        def save() -> None:
            update = self._cart_update(cart, expected_version)["Update"]
            try:
                self.client.update_item(**update)
            except Exception as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    raise VersionConflict(f"cart {cart.id} changed since version "
                                          f"{expected_version}; read it and retry") from exc
                raise
        await self._run(save)

    def _carts_of(self, customer_id: str) -> list[Cart]:
        keys = self._query(index="gsi1", pk=f"CC#{customer_id}", forward=False)
        items = self._batch_get([(k["pk"]["S"], "C") for k in keys])
        carts = [_unpack(item["d"], _dec_cart) for item in items.values()]
        return sorted(carts, key=lambda c: (c.updated_at, c.id), reverse=True)

    async def find_open_cart(self, customer_id: str, market: str) -> Cart | None:
        carts = await self._run(self._carts_of, customer_id)
        return next((c for c in carts
                     if c.market == market and c.status == "open" and
                     c.customer_id == customer_id), None)

    async def list_carts(self, customer_id: str) -> list[Cart]:
        carts = await self._run(self._carts_of, customer_id)
        return [c for c in carts if c.customer_id == customer_id]

    # orders ----------------------------------------------------------------
    @staticmethod
    def _order_fields(order: Order) -> tuple[dict[str, Any], list[str]]:
        """The order's attributes and the index attributes it must not have."""
        fields: dict[str, Any] = {"v": N(order.version), "st": S(order.status),
                                  "d": _pack(order), "gsi4pk": S("ORDERS"),
                                  "gsi4sk": N(order.created_at)}
        absent = []
        for gsi, value in (("gsi1", f"CO#{order.customer_id}" if order.customer_id else None),
                           ("gsi2", f"E#{order.email}" if order.email else None),
                           ("gsi3", f"K#{order.card_fingerprint}"
                            if order.card_fingerprint else None)):
            if value:
                fields[f"{gsi}pk"] = S(value)
                fields[f"{gsi}sk"] = N(order.created_at)
            else:
                absent += [f"{gsi}pk", f"{gsi}sk"]
        if order.status == "pending_payment" and order.payment_due_at is not None:
            fields.update(gsi5pk=S("DUE"), gsi5sk=N(order.payment_due_at))
        else:
            absent += ["gsi5pk", "gsi5sk"]
        return fields, absent

    def _order_update(self, order: Order, condition: str | None = None,
                      values: dict[str, Any] | None = None,
                      rows: dict[tuple[str, str], int] | None = None) -> dict[str, Any]:
        """``rows``: the units the order still holds, when they changed (None: unchanged)."""
        fields, absent = self._order_fields(order)
        if rows is not None:
            kept = {f"{sku}#{loc}": N(q) for (sku, loc), q in sorted(rows.items()) if q}
            if kept:
                fields["rows"] = {"M": kept}
            else:
                absent.append("#rows")
        names = {f"#{name}": name for name in [*fields, *(["rows"] if "#rows" in absent else [])]}
        expression = "SET " + ", ".join(f"#{name} = :{name}" for name in fields)
        if absent:
            expression += " REMOVE " + ", ".join(absent)
        return self._update(f"O#{order.id}", "O", expression,
                            {**{f":{k}": v for k, v in fields.items()}, **(values or {})},
                            condition, names)

    def _ledger_actions(self, entries: Sequence[LedgerEntry]) -> tuple[
            list[LedgerEntry], list[dict[str, Any]], list[tuple[str, int]]]:
        """The entries not applied yet, their actions, and (customer, debit) per debit action
        index. Reads which ids exist first (a concurrent duplicate fails its put instead)."""
        unique: list[LedgerEntry] = []
        for e in entries:  # an id named twice in one call counts once (the first)
            if all(u.id != e.id for u in unique):
                unique.append(e)
        existing = self._batch_get([(f"Y#{e.customer_id}", f"E#{e.id}") for e in unique])
        applied = [e for e in unique if (f"Y#{e.customer_id}", f"E#{e.id}") not in existing]
        actions: list[dict[str, Any]] = []
        moves: dict[str, list[int]] = {}
        for e in applied:
            item = {**_key(f"Y#{e.customer_id}", f"E#{e.id}"), "p": N(e.points),
                    "k": S(e.kind), "at": N(e.at), "bp": N(e.base_points)}
            for name, value in (("o", e.order_id), ("m", e.market), ("n", e.note)):
                if value is not None:
                    item[name] = S(value)
            actions.append(self._put(item, "attribute_not_exists(pk)"))
            move = moves.setdefault(e.customer_id, [0, 0])
            move[0] += e.points
            move[1] += e.base_points
        debits: list[tuple[str, int]] = []
        for customer_id, (points, base) in sorted(moves.items()):
            values = {":p": N(points), ":b": N(base)}
            if points >= 0:
                actions.append(self._update(f"Y#{customer_id}", "A", "ADD bal :p, lb :b",
                                            values))
            else:
                actions.append(self._update(f"Y#{customer_id}", "A", "ADD bal :p, lb :b",
                                            {**values, ":need": N(-points)}, "bal >= :need"))
                debits.append((customer_id, len(actions) - 1))
        return applied, actions, debits

    def _ledger_conflict(self, reasons: list[str], offset: int,
                         debits: list[tuple[str, int]]) -> Conflict | None:
        for customer_id, index in debits:
            if len(reasons) > offset + index and \
                    reasons[offset + index] == "ConditionalCheckFailed":
                item = self._get(f"Y#{customer_id}", "A")
                have = _int(item, "bal") if item else 0
                return Conflict(
                    f"customer {customer_id} has {have} loyalty points; the debit cannot be "
                    f"taken", errors=[{"field": "points", "message": f"the balance is {have} "
                                       "points"}], customer_id=customer_id, balance=have)
        return None

    def _place_order(self, order: Order, cart: Cart, expected_cart_version: int,
                     events: list[Event], ledger: Sequence[LedgerEntry]) -> None:
        for _ in range(5):
            fields, _absent = self._order_fields(order)
            # the units the order holds (its allocations, as reserve held them) move onto the
            # order item; the reservation item is left to TTL and the sweeper's cleanup
            rows: dict[str, int] = {}
            for a in order.allocations:
                rows[f"{a.sku}#{a.location_id}"] = rows.get(f"{a.sku}#{a.location_id}",
                                                            0) + a.quantity
            if rows:
                fields["rows"] = {"M": {k: N(q) for k, q in rows.items()}}
            actions = [
                self._cart_update(cart, expected_cart_version, order.id),
                self._put({**_key(f"O#{order.id}", "O"), **fields}, "attribute_not_exists(pk)"),
                *[self._event_put(e) for e in events],
            ]
            offset = len(actions)
            applied, ledger_actions, debits = (self._ledger_actions(ledger) if ledger
                                               else ([], [], []))
            actions += ledger_actions
            if len(actions) > MAX_ACTIONS:
                raise Conflict(f"an order of {len(order.lines)} lines is too large for one "
                               f"atomic write ({len(actions)} > {MAX_ACTIONS} items)")
            try:
                self._transact(actions)
                return
            except _Cancelled as exc:
                reasons = exc.reasons
                failed = [i for i, code in enumerate(reasons) if code == "ConditionalCheckFailed"]
                if 0 in failed:
                    stored = self._get(f"C#{cart.id}", "C") or {}
                    if "o" in stored and _int(stored, "v") == expected_cart_version:
                        raise Conflict(f"cart {cart.id} already has an order") from exc
                    raise VersionConflict(f"cart {cart.id} changed during checkout; read it "
                                          "and check out again") from exc
                if 1 in failed:
                    raise Conflict(f"order {order.id} exists already") from exc
                conflict = self._ledger_conflict(reasons, offset, debits)
                if conflict is not None:
                    raise conflict from exc
                if any(offset <= i < offset + len(applied) for i in failed):
                    continue  # a ledger id applied meanwhile: read again, skip it
                raise
        raise Conflict(f"order {order.number} could not be placed; retry")

    async def place_order(self, order: Order, cart: Cart, expected_cart_version: int,
                          events: list[Event], ledger: Sequence[LedgerEntry] = ()) -> None:
        await self._run(self._place_order, order, cart, expected_cart_version, events, ledger)

    async def get_order(self, order_id: str) -> Order | None:
        item = await self._run(self._get, f"O#{order_id}", "O")
        return _unpack(item["d"], _dec_order) if item else None

    async def get_order_by_cart(self, cart_id: str) -> Order | None:
        item = await self._run(self._get, f"C#{cart_id}", "C")
        return await self.get_order(item["o"]["S"]) if item and "o" in item else None

    def _orders(self, keys: list[dict[str, Any]]) -> list[Order]:
        items = self._batch_get([(k["pk"]["S"], "O") for k in keys])
        orders = [_unpack(items[(k["pk"]["S"], "O")]["d"], _dec_order)
                  for k in keys if (k["pk"]["S"], "O") in items]
        return orders

    def _list_orders(self, customer_id: str | None, since: float | None, until: float | None,
                     limit: int) -> list[Order]:
        index, pk = ("gsi1", f"CO#{customer_id}") if customer_id is not None else \
            ("gsi4", "ORDERS")
        # newest first from ``until`` (exclusive) down to ``since`` (inclusive)
        cond, values = ("#sk < :b", {":b": N(until)}) if until is not None else ("", {})
        stop = None
        if since is not None:
            def stop(key: dict[str, Any]) -> bool:
                return float(key[f"{index}sk"]["N"]) < since
        keys = self._query(index=index, pk=pk, sk_cond=cond, values=values, forward=False,
                           limit=limit, stop=stop)
        orders = self._orders(keys)
        return sorted(orders, key=lambda o: o.created_at, reverse=True)

    async def list_orders(self, *, customer_id: str | None = None, since: float | None = None,
                          until: float | None = None, limit: int = 1000) -> list[Order]:
        return await self._run(self._list_orders, customer_id, since, until, limit)

    def _save_order(self, order: Order, expected_version: int, events: list[Event],
                    effects: StockEffects | None, idempotency: IdempotencyRecord | None
                    ) -> None:
        rows_after: dict[tuple[str, str], int] | None = None
        actions: list[dict[str, Any]] = []
        if effects is not None:
            stock: dict[tuple[str, str], list[int]] = {}  # (sku, loc) -> [oh, rv, av] deltas
            # the units the order holds are on its item (``rows``, from place_order); the
            # version condition of the update below guards them
            held = (self._held(self._get(f"O#{order.id}", "O"))
                    if effects.release or effects.fulfil else {})
            left = dict(held)
            for item in effects.fulfil:
                d = stock.setdefault((item.sku, item.location_id), [0, 0, 0])
                d[0] -= item.quantity
                d[1] -= item.quantity
                key = (item.sku, item.location_id)
                if key in left:
                    left[key] -= item.quantity
            for item in effects.restock:
                d = stock.setdefault((item.sku, item.location_id), [0, 0, 0])
                d[0] += item.quantity
                d[2] += item.quantity
            if held:
                if effects.release:
                    rows_after = {}
                    for (sku, loc), rest in left.items():
                        if rest:
                            d = stock.setdefault((sku, loc), [0, 0, 0])
                            d[1] -= rest
                            d[2] += rest
                elif left != held:
                    rows_after = left
            reason = "return" if effects.restock else "order"
            at = order.history[-1].at if order.history else time.time()
            for (sku, loc), (oh, rv, av) in sorted(stock.items()):
                if oh or rv or av:
                    actions.append(self._update(
                        f"S#{sku}", f"L#{loc}",
                        "SET oh = oh + :oh, rv = rv + :rv, av = av + :av, rsn = :r, #at = :at",
                        {":oh": N(oh), ":rv": N(rv), ":av": N(av), ":r": S(reason),
                         ":at": N(at)}, "attribute_exists(pk)", {"#at": "at"}))
        actions.insert(0, self._order_update(order, "v = :ev", {":ev": N(expected_version)},
                                             rows_after))
        actions += [self._event_put(e) for e in events]
        if idempotency is not None:
            actions.append(self._put({
                **_key(f"I#{idempotency.scope}|{idempotency.key}", "I"),
                "rh": S(idempotency.request_hash), "s": N(idempotency.status),
                "b": {"B": idempotency.body}, "at": N(time.time())},
                "attribute_not_exists(pk)"))
        try:
            self._transact(actions)
        except _Cancelled as exc:
            if exc.reasons and exc.reasons[0] == "ConditionalCheckFailed":
                raise VersionConflict(f"order {order.number} changed meanwhile; retry") from exc
            if idempotency is not None and exc.reasons[-1] == "ConditionalCheckFailed":
                raise Conflict(f"the request {idempotency.key} was already handled") from exc
            raise VersionConflict(f"the stock of order {order.number} changed meanwhile; "
                                  "retry") from exc

    async def save_order(self, order: Order, expected_version: int, events: list[Event],
                         effects: StockEffects | None = None,
                         idempotency: IdempotencyRecord | None = None) -> None:
        await self._run(self._save_order, order, expected_version, events, effects, idempotency)

    def _unpaid(self, now: float, limit: int) -> list[Order]:
        keys = self._query(index="gsi5", pk="DUE", sk_cond="#sk < :now",
                           values={":now": N(now)}, limit=limit)
        return [o for o in self._orders(keys) if o.status == "pending_payment"]

    async def unpaid_orders_due(self, now: float, limit: int = 100) -> list[Order]:
        return await self._run(self._unpaid, now, limit)

    def _count_recent(self, since: list[float], keys: list[tuple[str, str, str]]
                      ) -> list[dict[str, int]]:
        counts = [{"customer": 0, "email": 0, "card": 0} for _ in since]
        cut = min(since)
        for name, index, pk in keys:
            found = self._query(index=index, pk=pk, sk_cond="#sk >= :a",
                                values={":a": N(cut)})
            times = [float(k[f"{index}sk"]["N"]) for k in found]
            for i, window in enumerate(since):
                counts[i][name] = sum(1 for t in times if t >= window)
        return counts

    async def count_recent_orders(self, since: list[float], *, customer_id: str | None,
                                  email: str | None,
                                  card_fingerprint: str | None) -> list[dict[str, int]]:
        """One query per key given (DynamoDB has no OR across partitions), keys only."""
        keys = [(name, index, f"{prefix}{value}") for name, index, prefix, value in (
            ("customer", "gsi1", "CO#", customer_id), ("email", "gsi2", "E#", email),
            ("card", "gsi3", "K#", card_fingerprint)) if value is not None]
        if not since or not keys:
            return [{"customer": 0, "email": 0, "card": 0} for _ in since]
        return await self._run(self._count_recent, since, keys)

    # customers -------------------------------------------------------------
    def _create_customer(self, customer: Customer) -> None:
        actions = [self._put({**_key(f"U#{customer.id}", "U"), "d": _pack(customer)},
                             "attribute_not_exists(pk)")]
        if customer.email is not None:
            actions.append(self._put({**_key(f"EM#{customer.email}", "EM"),
                                      "u": S(customer.id)}, "attribute_not_exists(pk)"))
        if customer.token_hash is not None:
            actions.append(self._put({**_key(f"TK#{customer.token_hash}", "TK"),
                                      "u": S(customer.id)}, "attribute_not_exists(pk)"))
        try:
            self._transact(actions)
        except _Cancelled as exc:
            raise Conflict(f"a customer with email {customer.email} exists",
                           errors=[{"field": "email", "message": "already registered"}]
                           ) from exc

    async def create_customer(self, customer: Customer) -> None:
        await self._run(self._create_customer, customer)

    def _customer(self, customer_id: str) -> Customer | None:
        item = self._get(f"U#{customer_id}", "U")
        return _unpack(item["d"], _dec_customer) if item else None

    def _customer_via(self, pk: str, sk: str) -> Customer | None:
        link = self._get(pk, sk)
        return self._customer(link["u"]["S"]) if link else None

    async def get_customer(self, customer_id: str) -> Customer | None:
        return await self._run(self._customer, customer_id)

    async def get_customer_by_token(self, token_hash: str) -> Customer | None:
        return await self._run(self._customer_via, f"TK#{token_hash}", "TK")

    async def get_customer_by_email(self, email: str) -> Customer | None:
        return await self._run(self._customer_via, f"EM#{email}", "EM")

    def _save_customer(self, customer: Customer, expected_version: int) -> None:
        # ``v`` beside the document carries the version; a profile written before versions
        # has none and counts as version 1
        condition = "v = :e" if expected_version != 1 else \
            "attribute_exists(pk) AND (attribute_not_exists(v) OR v = :e)"
        try:
            self.client.update_item(
                TableName=self.table_name, Key=_key(f"U#{customer.id}", "U"),
                UpdateExpression="SET d = :d, v = :v", ConditionExpression=condition,
                ExpressionAttributeValues={":d": _pack(customer), ":v": N(customer.version),
                                           ":e": N(expected_version)})
        except Exception as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            raise VersionConflict(f"customer {customer.id} changed since version "
                                  f"{expected_version}; read it and retry") from exc

    async def save_customer(self, customer: Customer, expected_version: int) -> None:
        await self._run(self._save_customer, customer, expected_version)

    def _erase_customer(self, customer: Customer, carts: list[Cart],
                        orders: list[Order], ledger: Sequence[LedgerEntry] = ()) -> None:
        before = self._customer(customer.id)
        actions = [self._update(f"U#{customer.id}", "U", "SET d = :d, v = :v",
                                {":d": _pack(customer), ":v": N(customer.version)})]
        for attr, prefix, sk in (("email", "EM#", "EM"), ("token_hash", "TK#", "TK")):
            old = getattr(before, attr) if before else None
            new = getattr(customer, attr)
            if old != new:
                if old is not None:
                    actions.append(self._delete(f"{prefix}{old}", sk))
                if new is not None:
                    actions.append(self._put({**_key(f"{prefix}{new}", sk), "u": S(customer.id)}))
        for cart in carts:
            actions.append(self._update(f"C#{cart.id}", "C", "SET d = :d", {":d": _pack(cart)},
                                        "attribute_exists(pk)"))
        for order in orders:
            actions.append(self._order_update(order, "attribute_exists(pk)"))
        for entry in ledger:  # the note only: points and ids stay for the books
            key = (f"Y#{customer.id}", f"E#{entry.id}")
            actions.append(self._update(*key, "REMOVE n", condition="attribute_exists(pk)")
                           if entry.note is None else
                           self._update(*key, "SET n = :n", {":n": S(entry.note)},
                                        "attribute_exists(pk)"))
        # atomic up to 100 items; a customer with more carts and orders is erased in
        # several transactions, the profile first
        for i in range(0, len(actions), MAX_ACTIONS):
            self._transact(actions[i:i + MAX_ACTIONS])

    async def erase_customer(self, customer: Customer, carts: list[Cart],
                             orders: list[Order], ledger: Sequence[LedgerEntry] = ()) -> None:
        await self._run(self._erase_customer, customer, carts, orders, ledger)

    # loyalty ---------------------------------------------------------------
    async def loyalty_account(self, customer_id: str) -> LoyaltyAccount:
        item = await self._run(self._get, f"Y#{customer_id}", "A")
        if not item:
            return LoyaltyAccount(customer_id=customer_id)
        return LoyaltyAccount(customer_id=customer_id, balance=_int(item, "bal"),
                              lifetime_base_points=_int(item, "lb"))

    def _loyalty_apply(self, entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
        for _ in range(8):
            applied, actions, debits = self._ledger_actions(entries)
            try:
                self._transact(actions)
                return applied
            except _Cancelled as exc:
                conflict = self._ledger_conflict(exc.reasons, 0, debits)
                if conflict is not None:
                    raise conflict from exc
                continue  # an id applied concurrently: read again, skip it
        raise Conflict("loyalty ledger keeps changing; retry")

    async def loyalty_apply(self, entries: Sequence[LedgerEntry]) -> list[LedgerEntry]:
        if not entries:
            return []
        return await self._run(self._loyalty_apply, entries)

    async def loyalty_ledger(self, customer_id: str) -> list[LedgerEntry]:
        items = await self._run(lambda: self._query(
            pk=f"Y#{customer_id}", sk_cond="begins_with(#sk, :e)", values={":e": S("E#")}))
        entries = [LedgerEntry(id=i["sk"]["S"][2:], customer_id=customer_id,
                               points=_int(i, "p"), kind=i["k"]["S"],  # type: ignore[arg-type]
                               order_id=i["o"]["S"] if "o" in i else None,
                               market=i["m"]["S"] if "m" in i else None,
                               at=_float(i, "at") or 0.0, base_points=_int(i, "bp"),
                               note=i["n"]["S"] if "n" in i else None) for i in items]
        return sorted(entries, key=lambda e: (e.at, e.id))

    # outbox and idempotency --------------------------------------------------
    def _pending(self, limit: int) -> list[Event]:
        args: dict[str, Any] = {
            "TableName": self.table_name, "ConsistentRead": True,
            "FilterExpression": "sk = :ev AND attribute_not_exists(dl)",
            "ExpressionAttributeValues": {":ev": S("EV")}}
        items: list[dict[str, Any]] = []
        while True:
            out = self.client.scan(**args)
            items += out.get("Items", [])
            if "LastEvaluatedKey" not in out:
                break
            args["ExclusiveStartKey"] = out["LastEvaluatedKey"]
        items.sort(key=lambda i: float(i["at"]["N"]))
        return [self.event_from_item(i) for i in items[:limit]]

    async def pending_events(self, limit: int = 100) -> list[Event]:
        """Undelivered outbox events, oldest first, by a Scan: on AWS the table's stream
        relays the outbox (kernel/aws/worker.py), so events carry no index a checkout would
        pay for; this serves an in-process relay (development) and operators."""
        return await self._run(self._pending, limit)

    def _mark_delivered(self, ids: list[str], at: float) -> None:
        for event_id in dict.fromkeys(ids):
            try:
                self.client.update_item(
                    TableName=self.table_name, Key=_key(f"EV#{event_id}", "EV"),
                    UpdateExpression="SET dl = :at, #ttl = :ttl",
                    ConditionExpression="attribute_exists(pk)",
                    ExpressionAttributeNames={"#ttl": "ttl"},
                    ExpressionAttributeValues={":at": N(at),
                                               ":ttl": N(int(at) + DELIVERED_TTL)})
            except Exception as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise

    async def mark_events_delivered(self, ids: list[str], at: float) -> None:
        if ids:
            await self._run(self._mark_delivered, ids, at)

    async def event_delivered(self, event_id: str) -> bool:
        """Whether an outbox event is marked delivered (or gone): the stream worker's check
        before it delivers a redelivered record again."""
        item = await self._run(self._get, f"EV#{event_id}", "EV")
        return item is None or "dl" in item

    @staticmethod
    def event_from_item(item: dict[str, Any]) -> Event:
        """An outbox item (as stored, or a stream image of it) as an :class:`Event`."""
        return Event(id=item["pk"]["S"][3:], type=item["ty"]["S"], market=item["mk"]["S"],
                     subject=item["sub"]["S"], at=float(item["at"]["N"]),
                     data=_dec_data.decode(item["data"]["S"]))

    async def get_idempotency(self, scope: str, key: str) -> IdempotencyRecord | None:
        item = await self._run(self._get, f"I#{scope}|{key}", "I")
        if not item:
            return None
        return IdempotencyRecord(scope=scope, key=key, request_hash=item["rh"]["S"],
                                 status=_int(item, "s"), body=bytes(item["b"]["B"]))

    # exchange rates ----------------------------------------------------------
    async def fx_rates(self) -> dict[str, dict[str, str]]:
        items = await self._run(lambda: self._query(pk="FX"))
        table: dict[str, dict[str, str]] = {}
        for item in items:
            base, currency = item["sk"]["S"].split("#", 1)
            table.setdefault(base, {})[currency] = item["r"]["S"]
        return table

    async def put_fx_rates(self, base: str, rates: dict[str, str], at: float) -> None:
        puts = [self._put({**_key("FX", f"{base}#{cur}"), "r": S(rate), "at": N(at)})
                for cur, rate in sorted(rates.items())]
        for i in range(0, len(puts), MAX_ACTIONS):
            await self._run(self._transact, puts[i:i + MAX_ACTIONS])
