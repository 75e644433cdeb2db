"""The Lambda code package as ``make deploy`` ships it (``infra/package.py``), served from.

``infra/package.py build`` makes the package in a temporary folder (the project staged with
its ``niaga-*.dist-info``, ``infra/requirements.txt`` installed, pruned); then:

1. its unzipped size is at most 40 MB, and the pruning kept what it must (locale data of
   the demo markets' languages, the ``niaga`` entry points) and removed what it should;
2. a fresh interpreter that sees **only the package and the standard library**
   (``python -I -S``, ``sys.path`` = package + stdlib: no site-packages of this venv)
   imports ``kernel.aws.api``, ``kernel.aws.worker`` and ``kernel.aws.sweeper`` and serves
   API Gateway HTTP API (v2) events through the API handler: the markets (with the
   plugins found through the entry points), the products of every demo market with their
   prices formatted by Babel from the kept locale data, a full DE checkout through
   Powertools Idempotency (and its replay), the OpenAPI document in JSON and YAML; the
   sweeper runs. DynamoDB and SSM are a moto server in this process, which the child
   reaches through ``NIAGA_DYNAMODB_ENDPOINT`` / ``AWS_ENDPOINT_URL``;
3. while it does, every import attempt of a name ``infra/package.py`` prunes
   (``UNUSED``) is recorded: none may happen, so the removal changes no behaviour, not
   even an optional import that would have been caught. A market on a pruned locale
   fails to load with a ``ConfigError`` naming the locale.

The build needs PyPI (or pip's cache): without it the test is skipped, unless ``CI`` is
set, where it fails.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("moto")

pytestmark = pytest.mark.dynamodb

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "infra" / "package.py"
MAX_MB = 40
REGION = "eu-central-1"
TABLE = "niaga-package-test"
IDEMPOTENCY_TABLE = "niaga-package-idempotency"
MARKETS_PARAM = "/niaga/package-test/markets"
ADMIN = "adm_package_token"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_SESSION_TOKEN": "testing", "AWS_DEFAULT_REGION": REGION,
               "AWS_REGION": REGION, "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled"}


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("niaga_infra_package", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


package = load_script()


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("lambda") / "package"
    out = subprocess.run([sys.executable, str(SCRIPT), "build", str(target)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT,
                         env={k: v for k, v in os.environ.items() if k != "NIAGA_LOCALES"})
    if out.returncode:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-25:])
        in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
        if not in_ci and not _pypi_reachable():
            pytest.skip(f"PyPI unreachable and the wheels not in pip's cache: {tail[-300:]}")
        pytest.fail(f"infra/package.py build failed ({out.returncode}):\n{tail}")
    print(out.stdout[-2000:])
    return target


# -- 1. what the package holds ---------------------------------------------------------------

def test_the_package_is_at_most_40_mb_unzipped(built: Path) -> None:
    size = package.size_of(built)
    assert size <= MAX_MB * package.MB, f"{size / package.MB:.1f} MB > {MAX_MB} MB"


def test_the_package_has_the_distribution_metadata_and_the_pruning_is_right(
        built: Path) -> None:
    (dist,) = built.glob("niaga-*.dist-info")
    entry_points = (dist / "entry_points.txt").read_text(encoding="utf-8")
    assert "[niaga]" in entry_points and "vat = plugins.tax.vat:VatTax" in entry_points
    assert (built / "kernel" / "data" / "markets.toml").is_file()
    assert (built / "plugins" / "tax" / "data" / "us_state_rates.csv").is_file()
    locale_data = {p.stem for p in (built / "babel" / "locale-data").glob("*.dat")}
    assert {"root", "de", "de_DE", "de_AT", "en", "en_US", "en_001", "id", "id_ID", "ja",
            "ja_JP"} <= locale_data
    assert not locale_data & {"fr", "fr_FR", "es", "zh", "nb", "no"}
    for names in package.UNUSED.values():
        for name in names:
            assert not (built / name).exists() and not (built / f"{name}.py").exists(), name
    assert (built / "boto3").is_dir() and (built / "botocore").is_dir()  # kept by default
    assert (built / "yaml").is_dir()  # litestar.openapi.plugins imports it
    assert not list(built.rglob("__pycache__")) and not (built / "bin").exists()


def test_the_kept_languages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NIAGA_LOCALES", raising=False)
    assert package.languages(None) == ["de", "en", "id", "ja"]  # the demo markets' + en
    assert package.languages("fr-FR, pt_BR") == ["en", "fr", "pt"]
    monkeypatch.setenv("NIAGA_LOCALES", "th-TH")
    assert package.languages(None) == ["en", "th"]


def test_a_kept_language_keeps_its_parents_of_another_language(tmp_path: Path) -> None:
    import pickle

    data = tmp_path / "babel" / "locale-data"
    data.mkdir(parents=True)
    for name in ("root", "nb", "no", "nn", "fr", "fr_HT", "ht", "de", "en", "en_IN",
                 "hi_Latn"):
        (data / f"{name}.dat").write_bytes(b"x")
    with open(tmp_path / "babel" / "global.dat", "wb") as f:
        pickle.dump({"parent_exceptions": {"nb": "no", "nn": "no", "ht": "fr_HT",
                                           "hi_Latn": "en_IN"}}, f)
    package.prune_locales(tmp_path, ["nb", "ht", "hi"])
    assert {p.stem for p in data.glob("*.dat")} == {"root", "nb", "no", "ht", "fr_HT", "fr",
                                                    "hi_Latn", "en_IN", "en"}


# -- 2./3. served from the package alone ----------------------------------------------------

CHILD = r'''
import base64, json, sys, uuid

PKG, PRUNED, CONTROL = sys.argv[1], set(json.loads(sys.argv[2])), sys.argv[3]
STDLIB = [p for p in sys.path if "site-packages" not in p]
sys.path[:] = [PKG, *STDLIB]
attempts = []


control = []


class Audit:
    """First on sys.meta_path: records any attempt to import a pruned name (and, to show
    the audit sees imports, one of a kept package the app needs)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        top = name.split(".")[0]
        if top in PRUNED:
            attempts.append(name)
        elif top == CONTROL:
            control.append(name)
        return None


sys.meta_path.insert(0, Audit)


class Context:
    function_name = "niaga-package-test"
    function_version = "$LATEST"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:eu-central-1:123456789012:function:niaga"
    aws_request_id = "req-package-test"

    @staticmethod
    def get_remaining_time_in_millis():
        return 30_000


def http_event(method, path, body=None, headers=None, query=""):
    hdrs = {"host": "api.example.com", "content-type": "application/json",
            **{k.lower(): v for k, v in (headers or {}).items()}}
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "headers": hdrs,
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.example.com",
            "domainPrefix": "api", "requestId": f"req-{uuid.uuid4().hex[:12]}",
            "routeKey": "$default", "stage": "$default", "time": "23/Nov/2026:06:00:00 +0000",
            "timeEpoch": 0,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.1", "userAgent": "pytest"},
        },
        "body": None if body is None else json.dumps(body),
        "isBase64Encoded": False,
    }


from kernel.aws import api, sweeper, worker  # noqa: E402


def call(method, path, body=None, headers=None, query=""):
    out = api.handler(http_event(method, path, body, headers, query), Context())
    text = out.get("body") or ""
    if out.get("isBase64Encoded"):
        text = base64.b64decode(text).decode()
    kind = {k.lower(): v for k, v in (out.get("headers") or {}).items()}.get("content-type", "")
    return out["statusCode"], (json.loads(text) if text and "json" in kind else text)


result = {"calls": {}}
for name, (method, path, query) in {
    "markets": ("GET", "/markets", ""),
    "products DE": ("GET", "/products", "market=DE"),
    "products ID": ("GET", "/products", "market=ID"),
    "products JP": ("GET", "/products", "market=JP&locale=ja-JP"),
    "products US": ("GET", "/products", "market=US"),
    "openapi.json": ("GET", "/schema/openapi.json", ""),
    "openapi.yaml": ("GET", "/schema/openapi.yaml", ""),
}.items():
    result["calls"][name] = call(method, path, query=query)

status, cart = call("POST", "/carts", {"market": "DE", "channel": "web"})
steps = [("create cart", status)]
cid = cart["id"]
status, _ = call("POST", f"/carts/{cid}/lines", {"sku": "COFFEE-GAYO-250", "quantity": 2})
steps.append(("add line", status))
status, _ = call("PUT", f"/carts/{cid}/address", {
    "country": "DE", "region": "Berlin", "city": "Berlin", "postal_code": "10178",
    "line1": "Rosenthaler Straße 40", "name": "Erika Mustermann",
    "email": "erika@example.com"})
steps.append(("address", status))
status, options = call("GET", f"/carts/{cid}/delivery-options")
steps.append(("delivery options", status))
ship = [o for o in options if o["kind"] == "ship"]
status, _ = call("PUT", f"/carts/{cid}/delivery", {"option_id": ship[0]["id"]})
steps.append(("delivery", status))
pay = {"payment": {"method": "testpay", "token": "tok_ok"}}
key = {"Idempotency-Key": f"key-{uuid.uuid4().hex}"}
status, order = call("POST", f"/carts/{cid}/checkout", pay, key)
steps.append(("checkout", status))
status, replay = call("POST", f"/carts/{cid}/checkout", pay, key)
steps.append(("replay", status))
result["checkout"] = {"steps": steps, "order": order, "replay": replay}
result["sweeper"] = sweeper.handler({}, Context())
result["worker"] = worker.__file__

from babel import Locale, UnknownLocaleError  # noqa: E402
from kernel.errors import ConfigError  # noqa: E402
from kernel.markets import parse_markets  # noqa: E402

try:
    Locale.parse("fr_FR")
    result["fr_FR"] = "loaded"
except UnknownLocaleError:
    result["fr_FR"] = "unknown"
try:
    parse_markets({"markets": {"FR": {"name": "France", "currency": "EUR",
                                      "locales": ["fr-FR"], "countries": ["FR"],
                                      "prices_include_tax": True}}})
    result["FR market"] = "loaded"
except ConfigError as exc:
    result["FR market"] = exc.problems

result["attempts"] = attempts
result["control"] = control
result["sys.path"] = sys.path
result["modules outside"] = sorted(
    name for name, m in list(sys.modules.items())
    if getattr(m, "__file__", None) and not m.__file__.startswith(PKG)
    and not any(m.__file__.startswith(p) for p in STDLIB if p))
print("RESULT " + json.dumps(result, default=str))
'''


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """DynamoDB + SSM on a moto server: the table made and seeded the way the kernel does
    it, the idempotency table, the demo markets in the parameter the functions read."""
    import boto3
    from moto.server import ThreadedMotoServer

    from kernel.demo import seed
    from kernel.markets import demo_markets_path, load_markets
    from kernel.store.dynamodb import DynamoStore

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as mp:
        for name, value in CREDENTIALS.items():
            mp.setenv(name, value)
        store = DynamoStore(TABLE, endpoint_url=url)

        async def prepare() -> None:
            await store.create_schema()
            await seed(store, load_markets(demo_markets_path()), time.time())

        asyncio.run(prepare())
        boto3.client("dynamodb", endpoint_url=url).create_table(
            TableName=IDEMPOTENCY_TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
            KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}])
        boto3.client("ssm", endpoint_url=url).put_parameter(
            Name=MARKETS_PARAM, Type="String", Tier="Advanced",
            Value=demo_markets_path().read_text(encoding="utf-8"))
        try:
            yield url
        finally:
            server.stop()


@pytest.fixture(scope="module")
def served(built: Path, moto_server: str, tmp_path_factory: pytest.TempPathFactory
           ) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "NIAGA_", "POWERTOOLS_", "PYTHON"))}
    env.update(CREDENTIALS)
    env.update({"NIAGA_TABLE": TABLE, "NIAGA_IDEMPOTENCY_TABLE": IDEMPOTENCY_TABLE,
                "NIAGA_MARKETS_PARAM": MARKETS_PARAM, "NIAGA_ADMIN_TOKEN": ADMIN,
                "NIAGA_DYNAMODB_ENDPOINT": moto_server, "AWS_ENDPOINT_URL": moto_server,
                "POWERTOOLS_SERVICE_NAME": "niaga", "POWERTOOLS_METRICS_NAMESPACE": "Niaga",
                "POWERTOOLS_LOG_LEVEL": "WARNING", "AWS_EC2_METADATA_DISABLED": "true"})
    pruned = sorted({name for names in package.UNUSED.values() for name in names})
    cwd = tmp_path_factory.mktemp("cwd")  # nothing importable in the working directory
    out = subprocess.run([sys.executable, "-I", "-S", "-c", CHILD, str(built),
                          json.dumps(pruned), "yaml"], env=env, cwd=cwd, capture_output=True,
                         text=True, timeout=300)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert out.returncode == 0 and line, out.stderr[-3000:]
    return json.loads(line[len("RESULT "):])


def test_the_child_sees_only_the_package_and_the_stdlib(served: dict[str, Any],
                                                        built: Path) -> None:
    assert served["sys.path"][0] == str(built)
    assert not [p for p in served["sys.path"] if "site-packages" in p]
    assert served["modules outside"] == []
    assert served["worker"].startswith(str(built))


def test_no_pruned_module_is_even_tried(served: dict[str, Any]) -> None:
    assert served["attempts"] == []
    # the control: PyYAML, kept because litestar.openapi.plugins imports it, is seen
    assert "yaml" in served["control"]


def test_markets_with_the_plugins_from_the_entry_points(served: dict[str, Any]) -> None:
    status, markets = served["calls"]["markets"]
    assert status == 200, markets
    by_code = {m["code"]: m for m in markets}
    assert set(by_code) == {"ID", "DE", "US", "JP"}
    assert {"vat", "testpay", "flat-rate", "points"} <= set(by_code["DE"]["plugins"])
    assert "us-sales-tax" in by_code["US"]["plugins"] and "fx" in by_code["US"]["plugins"]


@pytest.mark.parametrize(("market", "pattern"), [
    ("DE", r"\d{1,3}(\.\d{3})*,\d\d\xa0€"),       # de_DE: 12,90 €
    ("ID", r"Rp\xa0?\d{1,3}(\.\d{3})*,\d\d"),     # id_ID: Rp 150.000,00
    ("JP", r"[￥¥]\d{1,3}(,\d{3})*"),              # ja_JP: ￥1,200
    ("US", r"\$\d{1,3}(,\d{3})*\.\d\d"),          # en_US: $12.90
])
def test_products_with_prices_formatted_from_the_kept_locale_data(
        served: dict[str, Any], market: str, pattern: str) -> None:
    import re

    status, products = served["calls"][f"products {market}"]
    assert status == 200, products
    assert products
    for product in products:
        assert re.fullmatch(pattern, product["price"]["display"]), product["price"]


def test_a_checkout_through_powertools_idempotency(served: dict[str, Any]) -> None:
    flow = served["checkout"]
    # the replay is answered from Powertools' idempotency table: the stored 201, same order
    assert flow["steps"] == [["create cart", 201], ["add line", 200], ["address", 200],
                             ["delivery options", 200], ["delivery", 200], ["checkout", 201],
                             ["replay", 201]]
    order, replay = flow["order"], flow["replay"]
    assert order["market"] == "DE" and order["total"]["currency"] == "EUR"
    assert replay["id"] == order["id"]
    assert isinstance(served["sweeper"], dict)


def test_the_openapi_document_json_and_yaml(served: dict[str, Any]) -> None:
    status, doc = served["calls"]["openapi.json"]
    assert status == 200 and doc["info"]["title"] == "Niaga"
    assert "/carts/{cart_id}/checkout" in doc["paths"] or any(
        p.endswith("/checkout") for p in doc["paths"])
    status, text = served["calls"]["openapi.yaml"]
    assert status == 200 and "title: Niaga" in text


def test_a_market_on_a_pruned_locale_fails_to_load_naming_it(served: dict[str, Any]) -> None:
    assert served["fr_FR"] == "unknown"
    assert served["FR market"] == ["markets.FR.locales: unknown locale 'fr-FR'"]
