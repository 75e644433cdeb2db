"""Carrier plugins: ``flat-rate`` (fixed prices per option) and ``store-pickup``."""
