"""Risk plugins: ``risk-rules`` (order value, velocity, country mismatch)."""
