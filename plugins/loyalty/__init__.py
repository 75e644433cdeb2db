"""Loyalty plugins: ``points`` (earn per currency unit, tiers, redeem as a discount)."""
