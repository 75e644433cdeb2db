"""The ``kurir-id`` carrier plugin: Niaga's hooks on top of the tariff card.

- ``niaga_delivery_options``: once the cart has an Indonesian address, one ship option
  per service that serves the address's zone, priced per chargeable kilogram.
- ``niaga_before_place_order``: refuses a cash-on-delivery order whose service does not
  collect cash (``cod = false``).
- ``niaga_create_shipment`` / ``niaga_track_shipment``: an offline booking. The tracking
  number is derived from the order and the fulfilment; no courier API is called.
"""

from __future__ import annotations

import hashlib
import re

from kernel import Cart, Market, Veto, hookimpl
from kernel.delivery import DeliveryContext, DeliveryOption, Shipment, TrackingStatus

from niaga_kurir_id.tariff import KurirConfig, Service, Tariff

TRACKING = re.compile(r"KID([A-Z]{2,8})(\d{11})")  # KID + service + 10 digits + check digit
COD_METHODS = frozenset({"cod"})  # payment method ids that mean "the courier collects cash"


def luhn_digit(digits: str) -> str:
    """The Luhn check digit for a string of digits (catches one mistyped digit)."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        n = int(char) * (2 if i % 2 == 0 else 1)
        total += n - 9 if n > 9 else n
    return str(-total % 10)


def tracking_number(service: str, order_id: str, fulfillment_id: str) -> str:
    """``KID<service><10 digits><check digit>``, the same for the same order and fulfilment."""
    seed = hashlib.sha256(f"{order_id}:{fulfillment_id}".encode()).hexdigest()
    body = f"{int(seed, 16) % 10**10:010d}"
    return f"KID{service}{body}{luhn_digit(body)}"


class KurirId:
    name = "kurir-id"  # must equal the entry-point name
    family = "carrier"
    Config = KurirConfig

    def __init__(self, config: KurirConfig, market: Market):
        self.config = config
        self.market = market
        self.tariff = Tariff(config, market.currency)  # ValueError("<key>: ...") if bad
        self.countries = frozenset(c.upper() for c in market.countries)

    def option_id(self, code: str) -> str:
        return f"{self.name}:{code.lower()}"

    def service_of(self, option_id: str | None) -> Service | None:
        """The service behind one of our option ids (None if unknown, e.g. since removed)."""
        for code, service in self.tariff.services.items():
            if option_id == self.option_id(code):
                return service
        return None

    @hookimpl
    def niaga_delivery_options(self, context: DeliveryContext,
                               market: Market) -> list[DeliveryOption]:
        cart = context.cart
        address = cart.address
        # the price depends on where the parcel goes: nothing to offer before the address
        if not cart.lines or address is None or address.country.upper() not in self.countries:
            return []
        zone = self.tariff.zone_for(address.postal_code, address.region)
        if zone is None:
            return []  # an address the merchant's tariff does not cover
        grams = self.tariff.weight_grams([(li.weight_grams, li.quantity) for li in cart.lines])
        options = []
        for code, service in self.tariff.services.items():
            price = self.tariff.price(service, zone, grams)
            if price is not None:
                options.append(DeliveryOption(id=self.option_id(code), kind="ship",
                                              carrier=self.name,
                                              label=self.tariff.label(service, zone),
                                              price=price))
        return options

    @hookimpl
    def niaga_before_place_order(self, cart: Cart, context) -> Veto | None:
        # context: kernel.checkout.CheckoutContext (the payment method, the email...)
        delivery = cart.delivery
        if delivery is None or delivery.carrier != self.name:
            return None
        service = self.service_of(delivery.option_id)
        if service is not None and not service.cod and context.payment_method in COD_METHODS:
            return Veto(f"{self.name}:cod",
                        f"{delivery.label} does not collect cash on delivery: choose another "
                        f"delivery or pay another way")
        return None

    @hookimpl
    def niaga_create_shipment(self, carrier: str, order, fulfillment) -> Shipment | None:
        if carrier != self.name:
            return None
        # A real integration books the parcel here (this hook runs in a worker thread, so
        # a blocking HTTPS call with a timeout is fine) and returns the courier's airway
        # bill number. This package books offline: the number is derived, nothing is sent.
        option_id = order.delivery.option_id if order.delivery else ""
        code = option_id.removeprefix(f"{self.name}:").upper()
        if not re.fullmatch(r"[A-Z]{2,8}", code):
            code = "PKG"
        return Shipment(carrier=self.name,
                        tracking_number=tracking_number(code, order.id, fulfillment.id))

    @hookimpl
    def niaga_track_shipment(self, carrier: str, tracking_number: str) -> TrackingStatus | None:
        if carrier != self.name:
            return None
        match = TRACKING.fullmatch(tracking_number.strip().upper())
        if match is None or luhn_digit(match.group(2)[:-1]) != match.group(2)[-1]:
            return TrackingStatus(carrier=self.name, tracking_number=tracking_number,
                                  status="unknown", detail="not a Kurir ID tracking number")
        return TrackingStatus(carrier=self.name, tracking_number=tracking_number,
                              status="label_created",
                              detail=f"{match.group(1)} parcel booked offline; no courier "
                                     f"API is called, so the status never changes")
