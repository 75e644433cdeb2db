"""Shared by the tax plugins: percent strings from settings and data files."""

from __future__ import annotations

import re
from fractions import Fraction

from kernel import percent

_RATE_RE = re.compile(r"^\d{1,3}(\.\d+)?$")


def parse_rate(key: str, text: str) -> tuple[Fraction, str]:
    """A percent string ("19", "7.25") as (exact fraction, label text); errors name ``key``."""
    cleaned = text.strip()
    if not _RATE_RE.match(cleaned):
        raise ValueError(f"{key}: {text!r} is not a percentage like \"19\" or \"7.25\"")
    try:
        return percent(cleaned), cleaned
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from exc
