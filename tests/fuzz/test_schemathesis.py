"""Schemathesis against the app's own /schema/openapi.json (issue 6, bad input).

Every operation gets generated requests, valid and invalid, with the admin token on
/admin routes and a customer token where the route takes one. Each answer must be no 5xx,
a documented status, the documented content type, and a body that fits the documented
schema. Bounded (examples per operation, derandomized) so it runs in about a minute and
finds the same things on every run.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from kernel.api.app import create_app
from kernel.demo import seed
from kernel.markets import demo_markets_path, load_markets
from kernel.runtime import Niaga
from kernel.store.sql import SqlStore
from tests.api.helpers import add_line, new_cart, place_order

ADMIN_TOKEN = "adm_fuzz_token"
MAX_EXAMPLES = 25  # per operation; ~50 operations, about a minute in all
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


# The document is read at import (parametrize needs the operations at collection; building
# the app touches no store), the store is seeded and started by a fixture before any request.
DB = Path(tempfile.mkdtemp(prefix="niaga-fuzz-")) / "niaga.sqlite"
MARKETS = load_markets(demo_markets_path())
APP = create_app(Niaga(SqlStore(str(DB)), MARKETS), admin_token=ADMIN_TOKEN)
schema = schemathesis.openapi.from_dict(APP.openapi_schema.to_schema())
schema.app = APP
schema.config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True,
                                modes=["positive", "negative"])


async def _seed() -> None:
    store = SqlStore(str(DB))
    await store.start()
    try:
        await store.create_schema()
        await seed(store, MARKETS, 0.0)
    finally:
        await store.close()


@pytest.fixture(scope="module")
def real() -> Iterator[dict[str, str]]:
    """Ids that exist (a cart with a line, a paid order, a customer and their token), so
    generated requests get past the 404 into the rules half of the time."""
    asyncio.run(_seed())
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    try:
        with asgi.get_client(APP) as client:  # starts the app's lifespan (opens the store)
            r = client.post("/admin/customers", json={"email": "fuzz@example.com"},
                            headers=admin)
            assert r.status_code == 201, r.text
            customer = r.json()
            order = place_order(client, "ID", {"TEA-JAVA-BLACK": 1})
            cart = add_line(client, new_cart(client, "ID")["id"], "BATIK-SHIRT-M", 1)
            yield {"token": customer["token"], "customer_id": customer["id"],
                   "cart_id": cart["id"], "line_id": cart["lines"][0]["id"],
                   "order_id": order["id"], "sku": "BATIK-SHIRT-M",
                   "location_id": "id-jkt-wh"}
    finally:
        asgi.shutdown_lifespans()  # closes the store
        shutil.rmtree(DB.parent, ignore_errors=True)


_turn = itertools.count()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_its_documented_promises(case, real):
    # every other case names things that exist; deletes keep their generated ids, so the
    # fixture's product and customer survive for the operations after them
    if next(_turn) % 2 and case.method != "DELETE" and case.path_parameters:
        for name in case.path_parameters:
            if name in real:
                case.path_parameters[name] = real[name]
    # the admin token on /admin routes; a customer's where the operation declares bearer
    # security (/me, cart loyalty, POST /carts), so they are exercised beyond the 401
    if case.operation.path.startswith("/admin"):
        token = ADMIN_TOKEN
    elif case.operation.definition.raw.get("security"):
        token = real["token"]
    else:
        token = None
    headers = {"Authorization": f"Bearer {token}"} if token else None
    case.call_and_validate(headers=headers, checks=CHECKS)
