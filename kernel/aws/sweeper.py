"""The sweeper function, on a schedule: expires unpaid orders past their payment window and
releases stock held by checkouts that never became orders (``kernel.services.orders.sweep``).
No Litestar here.

Metrics (EMF, namespace ``Niaga``, dimension ``service=niaga-sweeper``), when a run did
something: ``OrdersExpired`` and ``UnitsReleased``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit

from kernel.aws import config
from kernel.services.orders import sweep

logger = Logger(service="niaga-sweeper")
metrics = Metrics(namespace="Niaga", service="niaga-sweeper")
config.route_kernel_logs(logger)  # kernel logs as JSON too, on Lambda


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    counts = config.run(sweep(config.shared_niaga()))
    logger.info("swept", extra=counts)
    try:
        for name, key in (("OrdersExpired", "orders_expired"), ("UnitsReleased", "units_released")):
            if counts.get(key):
                metrics.add_metric(name=name, unit=MetricUnit.Count, value=counts[key])
    finally:
        if metrics.metric_set:
            metrics.flush_metrics()
        else:
            metrics.clear_metrics()
    return counts
