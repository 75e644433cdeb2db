"""Tax plugins: ``vat`` (rates per tax class) and ``us-sales-tax`` (US state rates)."""
