"""Niaga's kernel: carts, orders, inventory and money; everything else is a plugin.

Plugins import only these public names.
"""

from kernel.cart import Adjustment, Cart, LoyaltyUse
from kernel.errors import GatewayError, NiagaError, ValidationError
from kernel.hookspecs import Veto
from kernel.markets import Market, MoneyPolicy
from kernel.money import Money, allocate, percent, round_fraction
from kernel.plugins import hookimpl

__all__ = [
    "Adjustment",
    "Cart",
    "GatewayError",
    "LoyaltyUse",
    "Market",
    "Money",
    "MoneyPolicy",
    "NiagaError",
    "ValidationError",
    "Veto",
    "allocate",
    "hookimpl",
    "percent",
    "round_fraction",
]
