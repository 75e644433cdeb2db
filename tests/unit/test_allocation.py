"""kernel.inventory.default_allocation: pickup → that store; ship → one warehouse with it
all, else one store with it all (ship-from-store), else a split, else None."""

from __future__ import annotations

from kernel.catalog import Location
from kernel.inventory import AllocationRequest, StockLevel, default_allocation, shortfalls
from kernel.orders import Allocated

WH_A = Location(id="wh-a", name="A", kind="warehouse", markets=["ID"], country="ID")
WH_B = Location(id="wh-b", name="B", kind="warehouse", markets=["ID"], country="ID")
STORE_1 = Location(id="st-1", name="1", kind="store", markets=["ID"], country="ID")
STORE_2 = Location(id="st-2", name="2", kind="store", markets=["ID"], country="ID")


def request(needs: dict[str, int], stock: dict[tuple[str, str], int], *,
            kind: str = "ship", pickup: str | None = None,
            locations: list[Location] | None = None,
            reserved: dict[tuple[str, str], int] | None = None) -> AllocationRequest:
    reserved = reserved or {}
    return AllocationRequest(
        market="ID", needs=needs, kind=kind, pickup_location_id=pickup,
        # stores listed first on purpose: the rule, not the order given, prefers warehouses
        locations=locations or [STORE_2, STORE_1, WH_B, WH_A],
        stock={key: StockLevel(sku=key[0], location_id=key[1], on_hand=q,
                               reserved=reserved.get(key, 0))
               for key, q in stock.items()})


def as_set(result: list[Allocated] | None) -> set[tuple[str, str, int]] | None:
    return None if result is None else {(a.sku, a.location_id, a.quantity) for a in result}


def test_pickup_takes_everything_from_that_store():
    req = request({"X": 2, "Y": 1}, {("X", "st-1"): 2, ("Y", "st-1"): 5, ("X", "wh-a"): 99,
                                     ("Y", "wh-a"): 99}, kind="pickup", pickup="st-1")
    assert as_set(default_allocation(req)) == {("X", "st-1", 2), ("Y", "st-1", 1)}


def test_pickup_is_none_when_that_store_lacks_stock_even_if_a_warehouse_has_it():
    stock = {("X", "st-1"): 3, ("X", "wh-a"): 99}
    # reserved units are not available: 3 on hand, 2 held leaves 1 < 2
    req = request({"X": 2}, stock, kind="pickup", pickup="st-1", reserved={("X", "st-1"): 2})
    assert default_allocation(req) is None
    assert default_allocation(request({"X": 4}, stock, kind="pickup", pickup="st-1")) is None


def test_ship_prefers_a_warehouse_that_has_it_all():
    stock = {("X", "st-1"): 10, ("Y", "st-1"): 10,  # a store could, but a warehouse goes first
             ("X", "wh-a"): 1, ("Y", "wh-a"): 10,  # wh-a lacks X
             ("X", "wh-b"): 3, ("Y", "wh-b"): 4}
    req = request({"X": 3, "Y": 4}, stock)
    assert as_set(default_allocation(req)) == {("X", "wh-b", 3), ("Y", "wh-b", 4)}


def test_ship_from_store_when_no_warehouse_has_it_all():
    stock = {("X", "wh-a"): 2, ("Y", "wh-a"): 9, ("X", "st-2"): 5, ("Y", "st-2"): 5}
    req = request({"X": 3, "Y": 5}, stock)
    assert as_set(default_allocation(req)) == {("X", "st-2", 3), ("Y", "st-2", 5)}


def test_split_across_locations_when_no_single_one_can_fill_it():
    stock = {("X", "wh-a"): 2, ("X", "wh-b"): 1, ("X", "st-1"): 4, ("Y", "st-2"): 1}
    req = request({"X": 5, "Y": 1}, stock)
    result = default_allocation(req)
    # warehouses are drained first, in id order, then stores
    assert as_set(result) == {("X", "wh-a", 2), ("X", "wh-b", 1), ("X", "st-1", 2),
                              ("Y", "st-2", 1)}
    assert sum(a.quantity for a in result if a.sku == "X") == 5


def test_none_when_the_market_cannot_cover_it():
    stock = {("X", "wh-a"): 2, ("X", "st-1"): 2}
    req = request({"X": 5}, stock, reserved={("X", "st-1"): 1})
    assert default_allocation(req) is None
    assert shortfalls(req) == {"X": 3}


def test_a_ship_from_store_option_naming_a_location_allocates_there():
    # a courier option leaving from a store names it, like a pickup
    stock = {("X", "wh-a"): 9, ("X", "st-2"): 1}
    req = request({"X": 1}, stock, kind="ship", pickup="st-2")
    assert as_set(default_allocation(req)) == {("X", "st-2", 1)}
