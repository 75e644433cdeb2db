"""The Litestar application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme

from kernel.api.admin import AdminController, WebhookController
from kernel.api.auth import digest
from kernel.api.carts import CartController
from kernel.api.customers import ProfileController
from kernel.api.errors import exception_handlers
from kernel.api.inventory import InventoryController
from kernel.api.openapi import document_problems
from kernel.api.orders import MeController, OrderController
from kernel.api.ratelimit import CheckoutLimiter
from kernel.api.reports import ReportController
from kernel.api.returns import ExchangeController
from kernel.api.storefront import StorefrontController
from kernel.runtime import Niaga


class _MsgspecOnly(Litestar):
    """Litestar without the pydantic and attrs plugins it adds whenever those libraries are
    importable: the API speaks msgspec only, so whether a test or tool happened to install
    pydantic must change neither its behaviour nor its cold start (~0.14 s to import)."""

    @staticmethod
    def _get_default_plugins(plugins: list[Any]) -> list[Any]:
        from litestar.plugins.core import MsgspecDIPlugin

        return [*plugins, MsgspecDIPlugin()]

MAX_BODY_BYTES = 256 * 1024  # carts and admin bodies are small; webhooks too


def create_app(niaga: Niaga, *, admin_token: str, manage_lifecycle: bool = True,
               sweep_every_s: float | None = None, cors: bool = False,
               extra_route_handlers: list[Any] | None = None) -> Litestar:
    """Build the HTTP API around an already-wired :class:`Niaga`.

    ``manage_lifecycle`` opens and closes the store with the app (the CLI and
    tests); on Lambda the container owns it instead.
    """

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        import asyncio

        from kernel.services.orders import sweep

        sweeper = None
        if manage_lifecycle:
            await niaga.start()
        niaga.dispatcher.kick()  # deliver what a previous run left in the outbox
        if sweep_every_s:
            async def loop() -> None:
                while True:
                    try:
                        await sweep(niaga)
                    except Exception:  # the next round tries again
                        import logging

                        logging.getLogger("niaga.sweeper").exception("sweep failed")
                    await asyncio.sleep(sweep_every_s)

            sweeper = asyncio.get_running_loop().create_task(loop())
        try:
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
            if manage_lifecycle:
                await niaga.close()

    app = _MsgspecOnly(
        route_handlers=[StorefrontController, CartController, OrderController, MeController,
                        ProfileController,
                        AdminController, ReportController, InventoryController, ExchangeController,
                        WebhookController,
                        *(extra_route_handlers or [])],
        dependencies={"niaga": Provide(lambda: niaga, sync_to_thread=False, use_cache=True)},
        exception_handlers=exception_handlers,
        # the checkout limiter counts in this process (kernel.api.ratelimit says what that means)
        state=State({"admin_token_digest": digest(admin_token),
                     "checkout_limiter": CheckoutLimiter.from_env()}),
        lifespan=[lifespan],
        request_max_body_size=MAX_BODY_BYTES,
        cors_config=CORSConfig(allow_origins=["*"]) if cors else None,
        openapi_config=OpenAPIConfig(
            title="Niaga", version="0.1.0",
            description="One source of truth for carts, orders, stock and money.",
            components=Components(security_schemes={
                "bearer": SecurityScheme(type="http", scheme="bearer",
                                         description="admin or customer token")}),
        ),
        # no Litestar logging setup (a queue-listener thread on stderr): errors are logged
        # by kernel.api.errors to "niaga.api", and the host configures logging (uvicorn,
        # the Lambda runtime, Powertools)
        logging_config=None,
        debug=False,
    )
    document_problems(app)  # every problem+json status in /schema/openapi.json
    return app
