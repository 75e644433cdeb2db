"""Configuration of the Lambda functions, read from the environment, and the kernel they share.

=============================  ==========================================================
``NIAGA_TABLE``                the single DynamoDB table (required)
``NIAGA_IDEMPOTENCY_TABLE``    Powertools' idempotency table (the API function)
``NIAGA_EVENT_BUS``            the EventBridge bus the worker publishes to (default: default)
``NIAGA_MARKETS_PARAM``        an SSM parameter holding the markets TOML file; without it
                               the demo markets shipped with the kernel
``NIAGA_ADMIN_TOKEN``          the admin bearer token, or ``NIAGA_ADMIN_TOKEN_PARAM``: an SSM
                               SecureString parameter holding it
``NIAGA_SECRETS``              names of plugin secrets (comma-separated, e.g.
                               ``STRIPE_API_KEY_DE``), each read from the SSM parameter
                               ``NIAGA_SECRETS_PREFIX`` + name (a SecureString) into the
                               environment variable of that name, where a plugin's
                               ``*_env`` setting looks for it; unset: no SSM call
``NIAGA_DYNAMODB_ENDPOINT``    optional endpoint override (``moto_server``, DynamoDB Local)
=============================  ==========================================================

Everything here is built lazily, once per container (a warm Lambda reuses it): the markets
file and the secrets are read when a container builds its kernel, at its first invocation,
and kept for the container's life. A changed markets parameter reaches containers started
after the change; warm ones keep what they read (docs/operating-aws.md: new containers, or
the template's ``ConfigRevision`` to replace them all).
"""

from __future__ import annotations

import asyncio
import os
import re
import tomllib
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from kernel.errors import ConfigError
from kernel.markets import Market, demo_markets_path, load_markets, parse_markets
from kernel.runtime import Niaga
from kernel.store.dynamodb import DynamoStore

PARAM_MAX_AGE = 300  # seconds an SSM parameter is cached in a warm container


@dataclass(frozen=True)
class Settings:
    table: str
    idempotency_table: str | None
    event_bus: str
    markets_param: str | None
    admin_token: str | None
    admin_token_param: str | None
    dynamodb_endpoint: str | None
    secrets: tuple[str, ...] = ()
    secrets_prefix: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        table = env.get("NIAGA_TABLE", "").strip()
        if not table:
            raise ConfigError(["NIAGA_TABLE: the DynamoDB table name is required"])
        return cls(
            table=table,
            idempotency_table=env.get("NIAGA_IDEMPOTENCY_TABLE") or None,
            event_bus=env.get("NIAGA_EVENT_BUS") or "default",
            markets_param=env.get("NIAGA_MARKETS_PARAM") or None,
            admin_token=env.get("NIAGA_ADMIN_TOKEN") or None,
            admin_token_param=env.get("NIAGA_ADMIN_TOKEN_PARAM") or None,
            dynamodb_endpoint=env.get("NIAGA_DYNAMODB_ENDPOINT") or None,
            secrets=tuple(n.strip() for n in env.get("NIAGA_SECRETS", "").split(",")
                          if n.strip()),
            secrets_prefix=env.get("NIAGA_SECRETS_PREFIX") or None,
        )


def load_markets_param(name: str) -> dict[str, Market]:
    """The markets file held in an SSM parameter (Powertools Parameters, cached)."""
    from aws_lambda_powertools.utilities import parameters

    text = parameters.get_parameter(name, max_age=PARAM_MAX_AGE)
    try:
        data = tomllib.loads(str(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"ssm:{name}: not valid TOML: {exc}"]) from exc
    return parse_markets(data)


SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def load_secrets(settings: Settings, environ: MutableMapping[str, str] | None = None
                 ) -> list[str]:
    """Put each of ``NIAGA_SECRETS`` into the environment from its SecureString parameter
    (``GetParameters``, 10 names a call), before the plugins read it. A variable the
    environment already has is left alone. Returns the names set."""
    if not settings.secrets:
        return []
    environ = os.environ if environ is None else environ
    bad = [n for n in settings.secrets if not SECRET_NAME.match(n)]
    if bad or not settings.secrets_prefix:
        raise ConfigError([f"NIAGA_SECRETS: {n!r} is not an environment variable name"
                           for n in bad] or ["NIAGA_SECRETS needs NIAGA_SECRETS_PREFIX"])
    from aws_lambda_powertools.utilities import parameters

    wanted = [n for n in settings.secrets if n not in environ]
    if not wanted:
        return []
    names = [settings.secrets_prefix + n for n in wanted]
    found: dict[str, Any] = parameters.get_parameters_by_name(
        {name: {} for name in names}, decrypt=True, max_age=PARAM_MAX_AGE,
        raise_on_error=False)  # GetParameters, 10 names a call
    missing = [n for n in names if n not in found]
    if missing:
        raise ConfigError([f"NIAGA_SECRETS: no SSM parameter {n}" for n in missing])
    for name, full in zip(wanted, names, strict=True):
        environ[name] = str(found[full])
    return wanted


def route_kernel_logs(logger: Any) -> None:
    """On Lambda, send the kernel's own loggers (``niaga``, ``niaga.checkout`` …) through the
    function's Powertools ``Logger``: JSON lines with its keys, the invocation's
    ``correlation_id`` and the logger's ``name``, at its level. Elsewhere (tests,
    ``--aws-local``) the standard logging set-up is left alone."""
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    import logging

    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    logging.getLogger("niaga")  # registered before its children are imported
    copy_config_to_registered_loggers(source_logger=logger, include={"niaga"})


def admin_token(settings: Settings) -> str:
    if settings.admin_token:
        return settings.admin_token
    if settings.admin_token_param:
        from aws_lambda_powertools.utilities import parameters

        return str(parameters.get_parameter(settings.admin_token_param, decrypt=True,
                                            max_age=PARAM_MAX_AGE))
    raise ConfigError(["NIAGA_ADMIN_TOKEN or NIAGA_ADMIN_TOKEN_PARAM is required"])


def build_niaga(settings: Settings | None = None, **store_kwargs: Any) -> Niaga:
    """A kernel on the table: DynamoStore + markets. The outbox is relayed by the stream
    worker, so the in-process dispatcher is switched off."""
    settings = settings or Settings.from_env()
    load_secrets(settings)  # before the plugins are built: they read their *_env variables
    markets = (load_markets_param(settings.markets_param) if settings.markets_param
               else load_markets(demo_markets_path()))
    store = DynamoStore(settings.table, endpoint_url=settings.dynamodb_endpoint, **store_kwargs)
    niaga = Niaga(store, markets)
    niaga.dispatcher.in_process = False
    return niaga


_shared: Niaga | None = None
_loop: asyncio.AbstractEventLoop | None = None


def run(coro: Any) -> Any:
    """Run a coroutine on the container's own event loop (made once, reused by every
    invocation; never made the thread's current loop, so Mangum's is left alone)."""
    global _loop
    if _loop is None or _loop.is_closed():
        _loop = asyncio.new_event_loop()
    return _loop.run_until_complete(coro)


def shared_niaga() -> Niaga:
    """The container's kernel, built at first use."""
    global _shared
    if _shared is None:
        _shared = build_niaga()
    return _shared


def reset() -> None:
    """Forget the container's kernel and cached parameters (tests; a config change)."""
    global _shared
    _shared = None
    try:
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
    except ImportError:  # pragma: no cover
        pass
