"""Every call to a payment plugin goes through here: one function per hook.

Plugin calls run in a worker thread (a gateway's HTTPS call must not stall the
event loop), and any plugin failure becomes a GatewayError naming the gateway.
"""

from __future__ import annotations

from typing import Any

from kernel.errors import GatewayError, NiagaError
from kernel.money import Money
from kernel.payments import (
    OperationResult,
    PaymentOperation,
    PaymentRequest,
    PaymentResult,
    WebhookEvent,
)
from kernel.runtime import Niaga


async def _call(ctx: Niaga, market: str, hook: str, **kwargs: Any) -> Any:
    plugins = ctx.plugins_for(market)
    gateway = kwargs["gateway"]
    try:
        return await ctx.offload(plugins.first, market=market, plugin=gateway, hook=hook,
                                 **kwargs)
    except NiagaError:
        raise
    except Exception as exc:
        raise GatewayError(f"payment gateway {gateway} failed: {exc}", gateway=gateway) from exc


async def authorize(ctx: Niaga, gateway: str, request: PaymentRequest) -> PaymentResult:
    result = await _call(ctx, request.market, "niaga_payment_authorize", gateway=gateway,
                         request=request)
    if result is None:
        raise GatewayError(f"payment gateway {gateway} gave no answer", gateway=gateway)
    return result


async def operate(ctx: Niaga, market: str, gateway: str, action: str,
                  operation: PaymentOperation) -> OperationResult:
    """capture, void or refund; a refusal is a GatewayError naming the gateway and action."""
    hooks = {"capture": "niaga_payment_capture", "void": "niaga_payment_void",
             "refund": "niaga_payment_refund"}
    result = await _call(ctx, market, hooks[action], gateway=gateway, operation=operation)
    if result is None or not result.ok:
        why = result.message if result else "no answer"
        raise GatewayError(f"{gateway} refused to {action}: {why}", gateway=gateway)
    return result


def operation(order_id: str, reference: str | None, amount: Money, key: str) -> PaymentOperation:
    return PaymentOperation(order_id=order_id, reference=reference, amount=amount,
                            idempotency_key=key)


def _parse(mp: Any, name: str, headers: dict[str, str], body: bytes) -> WebhookEvent | None:
    return mp.first("niaga_webhook_parse", plugin=name, headers=headers, body=body)


async def parse_webhook(ctx: Niaga, plugin: str, headers: dict[str, str],
                        body: bytes) -> WebhookEvent | None:
    """Ask the markets that enable ``plugin`` to verify and parse a webhook."""
    from kernel.payments import WebhookRejected

    for code, mp in ctx.plugins.items():
        if plugin in mp.names:
            try:
                event = await ctx.offload(_parse, mp, plugin, headers, body, market=code,
                                          plugin=plugin)
            except (WebhookRejected, NiagaError):
                raise
            except Exception as exc:  # a parser that crashes on odd input rejects it
                raise WebhookRejected(f"{plugin} could not parse this webhook: {exc}") from exc
            if event is not None:
                return event
    return None
