"""Payment plugins: ``testpay`` (development gateway) and ``bank-transfer`` (manual transfer)."""
