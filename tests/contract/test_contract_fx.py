"""Exchange rates set by the merchant: stored, replaced per pair, shared by every process."""

from __future__ import annotations


async def test_rates_round_trip_and_replace_per_pair(store):
    assert await store.fx_rates() == {}
    await store.put_fx_rates("IDR", {"USD": "0.000063", "EUR": "0.000058"}, 1.0)
    await store.put_fx_rates("EUR", {"JPY": "162.5"}, 2.0)
    await store.put_fx_rates("IDR", {"USD": "0.000064"}, 3.0)  # EUR from IDR untouched
    assert await store.fx_rates() == {"IDR": {"USD": "0.000064", "EUR": "0.000058"},
                                      "EUR": {"JPY": "162.5"}}
