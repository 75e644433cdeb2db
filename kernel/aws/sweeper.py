"""The sweeper function, on a schedule: expires unpaid orders past their payment window and
releases stock held by checkouts that never became orders (``kernel.services.orders.sweep``).
No Litestar here."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger

from kernel.aws import config
from kernel.services.orders import sweep

logger = Logger(service="niaga-sweeper")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    counts = config.run(sweep(config.shared_niaga()))
    logger.info("swept", extra=counts)
    return counts
