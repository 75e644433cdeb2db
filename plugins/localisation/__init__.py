"""Localisation plugins: ``fx`` (prices converted from a base market with a rate table)."""
