"""Storage contract: products and locations."""

from __future__ import annotations

from kernel.money import Money


async def test_product_round_trip_is_exact(store, build):
    product = build.product(
        "BATIK-SHIRT-M", tax_class="reduced", weight_grams=250,
        descriptions={"en-US": "Hand-stamped “parang” motif", "ja-JP": "天然インディゴ"},
        attributes={"size": "M", "colour": "indigo", "material": "100% cotton"},
    )
    await store.put_product(product)

    got = await store.get_products(["BATIK-SHIRT-M"])
    assert got == {"BATIK-SHIRT-M": product}
    assert got["BATIK-SHIRT-M"].prices["JP"] == Money(2480, "JPY")
    assert got["BATIK-SHIRT-M"].prices["ID"] == Money(12_900_000, "IDR")
    assert await store.list_products() == [product]


async def test_put_product_replaces(store, build):
    await store.put_product(build.product("SKU-A", eur=1000, attributes={"old": "yes"}))
    newer = build.product("SKU-A", eur=1250, attributes={"new": "yes"})
    await store.put_product(newer)

    assert await store.get_products(["SKU-A"]) == {"SKU-A": newer}
    assert await store.list_products() == [newer]


async def test_delete_product_reports_whether_it_existed(store, build):
    await store.put_product(build.product("SKU-A"))
    await store.put_product(build.product("SKU-B"))

    assert await store.delete_product("SKU-A") is True
    assert await store.delete_product("SKU-A") is False
    assert await store.delete_product("NEVER-EXISTED") is False
    assert await store.get_products(["SKU-A"]) == {}
    assert [p.sku for p in await store.list_products()] == ["SKU-B"]


async def test_get_products_omits_unknown_skus(store, build):
    a, b = build.product("SKU-A"), build.product("SKU-B")
    await store.put_product(a)
    await store.put_product(b)

    assert await store.get_products(["SKU-A", "NOPE", "SKU-B", "SKU-A"]) == {"SKU-A": a,
                                                                           "SKU-B": b}
    assert await store.get_products(["NOPE"]) == {}
    assert await store.get_products([]) == {}
    assert await store.get_products(iter(["SKU-B"])) == {"SKU-B": b}  # any iterable


async def test_list_products_lists_every_product(store, build):
    products = [build.product(f"SKU-{i:02d}", eur=100 + i) for i in range(12)]
    for p in reversed(products):
        await store.put_product(p)
    listed = await store.list_products()
    assert sorted(listed, key=lambda p: p.sku) == products
    assert not await store.is_empty()


async def test_is_empty_on_a_fresh_store(store):
    assert await store.is_empty()
    assert await store.list_products() == []


async def test_locations_round_trip_and_filter_by_market(store, build):
    lej = build.location("de-lej-wh", ["DE"])
    ber = build.location("de-ber-store", ["DE"], kind="store")
    hub = build.location("sg-hub", ["ID", "JP"], country="SG")
    for loc in (lej, ber, hub):
        await store.put_location(loc)

    by_id = {loc.id: loc for loc in await store.list_locations()}
    assert by_id == {"de-lej-wh": lej, "de-ber-store": ber, "sg-hub": hub}
    assert sorted(loc.id for loc in await store.list_locations("DE")) == ["de-ber-store",
                                                                          "de-lej-wh"]
    assert [loc.id for loc in await store.list_locations("JP")] == ["sg-hub"]
    assert [loc.id for loc in await store.list_locations("ID")] == ["sg-hub"]
    assert await store.list_locations("US") == []


async def test_put_location_replaces(store, build):
    await store.put_location(build.location("de-ber-store", ["DE"], kind="store"))
    moved = build.location("de-ber-store", ["DE", "JP"], kind="warehouse")
    await store.put_location(moved)

    assert await store.list_locations() == [moved]
    assert await store.list_locations("JP") == [moved]
