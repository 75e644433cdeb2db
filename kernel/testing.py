"""pytest plugin for plugin authors (installed with Niaga as the ``niaga`` pytest11 entry).

Loaded by every pytest run in an environment where Niaga is installed, so it
imports nothing of the kernel until a fixture or a suite is used.

Factories (plain functions, usable outside pytest too):

- :func:`make_market` builds a validated :class:`~kernel.markets.Market` from a
  markets-file table; :func:`make_plugins` builds that market's plugin manager
  exactly as ``niaga serve`` would.
- :func:`start_kernel` starts a :class:`~kernel.runtime.Niaga` on a SQLite file
  with the demo catalog; :func:`make_cart` and :func:`make_order` build a cart
  and an order through the real cart and checkout services.

Fixtures: ``niaga_market`` and ``niaga_plugins`` (the first two factories),
``niaga_kernel`` (an async factory over a temporary SQLite store, closed after
the test; needs pytest-asyncio), ``niaga_cart`` and ``niaga_order``.

Conformance: :func:`check_plugin_conformance` (loads as a plugin at all) and one
suite per family: :class:`TaxConformance`, :class:`PaymentConformance`,
:class:`CarrierConformance`, :class:`LoyaltyConformance`. A plugin's own test
module subclasses one, names its plugin and settings, and inherits the tests::

    from kernel.testing import TaxConformance

    class TestMyTax(TaxConformance):
        plugin = MyTax
        settings = {"rates": {"standard": "10"}}
        market = {"code": "AU", "currency": "AUD"}
"""

from __future__ import annotations

import hashlib
import inspect
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import pluggy
import pytest

try:  # the niaga_kernel fixture is async: it needs pytest-asyncio (a test dependency)
    import pytest_asyncio
except ImportError:  # pragma: no cover - every Niaga test environment has it
    pytest_asyncio = None

if TYPE_CHECKING:
    from kernel.cart import Address, Cart
    from kernel.catalog import Location, Product
    from kernel.markets import Market
    from kernel.orders import Order
    from kernel.payments import PaymentOperation, PaymentRequest
    from kernel.plugins import MarketPlugins
    from kernel.runtime import Niaga
    from kernel.store.base import Customer
    from kernel.tax import TaxRequest, TaxResult

_hookimpl = pluggy.HookimplMarker("niaga")  # = kernel.hookimpl, without importing the kernel

FAMILIES = ("tax", "payment", "carrier", "loyalty", "localisation", "inventory", "checkout",
            "cart", "order", "risk", "notification", "customer")

# -- markets and plugin managers ----------------------------------------------------------


def make_market(code: str = "XX", *, currency: str = "EUR", locales: list[str] | None = None,
                prices_include_tax: bool = True, plugins: dict[str, dict[str, Any]] | None = None,
                **fields: Any) -> Market:
    from kernel.markets import parse_markets

    table = {"name": f"Test market {code}", "currency": currency,
             "locales": locales or ["en-US"], "prices_include_tax": prices_include_tax,
             "plugins": plugins or {}, **fields}
    return parse_markets({"markets": {code: table}})[code]


def make_plugins(market: Market, extra: dict[str, Any] | None = None,
                 discover: bool = True) -> MarketPlugins:
    from kernel.plugins import Registry, build_market_plugins

    registry = Registry(extra, discover=discover)
    return build_market_plugins({market.code: market}, registry)[market.code]


def plugins_with(market: Market, *instances: tuple[str, Any]) -> MarketPlugins:
    """A market's plugin manager holding exactly these ``(name, object)`` pairs, in order.

    For plugin objects already built (an HTTP plugin with a test transport set, say);
    the kernel's own defaults are registered first, as in ``niaga serve``. As in pluggy,
    the last one registered is asked first.
    """
    from kernel import hookspecs
    from kernel.plugins import KernelDefaults, MarketPlugins, PluginManager

    pm = PluginManager()
    pm.add_hookspecs(hookspecs)
    pm.register(KernelDefaults(), name="kernel")
    for name, obj in instances:
        pm.register(obj, name=name)
    return MarketPlugins(market, pm, [name for name, _ in instances])


def check_plugin_conformance(plugin: Any) -> list[str]:
    """Problems that would stop ``plugin`` (class or module) from loading as a Niaga plugin."""
    import msgspec

    from kernel import hookspecs

    problems: list[str] = []
    name = getattr(plugin, "name", None)
    family = getattr(plugin, "family", None)
    if not isinstance(name, str) or not name:
        problems.append("declare a non-empty `name` (the entry-point name)")
    if family not in FAMILIES:
        problems.append(f"`family` must be one of {', '.join(FAMILIES)}")
    implemented = 0
    for attr, member in inspect.getmembers(plugin):
        if not attr.startswith("niaga_"):
            if hasattr(member, "niaga_impl"):  # the kernel looks only at niaga_* names
                problems.append(f"{attr}: a hook implementation must be named niaga_<hook>")
            continue
        spec = getattr(hookspecs, attr, None)
        if spec is None:
            problems.append(f"{attr}: no such hook")
            continue
        if not hasattr(member, "niaga_impl"):
            problems.append(f"{attr}: decorate it with @hookimpl")
            continue
        implemented += 1
        allowed = set(inspect.signature(spec).parameters)
        given = [p for p in inspect.signature(member).parameters if p != "self"]
        unknown = [p for p in given if p not in allowed]
        if unknown:
            problems.append(f"{attr}: the hook provides no argument(s) {', '.join(unknown)}")
    if not implemented:
        problems.append("implements no hook")
    config = getattr(plugin, "Config", None)
    if config is not None:
        if not (isinstance(config, type) and issubclass(config, msgspec.Struct)):
            problems.append("`Config` must be a msgspec.Struct")
        elif not config.__struct_config__.forbid_unknown_fields:
            problems.append("`Config` must set forbid_unknown_fields=True so typos fail at load")
    return problems


# -- a kernel on a SQLite file, carts and orders through the real services -------------------

# Addresses the demo markets ship to (US sales tax needs a state).
DEMO_ADDRESSES: dict[str, dict[str, str]] = {
    "ID": {"country": "ID", "region": "DKI Jakarta", "city": "Jakarta", "postal_code": "10310",
           "line1": "Jl. M.H. Thamrin No. 1", "name": "Budi Santoso",
           "email": "budi@example.com"},
    "DE": {"country": "DE", "region": "Berlin", "city": "Berlin", "postal_code": "10178",
           "line1": "Rosenthaler Straße 40", "name": "Erika Mustermann",
           "email": "erika@example.com"},
    "US": {"country": "US", "region": "CA", "city": "San Francisco", "postal_code": "94103",
           "line1": "1 Market St", "name": "Jane Doe", "email": "jane@example.com"},
    "JP": {"country": "JP", "region": "東京都", "city": "千代田区", "postal_code": "100-0001",
           "line1": "千代田1-1", "name": "山田太郎", "email": "taro@example.com"},
}

DEFAULT = object()  # "the factory's default" where None means "none"


async def start_kernel(path: str | Path, *, markets: dict[str, Market] | str | Path | None = None,
                       plugins: dict[str, dict[str, Any]] | None = None,
                       extra: dict[str, Any] | None = None,
                       in_markets: Iterable[str] | None = None, discover: bool = True,
                       catalog: str | Path | None = None, seed_catalog: bool = True,
                       clock: Callable[[], float] | None = None) -> Niaga:
    """A started :class:`~kernel.runtime.Niaga` on a new SQLite file at ``path``.

    ``markets``: a markets file, or parsed markets (default: the demo markets).
    ``plugins``: ``{name: settings}`` enabled in every market (or only in
    ``in_markets``), replacing that plugin's settings where the market had it.
    ``extra``: ``{name: PluginClass}`` for plugins not installed as entry points.
    The catalog (``catalog``, default the demo one) is seeded unless ``seed_catalog``
    is False. Close it with ``await niaga.close()``.
    """
    import time

    import msgspec

    from kernel.demo import seed
    from kernel.markets import demo_markets_path, load_markets
    from kernel.plugins import Registry
    from kernel.runtime import Niaga
    from kernel.store.sql import SqlStore

    if markets is None:
        markets = load_markets(demo_markets_path())
    elif isinstance(markets, str | Path):
        markets = load_markets(markets)
    markets = dict(markets)
    if plugins:
        wanted = set(in_markets) if in_markets is not None else set(markets)
        unknown = wanted - set(markets)
        if unknown:
            raise ValueError(f"in_markets: no market(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(sorted(markets))})")
        for code in wanted:
            enabled = {**markets[code].plugins, **{k: dict(v) for k, v in plugins.items()}}
            markets[code] = msgspec.structs.replace(markets[code], plugins=enabled)
    store = SqlStore(str(path))
    ctx = Niaga(store, markets, registry=Registry(extra, discover=discover),
                clock=clock or time.time)
    await ctx.start()
    try:
        await store.create_schema()
        if seed_catalog:
            await seed(store, markets, ctx.clock(), Path(catalog) if catalog else None)
    except BaseException:
        await ctx.close()
        raise
    return ctx


async def make_cart(ctx: Niaga, market: str | None = None,
                    lines: Iterable[str | tuple[str, int]] | None = None, *,
                    address: Any = DEFAULT, delivery: str | bool | None = True,
                    customer: Customer | str | None = None, channel: str = "web") -> Cart:
    """A cart built through the real cart services (stock checked, priced by the plugins).

    ``market``: a market code (default: the first market). ``lines``: SKUs or
    ``(sku, quantity)`` (default: the first two products sold and in stock there).
    ``address``: an ``Address``, a dict of its fields, None for none, or by default
    a demo address for ID/DE/US/JP and the market's first country elsewhere.
    ``delivery``: an option id, a carrier name (its first option), True for the first
    shipping option offered (the first option when none ships; none when nothing is
    offered), or None/False for none. ``customer``: a ``Customer`` or an email to
    create one with.
    """
    from kernel.cart import Address
    from kernel.services import carts
    from kernel.services.customers import create_customer

    code = market or next(iter(ctx.markets))
    the_market = ctx.market(code)
    if isinstance(customer, str):
        customer, _token = await create_customer(ctx, customer, None)
    cart = await carts.create_cart(ctx, code, channel, customer)
    if lines is None:
        lines = await _default_lines(ctx, code)
    for item in lines:
        sku, quantity = (item, 1) if isinstance(item, str) else item
        cart = await carts.add_line(ctx, cart.id, sku, quantity, channel)
    if address is DEFAULT:
        address = DEMO_ADDRESSES.get(code) or {"country": the_market.countries[0],
                                               "city": "Testville",
                                               "email": "customer@example.com"}
    if isinstance(address, dict):
        address = Address(**address)
    if address is not None:
        cart = await carts.set_address(ctx, cart.id, address)
    if delivery and cart.lines:
        options = await carts.delivery_options(ctx, cart.id)
        if isinstance(delivery, str):
            chosen = next((o.id for o in options if o.id == delivery or o.carrier == delivery),
                          delivery)  # an unknown id: set_delivery names what is offered
        else:
            ships = [o for o in options if o.kind == "ship"] or options
            chosen = ships[0].id if ships else None
        if chosen is not None:
            cart = await carts.set_delivery(ctx, cart.id, chosen)
    return cart


async def _default_lines(ctx: Niaga, code: str) -> list[tuple[str, int]]:
    from kernel.pricing import unit_price
    from kernel.services.carts import market_availability

    market = ctx.market(code)
    sold = [p.sku for p in sorted(await ctx.store.list_products(), key=lambda p: p.sku)
            if unit_price(p, market, ctx.plugins_for(code)) is not None]
    available = await market_availability(ctx, code, sold) if sold else {}
    picked = [(sku, 1) for sku in sold if available.get(sku, 0) >= 1][:2]
    if not picked:
        raise LookupError(f"market {code} sells nothing in stock: give lines=[(sku, qty)]")
    return picked


async def make_order(ctx: Niaga, market: str | None = None,
                     lines: Iterable[str | tuple[str, int]] | None = None, *,
                     payment: dict[str, Any] | None = None, idempotency_key: str | None = None,
                     cart: Cart | str | None = None, **cart_options: Any) -> Order:
    """An order placed through the real checkout (stock reserved, payment authorized).

    Checks out ``cart`` (a cart or its id) or a new one from :func:`make_cart` with
    ``market``, ``lines`` and ``cart_options``. ``payment`` is the checkout body's
    payment (default: testpay's ``{"method": "testpay", "token": "tok_ok"}``).
    """
    from kernel.ids import new_id
    from kernel.services.checkout import checkout, request_hash

    if cart is None:
        cart = await make_cart(ctx, market, lines, **cart_options)
    cart_id = cart if isinstance(cart, str) else cart.id
    payment = dict(payment or {"method": "testpay", "token": "tok_ok"})
    order, _created = await checkout(ctx, cart_id, payment, idempotency_key or new_id(),
                                     request_hash({"payment": payment}))
    return order


if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def niaga_kernel(tmp_path: Path):
        """``await niaga_kernel(plugins=..., extra=..., markets=...)``: see :func:`start_kernel`."""
        started: list[Niaga] = []

        async def factory(**options: Any) -> Niaga:
            ctx = await start_kernel(tmp_path / f"niaga-{len(started) + 1}.sqlite", **options)
            started.append(ctx)
            return ctx

        yield factory
        for ctx in reversed(started):
            await ctx.close()

else:  # pragma: no cover

    @pytest.fixture
    def niaga_kernel():
        pytest.fail("the niaga_kernel fixture needs pytest-asyncio (pip install pytest-asyncio)",
                    pytrace=False)


@pytest.fixture
def niaga_market() -> Callable[..., Market]:
    return make_market


@pytest.fixture
def niaga_plugins() -> Callable[..., MarketPlugins]:
    return make_plugins


@pytest.fixture
def niaga_cart() -> Callable[..., Any]:
    """``await niaga_cart(niaga, "DE", [("SKU", 2)], ...)``: see :func:`make_cart`."""
    return make_cart


@pytest.fixture
def niaga_order() -> Callable[..., Any]:
    """``await niaga_order(niaga, "DE", payment={...}, ...)``: see :func:`make_order`."""
    return make_order


# -- building blocks the suites share --------------------------------------------------------


def assert_no_floats(value: Any, where: str = "result") -> None:
    """Fail on any float (or non-int Money amount) anywhere inside ``value``."""
    import msgspec

    from kernel.money import Money

    if isinstance(value, float):
        raise AssertionError(f"{where} is a float ({value!r}): money and rates are never floats")
    if isinstance(value, Money):
        if not isinstance(value.amount, int) or isinstance(value.amount, bool):
            raise AssertionError(f"{where}.amount is {type(value.amount).__name__} "
                                 f"{value.amount!r}, not int minor units")
        if not isinstance(value.currency, str):
            raise AssertionError(f"{where}.currency is not a currency code")
        return
    if isinstance(value, msgspec.Struct):
        for field in value.__struct_fields__:
            assert_no_floats(getattr(value, field), f"{where}.{field}")
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_no_floats(key, f"{where} key")
            assert_no_floats(item, f"{where}[{key!r}]")
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            assert_no_floats(item, f"{where}[{i}]")


def _money_in(value: Any, currency: str, where: str) -> None:
    from kernel.money import Money

    assert isinstance(value, Money), f"{where} is {type(value).__name__}, not Money"
    assert_no_floats(value, where)
    assert value.currency == currency, f"{where} is in {value.currency}, not {currency}"


def build_cart(market: Market, lines: Iterable[tuple[str, int, int, str, int]], *,
               cart_id: str = "cart-conformance", address: Address | None = None,
               customer_id: str | None = None) -> tuple[Cart, dict[str, Product]]:
    """An unpriced cart and its products: ``lines`` are (sku, quantity, unit price in minor
    units, tax class, grams). Price it with :func:`kernel.pricing.price_cart`."""
    from kernel.cart import Line, empty_cart
    from kernel.catalog import Product
    from kernel.money import Money

    cur = market.currency
    zero = Money.zero(cur)
    cart = empty_cart(cart_id, market.code, "web", cur, include_tax=market.prices_include_tax,
                      customer_id=customer_id, now=0.0)
    products: dict[str, Product] = {}
    for i, (sku, quantity, unit, tax_class, grams) in enumerate(lines, start=1):
        products[sku] = Product(sku=sku, names={"en-US": f"Conformance item {sku}"},
                                prices={market.code: Money(unit, cur)}, tax_class=tax_class,
                                weight_grams=grams)
        cart.lines.append(Line(id=f"line-{i}", sku=sku, name=sku, quantity=quantity,
                               unit_price=zero, subtotal=zero, discount=zero, tax=zero,
                               total=zero, tax_class=tax_class, weight_grams=grams))
    cart.address = address
    return cart, products


def tax_request_for(cart: Cart, market: Market, pickup_address: Address | None = None
                    ) -> TaxRequest:
    """The request the kernel's pricing sends the tax hook for a priced cart."""
    from kernel.money import Money
    from kernel.tax import TaxLine, TaxRequest

    return TaxRequest(
        market=market.code, currency=cart.currency, policy=market.policy,
        lines=[TaxLine(line_id=li.id, sku=li.sku, tax_class=li.tax_class, quantity=li.quantity,
                       amount=li.subtotal - li.discount) for li in cart.lines],
        shipping=cart.delivery.price if cart.delivery else Money.zero(cart.currency),
        address=cart.address, delivery_kind=cart.delivery.kind if cart.delivery else None,
        pickup_address=pickup_address,
    )


def order_for(cart: Cart, market: Market, *, order_id: str = "ord-conformance-1",
              payment_status: str = "captured") -> Order:
    """An order as checkout would place it from a priced cart (no store, no gateway)."""
    from kernel.money import Money
    from kernel.orders import Order, OrderLine, Payment

    zero = Money.zero(cart.currency)
    captured = cart.total if payment_status == "captured" else zero
    status = {"captured": "paid", "authorized": "authorized"}.get(payment_status,
                                                                  "pending_payment")
    payment = Payment(method="testpay", gateway="testpay", status=payment_status,
                      authorized=cart.total, captured=captured, refunded=zero,
                      reference="ref-conformance-1")
    return Order(
        id=order_id, number=f"{market.code}-1001", cart_id=cart.id, market=market.code,
        channel=cart.channel, channels=list(cart.channels), customer_id=cart.customer_id,
        currency=cart.currency, status=status,
        lines=[OrderLine(**{f: getattr(li, f) for f in li.__struct_fields__})
               for li in cart.lines],
        address=cart.address, delivery=cart.delivery, loyalty=cart.loyalty,
        subtotal=cart.subtotal, discount_total=cart.discount_total,
        shipping_total=cart.shipping_total, tax_total=cart.tax_total, total=cart.total,
        prices_include_tax=cart.prices_include_tax, money_policy=market.policy,
        adjustments=list(cart.adjustments), payment=payment, allocations=[], created_at=0.0,
    )


class _LineDiscounts:
    """Helper plugin for the suites: a fixed discount per cart line (``line id -> minor units``)."""

    def __init__(self) -> None:
        self.discounts: dict[str, int] = {}

    @_hookimpl
    def niaga_cart_discounts(self, cart: Cart, market: Market) -> list[Any]:
        from kernel.cart import Adjustment
        from kernel.money import Money

        return [Adjustment(source="conformance", kind="discount", label="Test discount",
                           amount=Money(amount, cart.currency), line_id=line_id)
                for line_id, amount in self.discounts.items() if amount]


class _NoTax:
    """Helper plugin for the non-tax suites: every line taxed at 0 %."""

    @_hookimpl
    def niaga_calculate_taxes(self, request: TaxRequest) -> TaxResult:
        from kernel.tax import compute_taxes

        rates = {t.line_id: (Fraction(0), "0") for t in request.lines}
        return compute_taxes(request, rates, source="conformance-no-tax")


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on ``base``, merging nested tables (``money``) one level deep."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _other_code(code: str) -> str:
    return "ZZ" if code != "ZZ" else "ZY"


# -- the conformance suites ------------------------------------------------------------------


class PluginConformance:
    """What every family suite shares. Subclass a family suite, not this.

    Class attributes a plugin's test sets:

    - ``plugin``: the plugin class (or module);
    - ``settings``: its markets-file table, as a dict;
    - ``market``: overrides of the test market's table (``code``, ``currency``,
      ``locales``, ``prices_include_tax``, ``countries``, ``money``...).

    Override :meth:`make_plugin` to prepare the instance (e.g. give an HTTP plugin a
    recorded ``httpx`` transport).
    """

    __test__ = False  # the suites themselves are not tests; their Test* subclasses are
    family: ClassVar[str] = ""
    plugin: ClassVar[Any] = None
    settings: ClassVar[dict[str, Any]] = {}
    market: ClassVar[dict[str, Any]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "__test__" not in cls.__dict__:
            cls.__test__ = True

    def setup_method(self, method: Any = None) -> None:
        if self.plugin is None:
            pytest.skip(f"{type(self).__name__}: no {self.family} plugin given "
                        f"(set `plugin = YourPluginClass` on the class)")

    @property
    def plugin_name(self) -> str:
        return getattr(self.plugin, "name", None) or ""

    def market_table(self, **overrides: Any) -> dict[str, Any]:
        """The test market's table: defaults, then ``market``, then ``overrides``."""
        table: dict[str, Any] = {"code": "XX", "currency": "EUR", "locales": ["en-US"],
                                 "prices_include_tax": True}
        table = _merged(_merged(table, dict(self.market)), overrides)
        settings = table.pop("settings", self.settings)
        table["plugins"] = {**table.get("plugins", {}), self.plugin_name: dict(settings)}
        return table

    def build_market(self, **overrides: Any) -> Market:
        """The test market (``overrides`` as in :meth:`market_table`; ``settings=`` too)."""
        table = self.market_table(**overrides)
        return make_market(table.pop("code"), **table)

    def make_plugin(self, market: Market | None = None) -> Any:
        """The plugin object for ``market`` (default: the test market), as the kernel builds it."""
        from kernel.plugins import info_for, instantiate

        market = market or self.build_market()
        return instantiate(info_for(self.plugin_name, self.plugin),
                           market.plugins.get(self.plugin_name, {}), market)

    def plugins_for(self, market: Market, *helpers: Any, plugin: Any = None) -> MarketPlugins:
        """A manager with the suite's helper plugins and the plugin (asked first)."""
        plugin = self.make_plugin(market) if plugin is None else plugin
        named = [(f"conformance-helper-{i}", h) for i, h in enumerate(helpers)]
        return plugins_with(market, *named, (self.plugin_name, plugin))

    def priced_cart(self, market: Market, plugins: MarketPlugins,
                    lines: Iterable[tuple[str, int, int, str, int]], **cart_options: Any
                    ) -> tuple[Cart, dict[str, Product]]:
        from kernel.pricing import price_cart

        cart, products = build_cart(market, lines, **cart_options)
        price_cart(cart, market, products, plugins)
        return cart, products

    # -- the tests every family runs --------------------------------------------------

    def test_loads_as_a_niaga_plugin(self):
        problems = check_plugin_conformance(self.plugin)
        assert problems == [], f"{self.plugin!r} would not load: {problems}"
        assert self.plugin.family == self.family, (
            f"{self.plugin_name} says family {self.plugin.family!r}; this is the "
            f"{self.family} suite")

    def test_its_settings_load(self):
        from kernel.errors import ConfigError

        market = self.build_market()
        try:
            self.make_plugin(market)
        except ConfigError as exc:
            raise AssertionError(f"the suite's settings do not load: {exc.problems}") from exc


# -- tax ------------------------------------------------------------------------------------

# (quantity, unit price in minor units, tax class index, discount percent of the line),
# and the delivery charge: ties, tiny and large amounts, full discounts, free lines.
FIXED_TAX_CASES: list[tuple[list[tuple[int, int, int, int]], int]] = [
    ([(1, 1999, 0, 0)], 0),
    ([(3, 1050, 0, 0), (2, 333, 1, 0)], 490),
    ([(1, 5, 0, 0), (1, 5, 1, 0), (1, 5, 0, 0)], 5),
    ([(7, 1, 1, 0), (1, 100_000, 0, 50)], 0),
    ([(12, 999_999, 0, 33), (1, 0, 1, 0)], 1),
    ([(2, 15, 0, 100)], 250),
    ([(5, 2345, 1, 10), (4, 6789, 0, 0), (3, 111, 1, 0), (2, 50, 0, 0)], 599),
    ([(9, 11, 0, 0), (9, 11, 1, 0)], 11),
    ([(1, 28_900_000, 0, 0), (2, 9_500_000, 1, 25)], 1_500_000),
    ([(999, 1, 0, 0)], 0),
]


def _tax_cases_strategy(classes: int) -> Any:
    from hypothesis import strategies as st

    line = st.tuples(
        st.integers(1, 15),
        st.one_of(st.integers(0, 200), st.integers(0, 5_000_000)),
        st.integers(0, max(classes - 1, 0)),
        st.one_of(st.just(0), st.sampled_from([10, 25, 33, 50, 100]), st.integers(0, 100)),
    )
    return st.tuples(st.lists(line, min_size=1, max_size=6),
                     st.one_of(st.just(0), st.integers(0, 100_000)))


def _hypothesis_available() -> bool:
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        return False
    return True


def assert_tax_result(request: TaxRequest, result: Any, source: str | None = None) -> None:
    """The rules every tax answer follows (see :class:`TaxConformance`)."""
    from kernel.tax import SHIPPING, TaxedLine, TaxResult

    assert isinstance(result, TaxResult), (
        f"answered {type(result).__name__} for its own market {request.market}, not a TaxResult")
    assert_no_floats(result, "TaxResult")
    if source is not None:
        assert result.source == source, f"TaxResult.source is {result.source!r}, not {source!r}"
    assert isinstance(result.estimated, bool), "TaxResult.estimated must be a bool"
    counts = Counter(t.line_id for t in result.lines)
    wanted = [t.line_id for t in request.lines]
    for line_id in wanted:
        assert counts[line_id] == 1, (
            f"cart line {line_id} is taxed {counts[line_id]} times; every line exactly once "
            "(an untaxed line is an explicit 0)")
    extra = set(counts) - set(wanted) - {SHIPPING}
    assert not extra, f"taxed lines the cart does not have: {sorted(extra)}"
    assert counts[SHIPPING] <= 1, "shipping is taxed more than once"
    policy = request.policy
    amounts = {t.line_id: (t.amount.amount, t.quantity) for t in request.lines}
    amounts[SHIPPING] = (request.shipping.amount, 1)
    groups: dict[Fraction, list[tuple[int, Fraction]]] = defaultdict(list)
    for taxed in result.lines:
        assert isinstance(taxed, TaxedLine), f"{taxed!r} is not a TaxedLine"
        where = f"tax on {taxed.line_id}"
        _money_in(taxed.tax, request.currency, where)
        assert taxed.tax.amount >= 0, f"{where} is negative ({taxed.tax})"
        assert isinstance(taxed.rate, str) and re.fullmatch(r"\d+(\.\d+)?", taxed.rate), (
            f"{where}: rate {taxed.rate!r} is not a percent as a decimal string like '19'")
        assert isinstance(taxed.label, str) and taxed.label, f"{where}: an empty label"
        rate = Fraction(taxed.rate)
        factor = rate / (100 + rate) if policy.prices_include_tax else rate / 100
        amount, quantity = amounts[taxed.line_id]
        exact = amount * factor
        error = abs(taxed.tax.amount - exact)
        level = policy.rounding_level
        bound = {"unit": Fraction(max(quantity, 1), 2), "line": Fraction(1, 2),
                 "total": Fraction(3, 2)}[level]
        assert error <= bound, (
            f"{where}: {taxed.tax.amount} minor units, but {taxed.rate}% of {amount} "
            f"({'included' if policy.prices_include_tax else 'added'}) is {float(exact):.4f}: "
            f"more than {bound} off for rounding level {level!r}")
        groups[rate].append((taxed.tax.amount, exact))
    if policy.rounding_level == "total":
        for rate, members in groups.items():
            total, exact = sum(m[0] for m in members), sum(m[1] for m in members)
            assert abs(total - exact) <= Fraction(1, 2), (
                f"rounding level 'total': the {rate}% taxes sum to {total}, but the exact tax "
                f"is {float(exact):.4f}; round once per rate, then split")


class TaxConformance(PluginConformance):
    """The tax family's rules, for deterministic generated carts (Hypothesis when installed,
    always a fixed table too):

    - answers a TaxResult for its own market and None for another market;
    - every cart line is taxed exactly once (shipping at most once, nothing else);
    - every amount is ``Money`` in the cart's currency with int minor units: no float
      anywhere in the result; the rate is a decimal percent string;
    - priced by the kernel (``price_cart``), the line taxes are the cart's, they sum to
      ``tax_total`` and :func:`kernel.totals.check_totals` passes;
    - each rounding level holds: ``line`` within half a minor unit of the exact tax per
      line, ``unit`` within half a unit per item, ``total`` per rate;
    - all of it with prices including and excluding tax (``modes``), in the market's
      currency and in a zero-decimal one (``zero_decimal_market``).

    Attributes: ``tax_classes`` (the product tax classes the settings rate),
    ``address`` (the cart's address, a dict; None for none), ``modes``,
    ``zero_decimal_market`` (overrides for the zero-decimal variant; None to skip),
    ``zero_decimal_settings`` (settings there, default ``settings``), ``max_examples``.
    """

    __test__ = False
    family = "tax"
    tax_classes: ClassVar[tuple[str, ...]] = ("standard",)
    address: ClassVar[dict[str, Any] | None] = None
    modes: ClassVar[tuple[str, ...]] = ("inclusive", "exclusive")
    zero_decimal_market: ClassVar[dict[str, Any] | None] = {"currency": "JPY"}
    zero_decimal_settings: ClassVar[dict[str, Any] | None] = None
    max_examples: ClassVar[int] = 25

    def tax_market(self, *, mode: str | None = None, level: str | None = None,
                   currency: str = "market") -> Market:
        from kernel.errors import ConfigError

        overrides: dict[str, Any] = {}
        if mode is not None:
            if mode not in self.modes:
                pytest.skip(f"{self.plugin_name} declares modes {self.modes}, not {mode!r}")
            overrides["prices_include_tax"] = mode == "inclusive"
        if level is not None:
            overrides["money"] = {"rounding_level": level}
        if currency == "zero-decimal":
            if self.zero_decimal_market is None:
                pytest.skip(f"{self.plugin_name}: no zero-decimal market "
                            "(zero_decimal_market = None)")
            overrides.update(self.zero_decimal_market)
            if self.zero_decimal_settings is not None:
                overrides["settings"] = self.zero_decimal_settings
        market = self.build_market(**overrides)
        if currency == "zero-decimal":
            from kernel.money import currency_digits

            assert currency_digits(market.currency) == 0, (
                f"zero_decimal_market gives {market.currency}, which has minor units")
            try:
                self.make_plugin(market)
            except ConfigError as exc:
                pytest.skip(f"{self.plugin_name} does not load for a {market.currency} market: "
                            f"{exc.problems} (set zero_decimal_market to one it supports)")
        return market

    def tax_address(self, market: Market) -> Address | None:
        from kernel.cart import Address

        return Address(**self.address) if self.address is not None else None

    def check_tax_case(self, market: Market, plugins: MarketPlugins, discounts: _LineDiscounts,
                       case: tuple[list[tuple[int, int, int, int]], int]) -> None:
        """Price one generated cart through the kernel and check the plugin's answer."""
        from kernel.cart import Delivery
        from kernel.money import Money
        from kernel.pricing import price_cart
        from kernel.totals import check_totals

        lines, shipping = case
        classes = self.tax_classes or ("standard",)
        spec = [(f"SKU-{i}", qty, unit, classes[cls % len(classes)], 250)
                for i, (qty, unit, cls, _pct) in enumerate(lines, start=1)]
        cart, products = build_cart(market, spec, address=self.tax_address(market))
        cart.delivery = Delivery(option_id="conformance:ship", kind="ship",
                                 carrier="conformance", label="Delivery",
                                 price=Money(shipping, market.currency))
        discounts.discounts = {f"line-{i}": qty * unit * pct // 100
                               for i, (qty, unit, _cls, pct) in enumerate(lines, start=1)}
        price_cart(cart, market, products, plugins)  # raises if the totals do not add up
        request = tax_request_for(cart, market)
        result = plugins.first("niaga_calculate_taxes", request=request)
        assert_tax_result(request, result, self.plugin_name)
        by_line = {t.line_id: t.tax for t in result.lines}
        for line in cart.lines:
            assert line.tax == by_line[line.id], (
                f"line {line.id}: priced with tax {line.tax}, answered {by_line[line.id]} for "
                "the same request (the answer must be deterministic)")
        total = sum(t.tax.amount for t in result.lines)
        assert cart.tax_total.amount == total, (
            f"the line taxes sum to {total}, the cart's tax_total is {cart.tax_total}")
        taxed = sum(a.amount.amount for a in cart.adjustments if a.kind == "tax")
        assert taxed == total, f"tax adjustments sum to {taxed}, the line taxes to {total}"
        check_totals(cart)

    def run_tax_cases(self, market: Market) -> None:
        discounts = _LineDiscounts()
        plugins = self.plugins_for(market, discounts)
        for case in FIXED_TAX_CASES:
            self.check_tax_case(market, plugins, discounts, case)
        if not _hypothesis_available():
            return
        from hypothesis import HealthCheck, given, settings

        @settings(max_examples=self.max_examples, derandomize=True, database=None,
                  deadline=None, suppress_health_check=list(HealthCheck))
        @given(_tax_cases_strategy(len(self.tax_classes)))
        def generated(case: Any) -> None:
            self.check_tax_case(market, plugins, discounts, case)

        generated()

    @pytest.mark.parametrize("currency", ["market", "zero-decimal"])
    @pytest.mark.parametrize("mode", ["inclusive", "exclusive"])
    @pytest.mark.parametrize("level", ["unit", "line", "total"])
    def test_taxes_add_up(self, level: str, mode: str, currency: str):
        self.run_tax_cases(self.tax_market(mode=mode, level=level, currency=currency))

    def test_another_market_is_not_answered(self):
        import msgspec

        from kernel.pricing import price_cart

        market = self.tax_market()
        plugins = self.plugins_for(market)
        cart, products = build_cart(market, [("SKU-1", 1, 1000, self.tax_classes[0], 0)],
                                    address=self.tax_address(market))
        price_cart(cart, market, products, plugins)
        request = msgspec.structs.replace(tax_request_for(cart, market),
                                          market=_other_code(market.code))
        answer = plugins.first("niaga_calculate_taxes", request=request)
        assert answer is None, (
            f"answered {answer!r} for market {request.market}; return None for markets "
            "that are not the plugin's own")

    def test_an_empty_cart_is_answered(self):
        from kernel.tax import SHIPPING

        market = self.tax_market()
        plugins = self.plugins_for(market)
        cart, _ = build_cart(market, [], address=self.tax_address(market))
        request = tax_request_for(cart, market)
        result = plugins.first("niaga_calculate_taxes", request=request)
        assert result is not None, (
            "answered None for an empty cart of its own market: the kernel prices new, empty "
            "carts too, and None there means 'no tax plugin'")
        assert_tax_result(request, result, self.plugin_name)
        assert all(t.line_id == SHIPPING and not t.tax.amount for t in result.lines)


# -- payments ---------------------------------------------------------------------------------

WEBHOOK_KINDS = ("payment.captured", "payment.failed", "payment.refunded", "shipment.updated",
                 "ignored")


def _flip(text: str, start: int) -> str:
    """``text`` with the first letter or digit at or after ``start`` (wrapping) changed."""
    n = len(text)
    for step in range(n):
        i = (start + step) % n
        ch = text[i]
        if ch.isascii() and ch.isdigit():
            new = str((int(ch) + 1) % 10)
        elif ch.isascii() and ch.isalpha():
            base = ord("a") if ch.islower() else ord("A")
            new = chr(base + (ord(ch) - base + 1) % 26)
        else:
            continue
        return text[:i] + new + text[i + 1:]
    return text + "x"


def flip_byte(body: bytes, at: float = 0.5) -> bytes:
    """``body`` with one letter or digit changed, from ``at`` (a fraction) of the way in."""
    text = body.decode("latin-1")
    return _flip(text, int(len(text) * at)).encode("latin-1")


class PaymentConformance(PluginConformance):
    """The payment family's rules:

    - offers a payment method whose id (and gateway) is the plugin's name;
    - answers None to every hook for another gateway (and webhooks for another plugin);
    - authorizes ``ok_data`` for the requested amount, as captured, authorized or
      pending, with a reference; the same idempotency key again is the same payment;
    - declines ``decline_data`` (when given) with status "declined";
    - state rules: an authorization captures and voids, a capture refunds (in full and
      in part), a pending payment voids; capture and refund repeated with the same key
      give the same answer; a refund above the captured amount is refused when
      ``refund_limit_enforced`` (the kernel caps refunds itself);
    - webhooks: ``webhook_good`` parses to an event, the same again to the same event id,
      and every tampered copy (a byte of the body, a character of each header, or what
      :meth:`webhook_tampered` gives) raises ``WebhookRejected``.

    Attributes: ``ok_data`` (the checkout body's payment fields that pay), ``decline_data``,
    ``amount`` (major units in the market's currency), ``refund_limit_enforced``;
    methods :meth:`webhook_good` and :meth:`webhook_tampered`.
    """

    __test__ = False
    family = "payment"
    ok_data: ClassVar[dict[str, Any]] = {}
    decline_data: ClassVar[dict[str, Any] | None] = None
    amount: ClassVar[str] = "120"
    refund_limit_enforced: ClassVar[bool] = False

    def webhook_good(self, plugin: Any) -> tuple[dict[str, str], bytes] | None:
        """A webhook ``plugin`` must accept: ``(headers, body)`` signed as the sender signs."""
        return None

    def webhook_tampered(self, headers: dict[str, str], body: bytes
                         ) -> list[tuple[str, dict[str, str], bytes]]:
        """Copies of a good webhook that must be rejected: ``(what changed, headers, body)``.

        By default one letter or digit of the body (half-way in) and the last one of each
        header's value. Gateways that sign only some fields of the body (and carry the
        signature there) override this to change a signed field and the signature.
        """
        cases = [("a byte of the body", dict(headers), flip_byte(body))]
        for name, value in headers.items():
            cases.append((f"the {name} header", {**headers, name: _flip(value, len(value) - 1)
                                                 if value else "x"}, body))
        return cases

    # -- building requests --------------------------------------------------------------

    def money(self, market: Market) -> Any:
        from kernel.money import Money

        return Money.parse(self.amount, market.currency)

    def payment_request(self, market: Market, *, key: str = "cart-conformance:key-1",
                        capture: bool = True, data: dict[str, Any] | None = None
                        ) -> PaymentRequest:
        from kernel.payments import PaymentRequest

        order_id = "ord-" + hashlib.sha256(key.encode()).hexdigest()[:16]
        return PaymentRequest(order_id=order_id, order_number=f"{market.code}-1001",
                              market=market.code, amount=self.money(market),
                              data=dict(self.ok_data if data is None else data),
                              idempotency_key=key, capture=capture,
                              email="customer@example.com")

    def operation(self, request: PaymentRequest, reference: str | None, key: str,
                  amount: Any = None) -> PaymentOperation:
        from kernel.payments import PaymentOperation

        return PaymentOperation(order_id=request.order_id, reference=reference,
                                amount=amount or request.amount, idempotency_key=key)

    def authorized(self, plugins: MarketPlugins, request: PaymentRequest) -> Any:
        from kernel.payments import PaymentResult

        result = plugins.first("niaga_payment_authorize", gateway=self.plugin_name,
                               request=request)
        assert isinstance(result, PaymentResult), (
            f"authorize answered {result!r} for its own gateway, not a PaymentResult")
        assert_no_floats(result, "PaymentResult")
        return result

    def check_operation(self, result: Any, operation: PaymentOperation, action: str) -> None:
        from kernel.payments import OperationResult

        assert isinstance(result, OperationResult), (
            f"{action} answered {result!r} for its own gateway, not an OperationResult")
        assert_no_floats(result, f"{action} result")
        assert result.ok is True, f"{action} refused: {result.message}"
        _money_in(result.amount, operation.amount.currency, f"{action} amount")
        assert 0 < result.amount.amount <= operation.amount.amount, (
            f"{action} of {operation.amount} answered {result.amount}")

    def _fresh(self, capture: bool, key: str) -> tuple[MarketPlugins, Any, Any]:
        market = self.build_market()
        plugins = self.plugins_for(market)
        request = self.payment_request(market, key=key, capture=capture)
        return plugins, request, self.authorized(plugins, request)

    # -- the tests --------------------------------------------------------------------------

    def test_offers_a_method_named_after_itself(self):
        from kernel.payments import PaymentMethod

        market = self.build_market()
        plugins = self.plugins_for(market, _NoTax())
        unit = self.money(market).amount
        cart, _ = self.priced_cart(market, plugins, [("PAY-1", 1, unit, "standard", 100)])
        methods = plugins.collect("niaga_payment_methods", cart=cart, market=market)
        assert all(isinstance(m, PaymentMethod) for m in methods), methods
        mine = [m for m in methods if m.id == self.plugin_name]
        assert mine, (f"offers {[m.id for m in methods]} for a {cart.total} cart; checkout "
                      f"needs a method whose id is the plugin's name {self.plugin_name!r}")
        assert all(m.gateway == self.plugin_name and m.label for m in mine), mine

    def test_answers_only_its_own_gateway(self):
        market = self.build_market()
        plugins = self.plugins_for(market)
        request = self.payment_request(market)
        other = "another-gateway"
        assert plugins.first("niaga_payment_authorize", gateway=other, request=request) is None
        operation = self.operation(request, "ref-1", "k-1")
        for hook in ("niaga_payment_capture", "niaga_payment_void", "niaga_payment_refund"):
            answer = plugins.first(hook, gateway=other, operation=operation)
            assert answer is None, f"{hook} answered {answer!r} for gateway {other!r}"
        answer = plugins.first("niaga_webhook_parse", plugin=other, headers={}, body=b"{}")
        assert answer is None, f"niaga_webhook_parse answered {answer!r} for plugin {other!r}"

    @pytest.mark.parametrize("capture", [True, False], ids=["capture", "authorize-only"])
    def test_authorizes_the_requested_amount(self, capture: bool):
        _plugins, request, result = self._fresh(capture, f"cart-c:auth-{capture}")
        assert result.status in ("captured", "authorized", "pending"), (
            f"ok_data {self.ok_data} gave {result.status}: {result.message}")
        assert result.amount == request.amount, (
            f"authorized {result.amount} for a request of {request.amount}")
        assert isinstance(result.reference, str) and result.reference, (
            "a payment needs a reference (the gateway's id): capture, void and refund use it")
        if result.status != "pending":
            assert result.expires is True and result.ship_unpaid is False, (
                "expires/ship_unpaid only mean something for pending payments")

    def test_the_same_idempotency_key_is_the_same_payment(self):
        plugins, request, first = self._fresh(True, "cart-c:same-key")
        again = self.authorized(plugins, request)
        assert (again.status, again.amount, again.reference) == (
            first.status, first.amount, first.reference), (
            "a retry with the same idempotency key must be the same payment, not a second one")

    def test_declines_decline_data(self):
        if self.decline_data is None:
            pytest.skip("no decline_data given")
        market = self.build_market()
        plugins = self.plugins_for(market)
        request = self.payment_request(market, key="cart-c:decline", data=self.decline_data)
        result = self.authorized(plugins, request)
        assert result.status == "declined", f"decline_data gave {result.status}"
        assert result.amount.currency == request.amount.currency

    def test_an_authorization_captures(self):
        plugins, request, result = self._fresh(False, "cart-c:capture")
        if result.status != "authorized":
            pytest.skip(f"authorizes as {result.status!r}: nothing to capture")
        operation = self.operation(request, result.reference, f"{request.order_id}:cap-1")
        answer = plugins.first("niaga_payment_capture", gateway=self.plugin_name,
                               operation=operation)
        self.check_operation(answer, operation, "capture")
        again = plugins.first("niaga_payment_capture", gateway=self.plugin_name,
                              operation=operation)
        assert (again.ok, again.amount, again.reference) == (
            answer.ok, answer.amount, answer.reference), "capture again with the same key differs"

    @pytest.mark.parametrize("capture", [False, True], ids=["authorized", "captured"])
    def test_a_fresh_authorization_voids(self, capture: bool):
        plugins, request, result = self._fresh(capture, f"cart-c:void-{capture}")
        if result.status not in ("authorized", "pending"):
            pytest.skip(f"authorizes as {result.status!r}: refunded, not voided")
        operation = self.operation(request, result.reference, f"{request.idempotency_key}:undo")
        answer = plugins.first("niaga_payment_void", gateway=self.plugin_name,
                               operation=operation)
        self.check_operation(answer, operation, "void")

    def test_a_capture_refunds_in_full_and_in_part(self):
        plugins, request, result = self._fresh(True, "cart-c:refund")
        if result.status != "captured":
            pytest.skip(f"authorizes as {result.status!r}: nothing captured to refund")
        from kernel.money import Money

        half = Money(request.amount.amount // 2, request.amount.currency)
        for key, amount in ((f"{request.order_id}:ret-1", half),
                            (f"{request.order_id}:ret-2", request.amount - half)):
            operation = self.operation(request, result.reference, key, amount)
            answer = plugins.first("niaga_payment_refund", gateway=self.plugin_name,
                                   operation=operation)
            self.check_operation(answer, operation, "refund")
            again = plugins.first("niaga_payment_refund", gateway=self.plugin_name,
                                  operation=operation)
            assert (again.ok, again.amount, again.reference) == (
                answer.ok, answer.amount, answer.reference), "refund again with one key differs"

    def test_never_refunds_more_than_captured(self):
        if not self.refund_limit_enforced:
            pytest.skip("the kernel caps refunds at the captured amount; set "
                        "refund_limit_enforced = True if the plugin enforces it too")
        from kernel.errors import NiagaError
        from kernel.money import Money

        plugins, request, result = self._fresh(True, "cart-c:over-refund")
        more = Money(request.amount.amount + 1, request.amount.currency)
        operation = self.operation(request, result.reference, "over-1", more)
        try:
            answer = plugins.first("niaga_payment_refund", gateway=self.plugin_name,
                                   operation=operation)
        except NiagaError:
            return
        assert answer is not None and answer.ok is False, (
            f"refunded {more} of a {request.amount} payment")

    # -- webhooks ---------------------------------------------------------------------------

    def _webhook(self) -> tuple[MarketPlugins, dict[str, str], bytes]:
        if not hasattr(self.plugin, "niaga_webhook_parse"):
            pytest.skip(f"{self.plugin_name} parses no webhooks")
        market = self.build_market()
        plugin = self.make_plugin(market)
        good = self.webhook_good(plugin)
        if good is None:
            pytest.skip("no webhook_good(plugin) given: return a correctly signed "
                        "(headers, body) to test webhook verification")
        headers, body = good
        return self.plugins_for(market, plugin=plugin), dict(headers), bytes(body)

    def test_a_signed_webhook_parses(self):
        from kernel.payments import WebhookEvent

        plugins, headers, body = self._webhook()
        event = plugins.first("niaga_webhook_parse", plugin=self.plugin_name, headers=headers,
                              body=body)
        assert isinstance(event, WebhookEvent), f"webhook_good parsed to {event!r}"
        assert isinstance(event.id, str) and event.id, "a webhook event needs the sender's id"
        assert event.kind in WEBHOOK_KINDS, event.kind
        assert_no_floats(event, "WebhookEvent")
        other = plugins.first("niaga_webhook_parse", plugin="another-plugin", headers=headers,
                              body=body)
        assert other is None, "parsed a webhook sent to another plugin's URL"

    def test_a_replayed_webhook_is_the_same_event(self):
        plugins, headers, body = self._webhook()
        first = plugins.first("niaga_webhook_parse", plugin=self.plugin_name, headers=headers,
                              body=body)
        again = plugins.first("niaga_webhook_parse", plugin=self.plugin_name, headers=headers,
                              body=body)
        assert first is not None and again is not None
        assert again.id == first.id, "a replay must carry the same event id (it changes nothing)"
        assert again == first

    def test_a_tampered_webhook_is_rejected(self):
        from kernel.payments import WebhookRejected

        plugins, headers, body = self._webhook()
        cases = self.webhook_tampered(headers, body)
        assert cases, "webhook_tampered gave no tampered copies"
        accepted = []
        for what, bad_headers, bad_body in cases:
            assert (bad_headers, bad_body) != (headers, body), f"{what}: nothing changed"
            try:
                event = plugins.first("niaga_webhook_parse", plugin=self.plugin_name,
                                      headers=bad_headers, body=bad_body)
            except WebhookRejected:
                continue
            accepted.append(f"{what} changed: answered {event!r}")
        assert not accepted, ("tampered webhooks must raise WebhookRejected: "
                              + "; ".join(accepted))


# -- carriers ---------------------------------------------------------------------------------


class CarrierConformance(PluginConformance):
    """The carrier family's rules:

    - offers at least one option for the suite's cart, priced in the market's currency
      (int minor units, not negative), with ids unique and prefixed ``<name>:``,
      ``carrier`` its name, ``kind`` ship or pickup, a pickup naming a store of the market
      (``location_id``) and any location named being one of the market's;
    - each option, chosen, prices a cart whose totals add up;
    - without an address it still answers a list (perhaps empty) by the same rules;
    - ``create_shipment`` and ``track_shipment`` answer None for another carrier; its own
      shipment has a tracking number (the same again for the same fulfilment, unless
      ``repeatable_shipments = False``), and tracking it answers a status.

    Attributes: ``address`` (the cart's address: a dict; ``country`` defaults to the
    market's), ``lines`` (``(sku, quantity, unit price in major units, grams)``);
    methods :meth:`locations` and :meth:`stock` describe the market's stock.
    """

    __test__ = False
    family = "carrier"
    address: ClassVar[dict[str, Any]] = {"city": "Testville", "region": "Test Region",
                                         "postal_code": "10000", "line1": "1 Test Street"}
    lines: ClassVar[list[tuple[str, int, str, int]]] = [("CONF-A", 2, "12", 300),
                                                        ("CONF-B", 1, "30", 500)]
    repeatable_shipments: ClassVar[bool] = True

    def cart_address(self, market: Market) -> Address:
        from kernel.cart import Address

        return Address(**{"country": market.countries[0], **self.address})

    def locations(self, market: Market) -> list[Location]:
        """The market's locations: a warehouse, a store in the address's city and region,
        and a store elsewhere."""
        from kernel.catalog import Location

        address = self.cart_address(market)
        code = market.code.lower()
        return [
            Location(id=f"{code}-wh", name="Conformance Warehouse", kind="warehouse",
                     markets=[market.code], country=address.country, region="Elsewhere",
                     city="Warehouse Town", postal_code="99999"),
            Location(id=f"{code}-store-1", name="Conformance Store", kind="store",
                     markets=[market.code], country=address.country, region=address.region,
                     city=address.city, postal_code=address.postal_code, line1="2 Shop Street"),
            Location(id=f"{code}-store-2", name="Conformance Store Two", kind="store",
                     markets=[market.code], country=address.country, region="Far Region",
                     city="Far Town", postal_code="88888"),
        ]

    def stock(self, market: Market, skus: list[str], locations: list[Location]) -> dict:
        """Stock levels ``(sku, location id) -> StockLevel``: plenty of everything, everywhere."""
        from kernel.inventory import StockLevel

        return {(sku, loc.id): StockLevel(sku=sku, location_id=loc.id, on_hand=50)
                for sku in skus for loc in locations}

    def carrier_cart(self, market: Market, plugins: MarketPlugins, *, address: bool = True
                     ) -> Cart:
        from kernel.money import Money

        spec = [(sku, qty, Money.parse(price, market.currency).amount, "standard", grams)
                for sku, qty, price, grams in self.lines]
        cart, _ = self.priced_cart(market, plugins, spec,
                                   address=self.cart_address(market) if address else None)
        return cart

    def options(self, address: bool = True) -> tuple[Market, MarketPlugins, Cart, list[Any],
                                                     list[Location]]:
        from kernel.delivery import DeliveryContext

        market = self.build_market()
        plugins = self.plugins_for(market, _NoTax())
        cart = self.carrier_cart(market, plugins, address=address)
        locations = self.locations(market)
        stock = self.stock(market, [li.sku for li in cart.lines], locations)
        context = DeliveryContext(cart=cart, locations=locations, stock=stock)
        options = plugins.collect("niaga_delivery_options", context=context, market=market)
        return market, plugins, cart, options, locations

    def check_options(self, market: Market, options: list[Any], locations: list[Location]
                      ) -> None:
        from kernel.delivery import DeliveryOption

        ids = [o.id for o in options]
        assert len(ids) == len(set(ids)), f"option ids repeat: {ids}"
        by_id = {loc.id: loc for loc in locations}
        for option in options:
            assert isinstance(option, DeliveryOption), f"{option!r} is not a DeliveryOption"
            where = f"option {option.id!r}"
            assert option.id.startswith(f"{self.plugin_name}:"), (
                f"{where}: ids start with '{self.plugin_name}:' (unique within the market)")
            assert option.carrier == self.plugin_name, f"{where}: carrier is {option.carrier!r}"
            assert option.kind in ("ship", "pickup"), f"{where}: kind {option.kind!r}"
            assert isinstance(option.label, str) and option.label, f"{where}: no label"
            _money_in(option.price, market.currency, f"{where} price")
            assert option.price.amount >= 0, f"{where}: negative price {option.price}"
            if option.kind == "pickup":
                loc = by_id.get(option.location_id or "")
                assert loc is not None and loc.kind == "store", (
                    f"{where}: a pickup names a store of the market as location_id, "
                    f"not {option.location_id!r}")
            elif option.location_id is not None:
                assert option.location_id in by_id, (
                    f"{where}: location_id {option.location_id!r} is not a market location")

    def test_offers_options_in_the_market_currency(self):
        market, _plugins, cart, options, locations = self.options()
        assert options, (f"offered nothing for a {cart.total} cart to {cart.address}; set "
                         "address, lines or locations() so that it offers something")
        self.check_options(market, options, locations)

    def test_without_an_address_the_rules_still_hold(self):
        market, _plugins, _cart, options, locations = self.options(address=False)
        self.check_options(market, options, locations)

    def test_each_option_prices_a_cart(self):
        from kernel.money import Money
        from kernel.pricing import price_cart
        from kernel.services.carts import as_delivery
        from kernel.totals import check_totals

        market, plugins, cart, options, locations = self.options()
        by_id = {loc.id: loc for loc in locations}
        spec = [(sku, qty, Money.parse(price, market.currency).amount, "standard", grams)
                for sku, qty, price, grams in self.lines]
        for option in options:
            chosen, products = build_cart(market, spec, address=cart.address)
            chosen.delivery = as_delivery(option)
            pickup = by_id.get(option.location_id or "") if option.kind == "pickup" else None
            price_cart(chosen, market, products, plugins, pickup)
            check_totals(chosen)
            assert chosen.shipping_total == option.price

    def _shipment(self) -> tuple[MarketPlugins, Any, Any]:
        from kernel.orders import Fulfillment
        from kernel.services.carts import as_delivery

        market, plugins, cart, options, _locations = self.options()
        if not options:
            pytest.skip("offers no option to ship an order with")
        cart.delivery = as_delivery(options[0])
        order = order_for(cart, market)
        fulfillment = Fulfillment(id="ful-conformance-1",
                                  location_id=options[0].location_id or "wh",
                                  lines=[{"line_id": li.id, "quantity": li.quantity}
                                         for li in order.lines], at=0.0)
        return plugins, order, fulfillment

    def test_ships_and_tracks_its_own_shipments_only(self):
        from kernel.delivery import Shipment, TrackingStatus

        plugins, order, fulfillment = self._shipment()
        other = plugins.first("niaga_create_shipment", carrier="another-carrier", order=order,
                              fulfillment=fulfillment)
        assert other is None, f"booked {other!r} for another carrier"
        shipment = plugins.first("niaga_create_shipment", carrier=self.plugin_name,
                                 order=order, fulfillment=fulfillment)
        assert isinstance(shipment, Shipment), f"create_shipment answered {shipment!r}"
        assert shipment.carrier == self.plugin_name
        assert isinstance(shipment.tracking_number, str) and shipment.tracking_number.strip()
        if self.repeatable_shipments:
            again = plugins.first("niaga_create_shipment", carrier=self.plugin_name,
                                  order=order, fulfillment=fulfillment)
            assert again.tracking_number == shipment.tracking_number, (
                "booking the same fulfilment again gave another tracking number "
                "(set repeatable_shipments = False if the carrier cannot avoid it)")
        number = shipment.tracking_number
        assert plugins.first("niaga_track_shipment", carrier="another-carrier",
                             tracking_number=number) is None
        status = plugins.first("niaga_track_shipment", carrier=self.plugin_name,
                               tracking_number=number)
        assert isinstance(status, TrackingStatus), f"track_shipment answered {status!r}"
        assert (status.carrier, status.tracking_number) == (self.plugin_name, number)
        assert isinstance(status.status, str) and status.status


# -- loyalty ----------------------------------------------------------------------------------


class LoyaltyConformance(PluginConformance):
    """The loyalty family's rules, against the hooks ``niaga_loyalty_quote(cart, market,
    customer_id, points, balance)``, ``niaga_loyalty_earn(order, market,
    lifetime_base_points)`` and ``niaga_loyalty_tier(lifetime_base_points, market)``:

    - a quote within the balance is a ``LoyaltyUse`` of at most the points asked, its
      discount ``Money`` in the cart's currency between 0 and the cart's total, and the
      cart priced with it adds up;
    - asked for more than the balance it refuses (``ValidationError``) or uses at most
      the balance;
    - an order earns ``(points, base_points)``, non-negative ints, the same every time;
      redeem, earn, then reverse both on a ledger and the balance is back where it was;
    - there is a tier for 0 lifetime points.

    Attributes: ``balance``, ``points`` (a redemption within it), ``lifetime`` (lifetime
    base points), ``lines`` (``(sku, quantity, unit price in major units)``).
    """

    __test__ = False
    family = "loyalty"
    balance: ClassVar[int] = 1000
    points: ClassVar[int] = 100
    lifetime: ClassVar[int] = 0
    lines: ClassVar[list[tuple[str, int, str]]] = [("LOY-A", 2, "40"), ("LOY-B", 1, "25")]
    customer_id: ClassVar[str] = "cust-conformance"

    def loyalty_cart(self, market: Market, plugins: MarketPlugins) -> Cart:
        from kernel.money import Money

        spec = [(sku, qty, Money.parse(price, market.currency).amount, "standard", 100)
                for sku, qty, price in self.lines]
        cart, _ = self.priced_cart(market, plugins, spec, customer_id=self.customer_id)
        return cart

    def _setup(self) -> tuple[Market, MarketPlugins, Cart]:
        market = self.build_market()
        plugins = self.plugins_for(market, _NoTax())
        return market, plugins, self.loyalty_cart(market, plugins)

    def quote(self, plugins: MarketPlugins, cart: Cart, market: Market, points: int,
              balance: int) -> Any:
        return plugins.first("niaga_loyalty_quote", cart=cart, market=market,
                             customer_id=self.customer_id, points=points, balance=balance)

    def earn(self, plugins: MarketPlugins, order: Order, market: Market, lifetime: int) -> Any:
        return plugins.first("niaga_loyalty_earn", order=order, market=market,
                             lifetime_base_points=lifetime)

    def test_a_quote_within_the_balance(self):
        from kernel.cart import LoyaltyUse
        from kernel.totals import check_totals

        market, plugins, cart = self._setup()
        use = self.quote(plugins, cart, market, self.points, self.balance)
        assert isinstance(use, LoyaltyUse), f"quoted {use!r}, not a LoyaltyUse"
        assert_no_floats(use, "LoyaltyUse")
        assert isinstance(use.points, int) and 0 < use.points <= self.points, (
            f"used {use.points} points of the {self.points} asked")
        _money_in(use.discount, cart.currency, "discount")
        assert 0 <= use.discount.amount <= cart.total.amount, (
            f"a discount of {use.discount} on a {cart.total} cart")
        assert use.source == self.plugin_name, f"source is {use.source!r}"
        cart.loyalty = use
        self._reprice(cart, market, plugins)
        check_totals(cart)
        assert cart.total.amount >= 0

    def _reprice(self, cart: Cart, market: Market, plugins: MarketPlugins) -> None:
        from kernel.catalog import Product
        from kernel.pricing import price_cart

        products = {li.sku: Product(sku=li.sku, names={"en-US": li.sku},
                                    prices={market.code: li.unit_price}, tax_class=li.tax_class,
                                    weight_grams=li.weight_grams) for li in cart.lines}
        price_cart(cart, market, products, plugins)

    def test_never_more_than_the_balance(self):
        from kernel.errors import ValidationError

        market, plugins, cart = self._setup()
        for balance in (self.points - 1, 0):
            try:
                use = self.quote(plugins, cart, market, self.points, balance)
            except ValidationError:
                continue
            used = getattr(use, "points", None)
            assert isinstance(used, int) and 0 < used <= balance, (
                f"quoted {use!r} for {self.points} points with a balance of {balance}: refuse "
                "with ValidationError.field('points', ...) or use at most the balance")

    def test_earn_redeem_and_reverse_balance_to_zero(self):
        market, plugins, cart = self._setup()
        use = self.quote(plugins, cart, market, self.points, self.balance)
        cart.loyalty = use
        self._reprice(cart, market, plugins)
        order = order_for(cart, market)
        earned = self.earn(plugins, order, market, self.lifetime)
        assert earned is not None, "an order of its own market earned None"
        assert isinstance(earned, tuple) and len(earned) == 2, (
            f"earn answered {earned!r}, not (points, base_points)")
        points, base = earned
        for what, value in (("points", points), ("base_points", base)):
            assert isinstance(value, int) and not isinstance(value, bool) and value >= 0, (
                f"earned {what} {value!r}: a non-negative int")
        assert tuple(self.earn(plugins, order, market, self.lifetime)) == (points, base), (
            "earn must be deterministic: the kernel reverses what it recorded")
        self.check_ledger(order, use.points, points, base)

    def check_ledger(self, order: Order, redeemed: int, points: int, base: int) -> None:
        """Redeem and earn on a ledger, cancel the order: the balance is back where it was.

        Uses the kernel's own ledger rules (``kernel.services.loyalty``) when present."""
        try:
            from kernel.loyalty import LedgerEntry
            from kernel.services.loyalty import redemption, reversal
        except ImportError:  # pragma: no cover - a kernel without a ledger: simulate one
            moves = [(-redeemed, 0), (points, base)]
            balance = self.balance + sum(m[0] for m in moves)
            lifetime = self.lifetime + sum(m[1] for m in moves)
            assert self.balance - redeemed >= 0 and balance >= 0
            balance -= sum(m[0] for m in moves)
            lifetime -= sum(m[1] for m in moves)
        else:
            assert order.customer_id is not None
            entries = [*redemption(order),
                       LedgerEntry(id=f"earn:{order.id}", customer_id=order.customer_id,
                                   points=points, kind="earn", order_id=order.id,
                                   market=order.market, base_points=base)]
            assert sum(-e.points for e in entries if e.kind == "redeem") == redeemed
            balance = self.balance + sum(e.points for e in entries)
            lifetime = self.lifetime + sum(e.base_points for e in entries)
            assert self.balance - redeemed >= 0 and balance >= 0, "the balance went negative"
            undone = reversal(order, "evt-conformance-cancel", entries, balance, full=True)
            balance += sum(e.points for e in undone)
            lifetime += sum(e.base_points for e in undone)
        assert (balance, lifetime) == (self.balance, self.lifetime), (
            f"after redeeming {redeemed}, earning ({points}, {base}) and cancelling, the "
            f"balance is {balance} (was {self.balance}) and lifetime {lifetime} "
            f"(was {self.lifetime})")

    def test_a_tier_for_zero_lifetime_points(self):
        market = self.build_market()
        plugins = self.plugins_for(market)
        tier = plugins.first("niaga_loyalty_tier", lifetime_base_points=0, market=market)
        assert tier is not None, "no tier for a customer with 0 lifetime points"
        assert_no_floats(tier, "tier")
