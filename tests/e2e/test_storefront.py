"""The example storefront (examples/storefront) end to end: a real ``niaga serve --storefront``
driven in headless Chromium through Selenium, its answers checked against the API's own.

The browser is Debian's ``chromium`` with its ``chromedriver`` (``.ci/install-browser``
installs both; ``NIAGA_CHROMIUM`` / ``NIAGA_CHROMEDRIVER`` point elsewhere). The driver is
named explicitly, so Selenium Manager never downloads anything. Without a browser the
browser tests skip locally and fail under CI (``CI`` set), like the PostgreSQL suites.

The first tests need no browser: what ``--storefront`` mounts, and what it keeps out of the
OpenAPI document and of the Lambda API's imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from kernel import cli
from kernel.api.app import create_app
from kernel.api.shop import StorefrontNotFound, default_dir, resolve_dir, storefront_routes
from kernel.markets import demo_markets_path, load_markets
from kernel.runtime import Niaga
from kernel.store.sql import SqlStore
from tests.serving import niaga_serve

ROOT = Path(__file__).resolve().parents[2]
SHOP = ROOT / "examples" / "storefront"
CHROMIUM = os.environ.get("NIAGA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("NIAGA_CHROMEDRIVER", "/usr/bin/chromedriver")
WAIT_S = 20


# -- the static mount, without a browser -----------------------------------------------------


def _app(tmp_path: Path, **kw: Any):
    niaga = Niaga(SqlStore(str(tmp_path / "x.sqlite")), load_markets(demo_markets_path()))
    return create_app(niaga, admin_token="adm_x", **kw)


def test_storefront_is_served_at_shop_and_kept_out_of_the_schema(tmp_path: Path) -> None:
    app = _app(tmp_path, extra_route_handlers=storefront_routes(SHOP))
    with TestClient(app) as client:
        root = client.get("/", follow_redirects=False)
        assert root.status_code == 307 and root.headers["location"] == "/shop/"
        bare = client.get("/shop?x=1", follow_redirects=False)  # relative URLs need the slash
        assert bare.status_code == 308 and bare.headers["location"] == "/shop/?x=1"
        page = client.get("/shop/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert '<script type="module" src="app.js">' in page.text
        script = client.get("/shop/app.js")
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]  # ES modules need a JS type
        assert client.get("/shop/style.css").headers["content-type"].startswith("text/css")
        assert client.get("/shop/nothing.js").status_code == 404
        assert client.get("/shop/%2e%2e/%2e%2e/pyproject.toml").status_code == 404
        paths = client.get("/schema/openapi.json").json()["paths"]
    assert paths and not [p for p in paths if p == "/" or p.startswith("/shop")]


def test_without_the_flag_nothing_is_mounted(tmp_path: Path) -> None:
    with TestClient(_app(tmp_path)) as client:
        assert client.get("/", follow_redirects=False).status_code == 404
        assert client.get("/shop/").status_code == 404


def test_the_default_directory_and_clear_errors(tmp_path: Path, capsys) -> None:
    assert default_dir() == SHOP  # the source checkout's, whatever the current directory
    assert resolve_dir(None) == SHOP and resolve_dir("") == SHOP
    assert resolve_dir(str(SHOP)) == SHOP
    with pytest.raises(StorefrontNotFound, match=r"no index\.html"):
        resolve_dir(str(tmp_path))
    with pytest.raises(StorefrontNotFound, match="not a directory"):
        resolve_dir(str(tmp_path / "missing"))
    # the CLI says so and exits 1 before touching any store
    assert cli.main(["serve", "--storefront", str(tmp_path / "missing"),
                     "--db", str(tmp_path / "s.sqlite")]) == 1
    assert "--storefront:" in capsys.readouterr().err
    assert not (tmp_path / "s.sqlite").exists()
    with pytest.raises(SystemExit) as exc:
        cli.main(["serve", "--aws-local", "--storefront"])
    assert exc.value.code == 2
    assert "--storefront cannot be used with --aws-local" in capsys.readouterr().err


def test_serve_help_documents_the_flag(capsys) -> None:
    with pytest.raises(SystemExit):
        cli.main(["serve", "--help"])
    assert "--storefront [DIR]" in capsys.readouterr().out


def test_the_lambda_api_does_not_import_the_storefront() -> None:
    code = ("import sys, kernel.aws.api; "
            "sys.exit(1 if 'kernel.api.shop' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr or "kernel.aws.api imported kernel.api.shop"


# -- a real server and a real browser ---------------------------------------------------------


def _missing_browser() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        return (f"no {' or '.join(missing)}: run .ci/install-browser (as root: apt-get "
                "install -y chromium chromium-driver), or set NIAGA_CHROMIUM and "
                "NIAGA_CHROMEDRIVER")
    return None


@pytest.fixture(scope="module")
def browser_ready() -> None:
    reason = _missing_browser()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"the storefront's e2e test needs a browser under CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(scope="module")
def server(browser_ready, tmp_path_factory) -> Iterator[str]:
    """``niaga serve --storefront`` in an empty directory: the default DIR is found through
    the installed kernel, the store is a fresh SQLite file with the demo data."""
    cwd = tmp_path_factory.mktemp("shop")
    env = {**os.environ, "NIAGA_ADMIN_TOKEN": "dev-admin"}
    with niaga_serve(["--storefront"], cwd=cwd, env=env) as (base, _):
        yield base


@pytest.fixture
def driver(browser_ready) -> Iterator[Any]:
    """A fresh headless Chromium per test (an empty profile: no cart in localStorage)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1600", "--no-first-run", "--disable-extensions"):
        options.add_argument(arg)
    browser = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    browser.set_page_load_timeout(WAIT_S)
    try:
        yield browser
    finally:
        browser.quit()


def api(base: str, path: str, body: Any = None, method: str | None = None,
        **headers: str) -> Any:
    """The API's own answer (a problem+json body on an error status)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, method=method, headers={
        "Content-Type": "application/json", "Niaga-Channel": "web",
        **{k.replace("_", "-"): v for k, v in headers.items()}})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return json.load(r)
    except urllib.error.HTTPError as exc:
        return json.load(exc)


class Shop:
    """The page, through its ``data-test`` hooks."""

    def __init__(self, driver: Any, base: str) -> None:
        from selenium.common.exceptions import (
            NoSuchElementException,
            StaleElementReferenceException,
        )
        from selenium.webdriver.support.ui import WebDriverWait

        self.d, self.base = driver, base
        # the page re-renders the cart from each answer: an element may go between two looks
        self.wait = WebDriverWait(driver, WAIT_S, ignored_exceptions=(
            NoSuchElementException, StaleElementReferenceException))

    def css(self, selector: str, root: Any = None) -> Any:
        from selenium.webdriver.common.by import By

        return (root or self.d).find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str, root: Any = None) -> list[Any]:
        from selenium.webdriver.common.by import By

        return (root or self.d).find_elements(By.CSS_SELECTOR, selector)

    def idle(self) -> None:
        """Loaded, and nothing queued or in flight (``<body data-pending="0">``)."""
        self.wait.until(lambda d: d.execute_script(
            "return document.body.dataset.ready === '1' && document.body.dataset.pending === '0'"))

    def until(self, condition, message: str = "") -> Any:
        return self.wait.until(lambda d: condition(), message)

    def open(self, path: str = "/") -> None:
        self.d.get(self.base + path)
        self.idle()

    def choose(self, test: str, value: str) -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.css(f'[data-test="{test}"]')).select_by_value(value)
        self.idle()

    def product(self, sku: str) -> Any:
        return self.css(f'[data-test="product"][data-sku="{sku}"]')

    def add(self, sku: str) -> None:
        before = self.cart_quantity()
        self.css('[data-test="add"]', self.product(sku)).click()
        self.until(lambda: self.cart_quantity() == before + 1, f"{sku} not added")
        self.idle()

    def cart_quantity(self) -> int:
        return int(self.css('[data-test="cart-count"]').text or 0)

    def line(self, sku: str) -> Any:
        return self.css(f'[data-test="cart-line"][data-sku="{sku}"]')

    def set_quantity(self, sku: str, quantity: int) -> None:
        from selenium.webdriver.common.keys import Keys

        field = self.css('[data-test="qty"]', self.line(sku))
        # as a shopper does it: select what is there, type over it, leave the field (the
        # change event); WebDriver's clear() would send a change of its own
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(str(quantity), Keys.TAB)
        self.idle()
        if quantity:
            self.until(lambda: self.css('[data-test="qty"]', self.line(sku))
                       .get_attribute("value") == str(quantity))
        else:
            self.until(lambda: not self.all(f'[data-test="cart-line"][data-sku="{sku}"]'))

    def amount(self, test: str) -> str:
        return self.css(f'[data-test="{test}"]').get_attribute("data-amount")

    def text(self, test: str) -> str:
        return self.css(f'[data-test="{test}"]').text.replace("\u00a0", " ")

    def stored(self) -> dict[str, Any]:
        return json.loads(self.d.execute_script(
            "return localStorage.getItem('niaga.storefront') || '{}'"))

    def cart_id(self, market: str) -> str:
        return self.stored()["carts"][market]

    def ship_to(self, **address: str) -> None:
        self.css('[data-test="kind-ship"]').click()
        self.until(lambda: self.css('[data-test="address-form"]').is_displayed())
        for key, value in address.items():
            field = self.css(f'[data-test="address-form"] [name="{key}"]')
            if field.tag_name == "select":
                from selenium.webdriver.support.ui import Select

                Select(field).select_by_value(value)
            else:
                field.clear()
                field.send_keys(value)
        self.css('[data-test="save-address"]').click()
        self.idle()

    def pick_up(self) -> None:
        self.css('[data-test="kind-pickup"]').click()
        self.idle()

    def options(self) -> dict[str, Any]:
        self.until(lambda: self.all('[data-test="delivery-option"]'), "no delivery options")
        return {o.get_attribute("data-option-id"): o
                for o in self.all('[data-test="delivery-option"]')}

    def choose_option(self, option_id: str) -> None:
        self.css('input', self.options()[option_id]).click()
        self.until(lambda: self.css('[data-test="pay"]').is_displayed(), "payment not shown")
        self.idle()

    def pay(self, token: str | None = None) -> None:
        if token is not None:
            field = self.css('[data-test="token"]')
            field.clear()
            field.send_keys(token)
        self.css('[data-test="pay"]').click()
        self.idle()

    def order_id(self) -> str:
        self.until(lambda: self.css('[data-test="order-view"]').is_displayed(), "no order page")
        self.idle()
        return self.css('[data-test="order-view"]').get_attribute("data-order-id")


def assert_page_matches_order(shop: Shop, order: dict[str, Any]) -> None:
    """Status, lines and every total the order page shows are the API's."""
    assert shop.text("order-status") == order["status"]
    assert shop.text("order-number") == order["number"]
    for key in ("subtotal", "shipping", "tax", "total"):
        field = {"shipping": "shipping_total", "tax": "tax_total"}.get(key, key)
        assert shop.amount(f"order-{key}") == order[field]["amount"], key
    rows = {r.get_attribute("data-sku"): int(shop.css('[data-test="order-qty"]', r).text)
            for r in shop.all('[data-test="order-line"]')}
    assert rows == {line["sku"]: line["quantity"] for line in order["lines"]}


def test_a_courier_order_in_indonesia(server: str, driver: Any) -> None:
    shop = Shop(driver, server)
    shop.open("/")  # redirected to /shop/
    assert driver.current_url == f"{server}/shop/"
    shop.choose("market", "ID")
    shop.choose("locale", "en-US")

    # the catalog as the API lists it for that market and locale, prices as it formats them
    catalog = api(server, "/products?market=ID&locale=en-US")
    for product in catalog:
        card = shop.product(product["sku"])
        assert shop.css('[data-test="product-name"]', card).text == product["name"]
        price = shop.css('[data-test="price"]', card)
        assert price.get_property("textContent") == product["price"]["display"]
        assert price.get_attribute("data-amount") == product["price"]["amount"]
    assert driver.execute_script("return document.documentElement.lang") == "en-US"

    # the README's cart: two batik shirts and a bag of coffee
    shop.add("BATIK-SHIRT-M")
    shop.add("COFFEE-GAYO-250")
    assert len(shop.all('[data-test="cart-line"]')) == 2
    shop.set_quantity("BATIK-SHIRT-M", 3)
    shop.set_quantity("BATIK-SHIRT-M", 2)
    cart_id = shop.cart_id("ID")
    cart = api(server, f"/carts/{cart_id}")
    assert {line["sku"]: line["quantity"] for line in cart["lines"]} == {
        "BATIK-SHIRT-M": 2, "COFFEE-GAYO-250": 1}
    assert shop.amount("cart-total") == cart["total"]["amount"] == "673000.00"
    assert shop.amount("cart-tax") == cart["tax_total"]["amount"]
    assert "673,000.00" in shop.text("cart-total")  # formatted for en-US

    # a reload keeps the cart (its id is in localStorage), and the market and locale
    shop.open("/shop/")
    assert shop.cart_id("ID") == cart_id
    assert shop.cart_quantity() == 3
    assert shop.css('[data-test="market"]').get_attribute("value") == "ID"
    assert shop.css('[data-test="locale"]').get_attribute("value") == "en-US"

    shop.ship_to(name="Sari", email="sari@example.com", line1="Jl. M.H. Thamrin 1",
                 city="Jakarta", region="DKI Jakarta", postal_code="10310", country="ID")
    options = shop.options()
    assert all(o.get_attribute("data-kind") == "ship" for o in options.values())
    assert set(options) == {o["id"] for o in api(server, f"/carts/{cart_id}/delivery-options")
                            if o["kind"] == "ship"}
    shop.choose_option("flat-rate:regular")
    assert api(server, f"/carts/{cart_id}")["delivery"]["option_id"] == "flat-rate:regular"

    assert shop.css('[data-test="token"]').get_attribute("value") == "tok_ok"
    shop.pay()
    order_id = shop.order_id()
    order = api(server, f"/orders/{order_id}")
    assert order["status"] == "paid" and order["channel"] == "web"
    assert order["total"] == {"amount": "673000.00", "currency": "IDR"}
    assert_page_matches_order(shop, order)
    assert driver.current_url.endswith(f"#order/{order_id}")
    assert "ID" not in shop.stored()["carts"]  # the next visit starts a new cart
    assert shop.cart_quantity() == 0

    # the order page survives a reload too
    shop.open(f"/shop/#order/{order_id}")
    assert shop.text("order-status") == "paid"


def test_a_store_pickup_order_in_germany(server: str, driver: Any) -> None:
    shop = Shop(driver, server)
    shop.open("/shop/")
    shop.choose("market", "DE")
    assert shop.css('[data-test="locale"]').get_attribute("value") == "de-DE"
    catalog = api(server, "/products?market=DE&locale=de-DE")
    tea = next(p for p in catalog if p["sku"] == "TEA-JAVA-BLACK")
    price = shop.css('[data-test="price"]', shop.product("TEA-JAVA-BLACK"))
    assert price.get_property("textContent") == tea["price"]["display"]  # "8,90\u00a0€"
    shop.add("TEA-JAVA-BLACK")
    shop.add("TEA-JAVA-BLACK")  # the same SKU adds to its line
    assert len(shop.all('[data-test="cart-line"]')) == 1
    other = next(p["sku"] for p in catalog if p["sku"] != "TEA-JAVA-BLACK")
    shop.add(other)
    shop.set_quantity(other, 0)  # a quantity of 0 removes the line
    assert [r.get_attribute("data-sku") for r in shop.all('[data-test="cart-line"]')] == \
        ["TEA-JAVA-BLACK"]
    shop.pick_up()
    options = shop.options()
    assert options and all(o.get_attribute("data-kind") == "pickup" for o in options.values())
    shop.choose_option("store-pickup:de-ber-store")
    shop.pay()
    order = api(server, f"/orders/{shop.order_id()}")
    assert order["status"] == "paid"
    assert order["delivery"]["kind"] == "pickup"
    assert order["delivery"]["location_id"] == "de-ber-store"
    assert order["total"] == {"amount": "17.80", "currency": "EUR"}  # as the README says
    assert_page_matches_order(shop, order)
    assert order["delivery"]["label"] in shop.text("order-delivery")


def test_a_declined_payment_shows_the_problem_and_the_cart_stays(server: str,
                                                                 driver: Any) -> None:
    shop = Shop(driver, server)
    shop.open("/shop/")
    shop.choose("market", "JP")
    shop.choose("locale", "ja-JP")
    shop.add("TEA-JAVA-BLACK")
    shop.add("COFFEE-TORAJA-250")
    shop.css('[data-test="remove"]', shop.line("COFFEE-TORAJA-250")).click()
    shop.until(lambda: len(shop.all('[data-test="cart-line"]')) == 1, "line not removed")
    shop.idle()
    cart_id = shop.cart_id("JP")
    address = {"name": "Yui", "line1": "1-1 Marunouchi", "city": "Chiyoda-ku",
               "region": "Tokyo", "postal_code": "100-0005", "country": "JP"}
    shop.ship_to(**address)
    first = next(o for o in api(server, f"/carts/{cart_id}/delivery-options")
                 if o["kind"] == "ship")
    shop.choose_option(first["id"])

    shop.pay("tok_decline")
    error = shop.css('[data-test="checkout-error"]')
    shop.until(error.is_displayed, "no checkout error shown")
    # the API's own problem for the same payment, on a throwaway cart
    other = api(server, "/carts", {"market": "JP", "channel": "web"})["id"]
    api(server, f"/carts/{other}/lines", {"sku": "TEA-JAVA-BLACK", "quantity": 1})
    api(server, f"/carts/{other}/address", address, method="PUT")
    api(server, f"/carts/{other}/delivery", {"option_id": first["id"]}, method="PUT")
    problem = api(server, f"/carts/{other}/checkout",
                  {"payment": {"method": "testpay", "token": "tok_decline"}},
                  Idempotency_Key="e2e-decline")
    assert problem["status"] == 402, problem
    assert problem["title"] in error.text and problem["detail"] in error.text
    assert not shop.css('[data-test="order-view"]').is_displayed()
    cart = api(server, f"/carts/{cart_id}")
    assert cart["status"] == "open"
    assert shop.amount("cart-total") == cart["total"]["amount"]

    shop.pay("tok_ok")  # the same cart, paid this time
    order = api(server, f"/orders/{shop.order_id()}")
    assert order["status"] == "paid" and order["cart_id"] == cart_id
    assert order["currency"] == "JPY" and "." not in order["total"]["amount"]
    assert_page_matches_order(shop, order)

