"""The customer's profile over HTTP: PATCH /me, the address book, consents with their
history, and the GDPR/CCPA export and erase with plugins' own personal data.

Expectations come from what each test sends; a small CRM plugin (registered the way
tests register plugins: ``Registry({name: class})`` and enabled in two markets) holds
personal data of its own and answers the export and erase hooks.
"""

from __future__ import annotations

import time

import pytest

from kernel import hookimpl
from kernel.customers import CONSENT_TOPICS, MAX_ADDRESSES
from kernel.loyalty import LedgerEntry

from .helpers import ADDRESSES, assert_problem, new_cart, niaga_of, place_order

HOME = {"label": "home", "country": "ID", "region": "DKI Jakarta", "city": "Jakarta",
        "postal_code": "10110", "line1": "Jl. Kenanga No. 7", "name": "Maya Putri",
        "phone": "+62 811 1111 1111"}
OFFICE = {"label": "office", "country": "ID", "city": "Bandung", "postal_code": "40111",
          "line1": "Jl. Asia Afrika 8", "name": "Maya Putri"}
ADDRESS_FIELDS = ("label", "country", "region", "city", "postal_code", "line1", "name",
                  "email", "phone")


class CrmProbe:
    """Stands in for a CRM / newsletter plugin: it keeps, per market, the email of every
    customer whose cart it saw, and exports and erases that on request."""

    name = "crm-probe"
    family = "customer"
    records: dict[tuple[str, str], dict] = {}  # (market, customer id) -> what it holds
    erased_with: list[tuple[str, str | None]] = []  # (market, email the hook received)
    down = False  # the CRM's service is unreachable

    def __init__(self, market):
        self.market = market

    @hookimpl
    def niaga_cart_updated(self, cart, market):
        if cart.customer_id and cart.address and cart.address.email:
            self.records[(market.code, cart.customer_id)] = {
                "email": cart.address.email, "last_cart": cart.id}

    @hookimpl
    def niaga_customer_export(self, customer, market):
        if self.down:
            raise ConnectionError("crm.example.com unreachable")
        return self.records.get((market.code, customer.id))

    @hookimpl
    def niaga_customer_erase(self, customer, market):
        if self.down:
            raise ConnectionError("crm.example.com unreachable")
        self.erased_with.append((market.code, customer.email))
        self.records.pop((market.code, customer.id), None)


@pytest.fixture
def crm_client(seeded_url, open_store, admin_headers):
    """The app over the seeded store with the CRM probe enabled in ID and DE."""
    import tomllib

    from litestar.testing import TestClient

    from kernel.api.app import create_app
    from kernel.markets import demo_markets_path, parse_markets
    from kernel.plugins import Registry
    from kernel.runtime import Niaga

    CrmProbe.records, CrmProbe.erased_with, CrmProbe.down = {}, [], False
    raw = tomllib.loads(demo_markets_path().read_text(encoding="utf-8"))
    for code in ("ID", "DE"):
        raw["markets"][code]["plugins"]["crm-probe"] = {}
    niaga = Niaga(open_store(seeded_url), parse_markets(raw),
                  registry=Registry({"crm-probe": CrmProbe}))
    app = create_app(niaga, admin_token=admin_headers["Authorization"].removeprefix("Bearer "))
    with TestClient(app) as client:
        yield client
    CrmProbe.down = False


def _customer(client, admin_headers, email: str, name: str | None = None) -> dict:
    body = {"email": email} | ({"name": name} if name else {})
    r = client.post("/admin/customers", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    return r.json()


def _auth(customer: dict) -> dict[str, str]:
    return {"Authorization": f"Bearer {customer['token']}"}


def _me(client, customer: dict) -> dict:
    r = client.get("/me", headers=_auth(customer))
    assert r.status_code == 200, r.text
    return r.json()


def _add(client, customer: dict, address: dict) -> dict:
    r = client.post("/me/addresses", json=address, headers=_auth(customer))
    assert r.status_code == 201, r.text
    return r.json()


def _same_address(read: dict, sent: dict) -> bool:
    return all(read[f] == sent.get(f) for f in ADDRESS_FIELDS)


# -- profile -----------------------------------------------------------------------------


def test_a_second_customer_with_the_same_email_is_a_conflict_naming_email(client,
                                                                            admin_headers):
    _customer(client, admin_headers, "tari@example.com")
    r = client.post("/admin/customers", json={"email": "  Tari@Example.COM "},
                    headers=admin_headers)
    assert_problem(r, 409, "email")


def test_patch_me_edits_the_profile_and_get_me_keeps_its_fields(client, admin_headers):
    c = _customer(client, admin_headers, "Maya@Example.com", "Maya")
    before = _me(client, c)
    assert before["email"] == "maya@example.com" and before["name"] == "Maya"
    assert before["phone"] is None and before["locale"] is None
    assert before["addresses"] == [] and before["consent_history"] == []
    assert set(before["consents"]) == set(CONSENT_TOPICS)
    assert all(v == {"granted": False, "changed_at": None, "channel": None}
               for v in before["consents"].values())

    r = client.patch("/me", json={"name": "Maya Putri", "phone": "+62 811 1111 1111",
                                  "locale": "id-ID"}, headers=_auth(c))
    assert r.status_code == 200, r.text
    patched = r.json()
    assert (patched["name"], patched["phone"], patched["locale"]) == (
        "Maya Putri", "+62 811 1111 1111", "id-ID")
    assert patched["email"] == "maya@example.com" and patched["loyalty"] == before["loyalty"]
    assert _me(client, c) == patched

    # a field not given stays; null clears it
    r = client.patch("/me", json={"phone": None}, headers=_auth(c))
    assert r.status_code == 200, r.text
    assert (r.json()["name"], r.json()["phone"], r.json()["locale"]) == (
        "Maya Putri", None, "id-ID")

    # bad input names the field and changes nothing
    kept = _me(client, c)
    for body, status, field in (
            ({"phone": "call me maybe"}, 400, "phone"),
            ({"locale": "xx-XX"}, 422, "locale"),
            ({"locale": "not a locale"}, 400, "locale"),
            ({"name": "x" * 201}, 400, "name"),
            ({"email": "new@example.com"}, 400, "email"),  # the natural key: not editable
            ({"consents": {"marketing_fax": True}}, 400, "consents"),
            ({"consents": {"marketing_email": "yes"}}, 400, "consents"),
    ):
        assert_problem(client.patch("/me", json=body, headers=_auth(c)), status, field)
    assert _me(client, c) == kept
    assert_problem(client.patch("/me", json={"name": "x"}), 401)


def test_consents_record_when_and_from_which_channel_they_changed(client, admin_headers):
    c = _customer(client, admin_headers, "rudi@example.com")
    t0 = time.time()
    r = client.patch("/me", json={"consents": {"marketing_email": True,
                                               "marketing_whatsapp": True}},
                     headers=_auth(c) | {"Niaga-Channel": "app"})
    assert r.status_code == 200, r.text
    t1 = time.time()
    consents = r.json()["consents"]
    for topic in ("marketing_email", "marketing_whatsapp"):
        assert consents[topic]["granted"] is True and consents[topic]["channel"] == "app"
        assert t0 <= consents[topic]["changed_at"] <= t1
    assert consents["marketing_sms"] == {"granted": False, "changed_at": None, "channel": None}

    # revoked at the counter; whatsapp sent again unchanged: no new entry for it
    r = client.patch("/me", json={"consents": {"marketing_email": False,
                                               "marketing_whatsapp": True}},
                     headers=_auth(c) | {"Niaga-Channel": "pos"})
    assert r.status_code == 200, r.text
    me = r.json()
    assert me["consents"]["marketing_email"]["granted"] is False
    assert me["consents"]["marketing_email"]["channel"] == "pos"
    assert me["consents"]["marketing_whatsapp"] == consents["marketing_whatsapp"]
    history = [(h["topic"], h["granted"], h["channel"]) for h in me["consent_history"]]
    assert sorted(history[:2]) == [("marketing_email", True, "app"),
                                   ("marketing_whatsapp", True, "app")]
    assert history[2:] == [("marketing_email", False, "pos")]
    ats = [h["at"] for h in me["consent_history"]]
    assert ats == sorted(ats)

    # an unknown channel is refused, naming the header, and nothing changes
    assert_problem(client.patch("/me", json={"consents": {"marketing_sms": True}},
                                headers=_auth(c) | {"Niaga-Channel": "fax"}),
                   422, "Niaga-Channel")
    assert _me(client, c)["consent_history"] == me["consent_history"]


# -- the address book --------------------------------------------------------------------


def test_address_book_create_replace_delete_and_the_default(client, admin_headers):
    c = _customer(client, admin_headers, "dian@example.com")
    home = _add(client, c, HOME)
    assert _same_address(home, HOME) and home["default"] is True  # the first is the default
    office = _add(client, c, OFFICE)
    assert _same_address(office, OFFICE) and office["default"] is False
    assert home["id"] != office["id"]
    assert [a["id"] for a in _me(client, c)["addresses"]] == [home["id"], office["id"]]

    # a new default takes the flag from the old one
    third = _add(client, c, {"country": "DE", "city": "Berlin", "default": True})
    flags = {a["id"]: a["default"] for a in _me(client, c)["addresses"]}
    assert flags == {home["id"]: False, office["id"]: False, third["id"]: True}

    # PUT replaces every field, keeps the id and (not given) the flag
    moved = {"label": "office", "country": "ID", "city": "Surabaya", "line1": "Jl. Tunjungan 1"}
    r = client.put(f"/me/addresses/{office['id']}", json=moved, headers=_auth(c))
    assert r.status_code == 200, r.text
    assert r.json()["id"] == office["id"] and _same_address(r.json(), moved)
    assert r.json()["default"] is False
    r = client.put(f"/me/addresses/{office['id']}", json=moved | {"default": True},
                   headers=_auth(c))
    assert r.status_code == 200 and r.json()["default"] is True
    assert [a["id"] for a in _me(client, c)["addresses"] if a["default"]] == [office["id"]]

    # deleting the default makes the oldest remaining one the default
    r = client.delete(f"/me/addresses/{office['id']}", headers=_auth(c))
    assert r.status_code == 204, r.text
    left = _me(client, c)["addresses"]
    assert [(a["id"], a["default"]) for a in left] == [(home["id"], True), (third["id"], False)]

    # unknown ids and bad input: named, nothing changed
    assert_problem(client.delete(f"/me/addresses/{office['id']}", headers=_auth(c)), 404)
    assert_problem(client.put("/me/addresses/nope", json=HOME, headers=_auth(c)), 404)
    for bad, field in ((HOME | {"country": "Indonesia"}, "country"),
                       ({"city": "Jakarta"}, "country"),
                       (HOME | {"postal_code": "1" * 21}, "postal_code"),
                       (HOME | {"email": "nope"}, "email"),
                       (HOME | {"colour": "red"}, "colour")):
        assert_problem(client.post("/me/addresses", json=bad, headers=_auth(c)), 400, field)
        assert_problem(client.put(f"/me/addresses/{home['id']}", json=bad, headers=_auth(c)),
                       400, field)
    assert _me(client, c)["addresses"] == left
    assert_problem(client.post("/me/addresses", json=HOME), 401)


def test_the_address_book_has_a_maximum(client, admin_headers):
    c = _customer(client, admin_headers, "penuh@example.com")
    for i in range(MAX_ADDRESSES):
        _add(client, c, {"country": "ID", "line1": f"Jl. Nomor {i}"})
    r = client.post("/me/addresses", json=HOME, headers=_auth(c))
    assert_problem(r, 422, "addresses")
    assert len(_me(client, c)["addresses"]) == MAX_ADDRESSES


def test_a_customer_cannot_touch_another_customers_addresses(client, admin_headers):
    a = _customer(client, admin_headers, "a@example.com")
    b = _customer(client, admin_headers, "b@example.com")
    mine = _add(client, a, HOME)
    before = _me(client, a)
    assert_problem(client.put(f"/me/addresses/{mine['id']}", json=OFFICE, headers=_auth(b)),
                   404)
    assert_problem(client.delete(f"/me/addresses/{mine['id']}", headers=_auth(b)), 404)
    assert _me(client, a) == before
    assert _me(client, b)["addresses"] == []


# -- export and erase --------------------------------------------------------------------


def _export(client, admin_headers, customer: dict) -> dict:
    r = client.get(f"/admin/customers/{customer['id']}/export", headers=admin_headers)
    assert r.status_code == 200, r.text
    return r.json()


def _grant(client, customer: dict, points: int, note: str) -> None:
    async def run() -> None:
        await niaga_of(client).store.loyalty_apply([LedgerEntry(
            id=f"goodwill:{customer['id']}", customer_id=customer["id"], points=points,
            kind="adjust", note=note, at=time.time())])

    client.blocking_portal.call(run)


def test_export_holds_everything_and_erase_leaves_nothing_personal(crm_client, admin_headers):
    client = crm_client
    c = _customer(client, admin_headers, "maya@example.com", "Maya Putri")
    other = _customer(client, admin_headers, "other@example.com")
    client.patch("/me", json={"phone": "+62 811 1111 1111", "locale": "id-ID",
                              "consents": {"marketing_email": True}},
                 headers=_auth(c) | {"Niaga-Channel": "web"})
    home = _add(client, c, HOME)
    order = place_order(client, "ID", {"TEA-JAVA-BLACK": 1}, headers=_auth(c))
    open_cart = new_cart(client, "DE", headers=_auth(c))
    r = client.put(f"/carts/{open_cart['id']}/address", json=ADDRESSES["DE"])
    assert r.status_code == 200, r.text
    place_order(client, "ID", {"TEA-JAVA-BLACK": 1}, headers=_auth(other))
    note = "goodwill: Maya Putri complained about a late parcel"
    _grant(client, c, 40, note)
    client.blocking_portal.call(niaga_of(client).dispatcher.drain)

    export = _export(client, admin_headers, c)
    profile = export["customer"]
    assert (profile["id"], profile["email"], profile["name"], profile["phone"],
            profile["locale"]) == (c["id"], "maya@example.com", "Maya Putri",
                                   "+62 811 1111 1111", "id-ID")
    assert [a["id"] for a in profile["addresses"]] == [home["id"]]
    assert _same_address(profile["addresses"][0], HOME)
    assert profile["consents"]["marketing_email"]["granted"] is True
    assert [(h["topic"], h["granted"], h["channel"]) for h in profile["consent_history"]] == [
        ("marketing_email", True, "web")]
    assert {cart["id"] for cart in export["carts"]} == {order["cart_id"], open_cart["id"]}
    assert [o["id"] for o in export["orders"]] == [order["id"]]
    ledger = export["loyalty"]["ledger"]
    assert {e["customer_id"] for e in ledger} == {c["id"]}
    assert note in [e["note"] for e in ledger]
    assert export["loyalty"]["account"]["balance"] == sum(e["points"] for e in ledger)
    # each market's plugin instance answers for itself, under its name and market
    assert export["plugins"] == {"crm-probe": {
        "ID": {"email": ADDRESSES["ID"]["email"], "last_cart": order["cart_id"]},
        "DE": {"email": ADDRESSES["DE"]["email"], "last_cart": open_cart["id"]}}}
    assert "token_hash" not in export["customer"] and c["token"] not in str(export)
    assert other["id"] not in str(export)

    r = client.delete(f"/admin/customers/{c['id']}", headers=admin_headers)
    assert r.status_code == 204, r.text
    # the plugins were told in every market, with the profile as it was
    assert sorted(CrmProbe.erased_with) == [("DE", "maya@example.com"),
                                            ("ID", "maya@example.com")]
    assert not [k for k in CrmProbe.records if k[1] == c["id"]]
    assert (("ID", other["id"]) in CrmProbe.records)  # nobody else's data

    # the token is dead on every customer route
    assert_problem(client.get("/me", headers=_auth(c)), 401)
    assert_problem(client.patch("/me", json={"name": "Back"}, headers=_auth(c)), 401)
    assert_problem(client.post("/me/addresses", json=HOME, headers=_auth(c)), 401)
    assert_problem(client.delete(f"/me/addresses/{home['id']}", headers=_auth(c)), 401)

    after = _export(client, admin_headers, c)
    text = str(after)
    personal = ["maya@example.com", "Maya Putri", "+62 811 1111 1111", note,
                *(HOME[f] for f in ("line1", "phone", "postal_code", "label")),
                *(ADDRESSES[m][f] for m in ("ID", "DE") for f in ("name", "email", "line1"))]
    for value in personal:
        assert value not in text, value
    erased = after["customer"]
    assert erased["erased"] is True and erased["addresses"] == []
    assert erased["consents"] == {} and erased["consent_history"] == []
    assert erased["email"] is None and erased["phone"] is None and erased["locale"] is None
    assert after["plugins"] == {}
    # the books keep every movement: same ids and points, no free text
    assert [(e["id"], e["points"], e["kind"], e["order_id"]) for e in after["loyalty"]["ledger"]
            ] == [(e["id"], e["points"], e["kind"], e["order_id"]) for e in ledger]
    # a person's free text (adjust notes) goes; the kernel's own notes (order numbers) stay
    assert [e["note"] for e in after["loyalty"]["ledger"]] == [
        None if e["kind"] == "adjust" else e["note"] for e in ledger]
    assert any(e["kind"] == "earn" and e["note"] for e in ledger)
    assert after["loyalty"]["account"] == export["loyalty"]["account"]
    # orders stay, anonymised; carts lose their addresses
    assert [o["id"] for o in after["orders"]] == [order["id"]]
    assert after["orders"][0]["total"] == export["orders"][0]["total"]
    assert all(cart["address"] is None for cart in after["carts"])
    # the email is free again
    _customer(client, admin_headers, "maya@example.com")


def test_the_crm_probe_is_a_conformant_customer_plugin():
    from kernel.testing import check_plugin_conformance

    assert check_plugin_conformance(CrmProbe) == []


def test_a_failing_plugin_fails_the_export_but_not_the_erasure(crm_client, admin_headers):
    client = crm_client
    c = _customer(client, admin_headers, "gagal@example.com", "Gagal")
    cart = new_cart(client, "ID", headers=_auth(c))
    assert client.put(f"/carts/{cart['id']}/address", json=ADDRESSES["ID"]).status_code == 200
    assert ("ID", c["id"]) in CrmProbe.records

    CrmProbe.down = True
    # an export missing a plugin's part must not pass as complete
    body = assert_problem(client.get(f"/admin/customers/{c['id']}/export",
                                     headers=admin_headers), 502)
    assert "crm-probe" in body["detail"]
    # erasure goes on (notify): the kernel's data is gone, the plugin's is not yet
    assert client.delete(f"/admin/customers/{c['id']}", headers=admin_headers).status_code == 204
    assert_problem(client.get("/me", headers=_auth(c)), 401)
    assert ("ID", c["id"]) in CrmProbe.records

    # erasing again once the plugin is back finishes it, keyed by the customer id
    CrmProbe.down = False
    assert client.delete(f"/admin/customers/{c['id']}", headers=admin_headers).status_code == 204
    assert sorted(CrmProbe.erased_with) == [("DE", None), ("ID", None)]  # both markets
    assert ("ID", c["id"]) not in CrmProbe.records
    after = _export(client, admin_headers, c)
    assert after["plugins"] == {} and after["customer"]["erased"] is True
    assert "gagal@example.com" not in str(after) and "Gagal" not in str(after)
