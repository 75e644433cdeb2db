"""The API function: the Litestar app through Mangum (``lifespan="off"``), built once per
container, with Powertools Logger, Metrics and Idempotency around it.

Metrics (EMF, namespace ``Niaga``) are read off the responses of
``POST /carts/{id}/checkout`` so the kernel stays free of AWS imports: a 201 counts
``OrdersPlaced`` and adds the order total to ``Revenue`` (major units of the market's
currency, dimensions ``market`` and ``currency``); a 4xx/5xx counts ``CheckoutFailures``
twice, once in total and once by ``reason``, the problem's ``code`` (``out_of_stock``,
``payment_declined``, ``internal`` …; ``http_<status>`` without one). Every metric also
has the dimension ``service=niaga-api``. A 200 is a replayed checkout and counts nothing.
docs/operating-aws.md lists them with the alarms built on them.

Why two idempotency layers
--------------------------
The kernel already makes ``Idempotency-Key`` exact: a checkout, capture or return writes
its idempotency record in the same ``TransactWriteItems`` as the change, so a retry
returns the same order and charges once, on every store. That is the layer correctness
rests on, and it stays the only one when Powertools' table is absent or unreachable.

Powertools Idempotency (``DynamoDBPersistenceLayer`` on ``NIAGA_IDEMPOTENCY_TABLE``) is
added in front of the same three routes, keyed on (method, path, ``Idempotency-Key``) with
the body as the payload to validate, because at the Lambda boundary it does what the
kernel cannot cheaply do: a retry of a *finished* request is answered from one read
without running the checkout again (no plugin calls, no gateway round trip), and a retry
that arrives *while* the first is still running gets a 409 ``in_progress`` at once instead
of racing it. Only successful (2xx) responses are stored; an error response removes the
in-progress record so the client's retry runs for real and meets the kernel's own rules.
The same key with a different body is a 422 naming ``Idempotency-Key``.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from kernel.aws import config

NAMESPACE = "Niaga"
SERVICE = {"service": "niaga-api"}  # on every metric, whatever POWERTOOLS_SERVICE_NAME says
logger = Logger(service="niaga-api")
metrics = Metrics(namespace=NAMESPACE, service="niaga-api")
config.route_kernel_logs(logger)  # kernel logs as JSON too, on Lambda

CHECKOUT = re.compile(r"^/carts/[^/]+/checkout/?$")
# checkout and money movements: the routes whose retries must charge/refund once
IDEMPOTENT = (CHECKOUT, re.compile(r"^/admin/orders/[^/]+/(capture|returns)/?$"))
IDEMPOTENCY_TTL_S = 24 * 3600
PROBLEM = "application/problem+json"

_mangum: Any = None
_idempotent: Any = None


def _adapter() -> Any:
    """Mangum around the app, built at the first call of a container."""
    global _mangum
    if _mangum is None:
        from mangum import Mangum

        from kernel.api.app import create_app

        settings = config.Settings.from_env()
        niaga = config.shared_niaga()
        config.run(niaga.start())  # DynamoStore.start is cheap; the container owns the store
        # Everything so far (imported modules, markets, plugins) lives as long as the
        # container: freeze it out of the cyclic GC. Building the app allocates enough to
        # trigger the process's first full collection, which would walk that whole heap
        # (~13 ms of a ~50 ms create_app, docs/BENCHMARKS.md "Serverless").
        gc.freeze()
        app = create_app(niaga, admin_token=config.admin_token(settings),
                         manage_lifecycle=False)
        _mangum = Mangum(app, lifespan="off")
    return _mangum


class _NotStored(Exception):
    """An error response: Powertools drops the in-progress record, the caller gets it."""

    def __init__(self, response: dict[str, Any]):
        super().__init__(response.get("statusCode"))
        self.response = response


def _idempotent_runner() -> Any:
    global _idempotent
    if _idempotent is None:
        settings = config.Settings.from_env()
        if not settings.idempotency_table:
            _idempotent = False
            return _idempotent
        from aws_lambda_powertools.utilities.idempotency import (
            DynamoDBPersistenceLayer,
            IdempotencyConfig,
            idempotent_function,
        )

        layer = DynamoDBPersistenceLayer(table_name=settings.idempotency_table)
        cfg = IdempotencyConfig(event_key_jmespath="[method, path, key]",
                                payload_validation_jmespath="body",
                                expires_after_seconds=IDEMPOTENCY_TTL_S)

        @idempotent_function(data_keyword_argument="request", persistence_store=layer,
                             config=cfg)
        def run(request: dict[str, Any], event: dict[str, Any], context: Any
                ) -> dict[str, Any]:
            response = _adapter()(event, context)
            if not 200 <= int(response.get("statusCode", 500)) < 300:
                raise _NotStored(response)
            return response

        run.config = cfg  # type: ignore[attr-defined]
        _idempotent = run
    return _idempotent


def _problem(status: int, title: str, detail: str, code: str,
             field: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"type": f"https://niaga.dev/problems/{code}", "title": title,
                            "status": status, "detail": detail, "code": code}
    if field:
        body["errors"] = [{"field": field, "message": detail}]
    return {"statusCode": status, "headers": {"content-type": PROBLEM},
            "body": json.dumps(body), "isBase64Encoded": False}


def _request(event: dict[str, Any]) -> tuple[str, str]:
    http = event.get("requestContext", {}).get("http", {})
    method = (http.get("method") or event.get("httpMethod") or "").upper()
    path = event.get("rawPath") or event.get("path") or ""
    return method, path


def _header(event: dict[str, Any], name: str) -> str | None:
    for key, value in (event.get("headers") or {}).items():
        if key.lower() == name:
            return value
    return None


def _ensure_loop() -> None:
    """Mangum runs each request on the thread's current loop, made when it was built; an
    ``asyncio.run`` elsewhere in the process (tests, a shared container) unsets it."""
    try:
        asyncio.get_event_loop()
    except RuntimeError:
        asyncio.set_event_loop(asyncio.new_event_loop())


def _serve(event: dict[str, Any], context: Any) -> dict[str, Any]:
    _ensure_loop()
    method, path = _request(event)
    key = _header(event, "idempotency-key")
    runner = (_idempotent_runner() if method == "POST" and key
              and any(p.match(path) for p in IDEMPOTENT) else False)
    if not runner:
        return _adapter()(event, context)
    from aws_lambda_powertools.utilities.idempotency.exceptions import (
        IdempotencyAlreadyInProgressError,
        IdempotencyPersistenceLayerError,
        IdempotencyValidationError,
    )

    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", "replace")
    request = {"method": method, "path": path, "key": key, "body": body}
    runner.config.register_lambda_context(context)
    try:
        return runner(request=request, event=event, context=context)
    except _NotStored as exc:
        return exc.response
    except IdempotencyAlreadyInProgressError:
        return _problem(409, "Request in progress",
                        "the same request is being handled right now; retry shortly",
                        "in_progress")
    except IdempotencyValidationError:
        return _problem(422, "Invalid input", "this key was used with a different request",
                        "invalid", field="Idempotency-Key")
    except IdempotencyPersistenceLayerError:
        # the kernel's own Idempotency-Key records still make the retry exact
        logger.exception("idempotency table unavailable; relying on the kernel's records")
        return _adapter()(event, context)


REASON = re.compile(r"^[a-z][a-z0-9_]{0,39}$")  # a problem code; bounds the dimension


def _reason(response: dict[str, Any], status: int) -> str:
    """The problem's ``code`` (a short, fixed vocabulary: never a message or an id)."""
    try:
        body = response.get("body") or ""
        if response.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        code = json.loads(body).get("code")
    except (ValueError, TypeError, AttributeError):
        code = None
    return code if isinstance(code, str) and REASON.match(code) else f"http_{status}"


def _record_metrics(event: dict[str, Any], response: dict[str, Any]) -> None:
    method, path = _request(event)
    if method != "POST" or not CHECKOUT.match(path):
        return
    status = int(response.get("statusCode", 500))
    if status >= 400:
        metrics.add_metric(name="CheckoutFailures", unit=MetricUnit.Count, value=1)
        with single_metric(name="CheckoutFailures", unit=MetricUnit.Count, value=1,
                           namespace=NAMESPACE, default_dimensions=SERVICE) as metric:
            metric.add_dimension(name="reason", value=_reason(response, status))
        return
    if status != 201:
        return  # a replay: counted when it was placed
    metrics.add_metric(name="OrdersPlaced", unit=MetricUnit.Count, value=1)
    try:
        body = response.get("body") or ""
        if response.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        order = json.loads(body)
        amount = float(Decimal(order["total"]["amount"]))
        market, currency = order["market"], order["total"]["currency"]
    except (ValueError, KeyError, TypeError, InvalidOperation):
        logger.warning("placed order without a readable total; revenue not recorded")
        return
    with single_metric(name="Revenue", unit=MetricUnit.NoUnit, value=amount,
                       namespace=NAMESPACE, default_dimensions=SERVICE) as metric:
        metric.add_dimension(name="market", value=market)
        metric.add_dimension(name="currency", value=currency)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        response = _serve(event, context)
        _record_metrics(event, response)
        return response
    finally:
        if metrics.metric_set:  # most requests are not checkouts: nothing to flush
            metrics.flush_metrics()
        else:
            metrics.clear_metrics()


def reset() -> None:
    """Forget the container's app (tests)."""
    global _mangum, _idempotent
    _mangum = None
    _idempotent = None
    config.reset()
