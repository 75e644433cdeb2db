"""The customer's own profile: ``GET``/``PATCH /me`` and the address book under
``/me/addresses`` (``/me/cart`` and ``/me/orders`` are in :mod:`kernel.api.orders`).
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post, put
from litestar.di import Provide
from litestar.params import Parameter
from msgspec import UNSET, Meta, Struct, UnsetType

from kernel.api.auth import provide_customer
from kernel.api.schemas import (
    MeLoyaltyRead,
    MeRead,
    SavedAddressRead,
    ShortText,
    TierRead,
    profile_fields,
)
from kernel.runtime import Niaga
from kernel.services import customers, loyalty
from kernel.store.base import Customer

Phone = Annotated[str, Meta(max_length=32, pattern=r"^\+?[0-9 ()-]{4,32}$")]
Locale = Annotated[str, Meta(max_length=16, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")]
Email = Annotated[str, Meta(max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")]
Channel = Annotated[str | None, Parameter(
    header="Niaga-Channel", required=False, max_length=32,
    description="the channel this change comes from (web, app, pos, marketplace, social): "
                "recorded with every consent change")]


class ConsentsUpdate(Struct, forbid_unknown_fields=True):
    """Topics not given keep their answer."""

    marketing_email: bool | UnsetType = UNSET
    marketing_sms: bool | UnsetType = UNSET
    marketing_whatsapp: bool | UnsetType = UNSET


class ProfileUpdate(Struct, forbid_unknown_fields=True):
    """Fields not given stay as they are; ``null`` clears name, phone or locale."""

    name: ShortText | UnsetType | None = UNSET
    phone: Phone | UnsetType | None = UNSET
    locale: Locale | UnsetType | None = UNSET  # one of a market's locales
    consents: ConsentsUpdate | UnsetType = UNSET


class SavedAddressCreate(Struct, forbid_unknown_fields=True):
    """An address for the book (``PUT`` replaces every field; ``default`` not given keeps
    the address's flag, and a book's first address becomes its default)."""

    country: Annotated[str, Meta(pattern=r"^[A-Z]{2}$")]
    label: Annotated[str, Meta(max_length=50)] | None = None
    region: ShortText | None = None
    city: ShortText | None = None
    postal_code: Annotated[str, Meta(max_length=20)] | None = None
    line1: ShortText | None = None
    name: ShortText | None = None
    email: Email | None = None
    phone: Phone | None = None
    default: bool | None = None

    def fields(self) -> dict[str, Any]:
        out = msgspec.structs.asdict(self)
        out.pop("default")
        return out


def _given(struct: Struct) -> dict[str, Any]:
    return {k: v for k, v in msgspec.structs.asdict(struct).items() if v is not UNSET}


async def me_read(niaga: Niaga, customer: Customer, market: str | None = None) -> MeRead:
    summary = await loyalty.account_summary(niaga, customer.id, market)
    tier = summary["tier"]
    return MeRead(id=customer.id, email=customer.email, name=customer.name,
                  loyalty=MeLoyaltyRead(
                      balance=summary["balance"], lifetime_points=summary["lifetime_points"],
                      tier=TierRead(name=str(tier["name"]),
                                    multiplier=str(tier.get("multiplier", "1")))
                      if isinstance(tier, dict) else None,
                      market=summary["market"]),
                  **profile_fields(customer))


def _address_read(address: Any) -> SavedAddressRead:
    return SavedAddressRead(**msgspec.structs.asdict(address))


class ProfileController(Controller):
    path = "/me"
    tags = ["customer"]
    dependencies = {"customer": Provide(provide_customer)}

    @get("/")
    async def me(self, niaga: Niaga, customer: Customer,
                 market: Annotated[str | None, Parameter(
                     query="market", required=False, min_length=2, max_length=2,
                     description="whose tiers to show (default: the first market that "
                                 "runs a loyalty programme)")] = None) -> MeRead:
        return await me_read(niaga, customer, market)

    @patch("/")
    async def update(self, niaga: Niaga, customer: Customer, data: ProfileUpdate,
                     channel: Channel = None) -> MeRead:
        fields = _given(data)
        consents = _given(fields.pop("consents", ConsentsUpdate()))
        updated = await customers.update_profile(niaga, customer, fields, consents, channel)
        return await me_read(niaga, updated)

    @post("/addresses", status_code=201)
    async def add_address(self, niaga: Niaga, customer: Customer,
                          data: SavedAddressCreate) -> SavedAddressRead:
        return _address_read(await customers.add_address(niaga, customer, data.fields(),
                                                         data.default))

    @put("/addresses/{address_id:str}")
    async def replace_address(self, niaga: Niaga, customer: Customer, address_id: str,
                              data: SavedAddressCreate) -> SavedAddressRead:
        return _address_read(await customers.replace_address(
            niaga, customer, address_id, data.fields(), data.default))

    @delete("/addresses/{address_id:str}", status_code=204)
    async def delete_address(self, niaga: Niaga, customer: Customer, address_id: str) -> None:
        await customers.delete_address(niaga, customer, address_id)
