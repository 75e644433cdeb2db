"""The serverless shape (issue 4): cold start, DynamoDB capacity per checkout, package size.

A script, not a test (pytest does not collect it: no ``test_`` prefix)::

    .venv/bin/python tests/bench/bench_aws.py [--runs N] [--package-runs M]
                                              [--out docs/BENCHMARKS.md]

What it measures, and how:

1. **Cold start.** N fresh interpreters per variant (subprocesses of this venv's python,
   interleaved: floor, API, worker, floor, …, after one untimed warm-up each), with the
   environment a Lambda function gets (``NIAGA_TABLE`` …, region, dummy credentials; no
   ``NIAGA_MARKETS_PARAM``: the demo markets file instead of SSM). Each child times itself
   with ``time.perf_counter`` around "import + handler ready" and refuses any socket
   connect (so "no network needed" is checked, not assumed); the parent times the whole
   process too. Variants: the floor ``import litestar, mangum, boto3;
   boto3.client("dynamodb")``; the API (``import kernel.aws.api``, then the Mangum adapter
   its first invocation builds, ``_adapter()``, and the store's DynamoDB client); the worker
   (``import kernel.aws.worker``, the container's kernel and its DynamoDB client). Ratios use
   the in-process medians. The same three run again on the Lambda package itself
   (``--package-runs``; item 3's install + the sources, ``python -S``, bytecode cache outside
   the package). On a miss, the same work in laps shows where the time goes, and
   ``python -X importtime`` names the modules the API imports beyond the floor.
2. **DynamoDB capacity.** The real app (``create_app`` over ``Niaga(DynamoStore)``, the outbox
   left to the stream worker as on Lambda) on moto in process, seeded with the demo data,
   driven by Litestar's ``TestClient`` through a 3-line DE cart to a testpay order. Hooks on
   the store's boto3 client (``before-parameter-build`` / ``after-call``) see every call;
   a second, un-hooked client reads each written item before and after the call. Units by
   AWS's rules (item size = attribute names + values; writes 1 WCU per KB, the larger of
   the old and new image, ×2 in a transaction, ConditionCheck included; a GSI whose keys
   appear, disappear or change costs index writes, delete + put for a change; reads 1 RCU
   per 4 KB strongly consistent, ½ eventually, per item for BatchGetItem, per request for
   Query). One flow warms the process caches (locations, exchange rates) first, as a warm
   container has them; the second flow is reported.
3. **Package size.** ``infra/package.py build`` (what ``make deploy`` ships: the project
   staged with its dist-info, ``infra/requirements.txt`` installed, pruned; cached under
   the temp dir by the hash of the requirements, the script and the sources); unzipped
   size = sum of file sizes.

It writes the ``bench:aws`` section of ``--out`` (between its markers) and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import datetime as dt
import hashlib
import inspect
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

START = "<!-- bench:aws:start -->"
END = "<!-- bench:aws:end -->"
TARGET_COLD_RATIO = 1.25
TARGET_WORKER_RATIO = 0.5
TARGET_WCU = 20
TARGET_RCU = 4
TARGET_MB = 40.0

REGION = "eu-central-1"
TABLE = "niaga-bench"
ADMIN = "adm_bench_token"
MB = 1024 * 1024
# boto3 and what it pulls in: all of it ships in the Lambda Python runtime
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six",
                    "urllib3")

LAMBDA_ENV = {
    "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
    "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
    "AWS_SESSION_TOKEN": "bench", "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_LAMBDA_FUNCTION_NAME": "niaga-api", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12",
    "NIAGA_TABLE": TABLE, "NIAGA_IDEMPOTENCY_TABLE": f"{TABLE}-idempotency",
    "NIAGA_EVENT_BUS": f"{TABLE}-events", "NIAGA_ADMIN_TOKEN": ADMIN,
    "POWERTOOLS_SERVICE_NAME": "niaga", "POWERTOOLS_METRICS_NAMESPACE": "Niaga",
    "POWERTOOLS_LOG_LEVEL": "WARNING",
}


def say(text: str) -> None:
    print(f"[bench-aws] {text}", flush=True)


# -- 1. cold start --------------------------------------------------------------------------

# Runs before the clock starts in every variant alike: any socket connect fails and is counted.
GUARD = """\
import socket, time
_connects = []
def _refuse(self, address, *args):
    _connects.append(address)
    raise OSError("bench: no network during a cold start")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
"""
REPORT = """\
print(f"BENCH import={_t1 - _t0!r} ready={_t2 - _t0!r} connects={len(_connects)}")
"""
VARIANTS = {
    "floor": """\
_t0 = time.perf_counter()
import litestar, mangum, boto3
_t1 = time.perf_counter()
boto3.client("dynamodb")
_t2 = time.perf_counter()
""",
    "api": """\
_t0 = time.perf_counter()
import kernel.aws.api
_t1 = time.perf_counter()
kernel.aws.api._adapter()
from kernel.aws import config
config.shared_niaga().store.client
_t2 = time.perf_counter()
""",
    "worker": """\
_t0 = time.perf_counter()
import kernel.aws.worker
_t1 = time.perf_counter()
from kernel.aws import config
config.shared_niaga().store.client
_t2 = time.perf_counter()
""",
}
LABELS = {"floor": "framework floor", "api": "API handler", "worker": "worker handler"}
# The same work in laps, to see where the time goes (the API's laps do what ``_adapter()``
# does, through the public functions it calls).
STAGES = {
    "floor": [("import litestar", "import litestar"), ("import mangum", "import mangum"),
              ("import boto3", "import boto3"),
              ("boto3.client(\"dynamodb\")", "boto3.client('dynamodb')")],
    "api": [
        ("import kernel.aws.api (domain, Powertools, config, DynamoStore)",
         "import kernel.aws.api\nfrom kernel.aws import config"),
        ("import kernel.api.app, mangum (Litestar, controllers, services)",
         "import kernel.api.app, mangum"),
        ("config.shared_niaga() (markets, plugin entry points and modules, managers)",
         "niaga = config.shared_niaga()"),
        ("gc.freeze() + create_app(...) + Mangum(...)",
         "import gc\ngc.freeze()\n"  # as _adapter() does, before building the app
         "mangum.Mangum(kernel.api.app.create_app(niaga, admin_token=config.admin_token("
         "config.Settings.from_env()), manage_lifecycle=False), lifespan='off')"),
        ("store.client (boto3 import + DynamoDB client)", "niaga.store.client"),
    ],
    "worker": [
        ("import kernel.aws.worker (domain, Powertools batch, config, DynamoStore)",
         "import kernel.aws.worker\nfrom kernel.aws import config"),
        ("config.shared_niaga()", "niaga = config.shared_niaga()"),
        ("store.client (boto3 import + DynamoDB client)", "niaga.store.client"),
    ],
}
STAGE_RUNS = 3


def lambda_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "NIAGA_", "POWERTOOLS_", "PYTHON"))}
    return {**env, **LAMBDA_ENV, **(extra or {})}


def missed(cold: dict[str, Any]) -> bool:
    api_ratio, worker_ratio, _ = ratios(cold["venv"])
    return api_ratio > TARGET_COLD_RATIO or worker_ratio > TARGET_WORKER_RATIO


def run_child(variant: str, env: dict[str, str], flags: list[str]) -> dict[str, float]:
    code = GUARD + VARIANTS[variant] + REPORT
    started = time.perf_counter()
    out = subprocess.run([sys.executable, *flags, "-c", code], env=env, cwd=env.get(
        "BENCH_CWD", str(ROOT)), capture_output=True, text=True, timeout=120)
    wall = time.perf_counter() - started
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH ")), None)
    if out.returncode or line is None:
        tail = (out.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{variant} child failed ({out.returncode}): {tail}")
    found = dict(part.split("=") for part in line.split()[1:])
    return {"import": float(found["import"]), "ready": float(found["ready"]),
            "connects": float(found["connects"]), "wall": wall}


def cold_start(runs: int, env: dict[str, str], flags: list[str], label: str) -> dict[str, Any]:
    samples: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
    for variant in VARIANTS:  # warm-up: the OS file cache and bytecode, not counted
        run_child(variant, env, flags)
    order = list(VARIANTS)
    for i in range(runs):
        for variant in order[i % 3:] + order[:i % 3]:  # rotate who goes first
            samples[variant].append(run_child(variant, env, flags))
        say(f"cold start ({label}): round {i + 1}/{runs}: " + ", ".join(
            f"{v} {1000 * samples[v][-1]['ready']:.0f} ms" for v in order))
    results: dict[str, Any] = {v: summarise(s) for v, s in samples.items()}
    results["rounds"] = {  # each round's own ratios: how steady the verdict is under noise
        "api/floor": [a["ready"] / f["ready"] for a, f in zip(samples["api"],
                                                              samples["floor"], strict=True)],
        "worker/api": [w["ready"] / a["ready"] for w, a in zip(samples["worker"],
                                                               samples["api"], strict=True)]}
    return results


def spread(values: list[float]) -> str:
    """Median and quartiles of per-round ratios."""
    q1, q2, q3 = statistics.quantiles(values, n=4)
    return f"per round: median {q2:.2f}, quartiles {q1:.2f}–{q3:.2f}"


def summarise(samples: list[dict[str, float]]) -> dict[str, float]:
    ready = [s["ready"] for s in samples]
    return {"ready": statistics.median(ready), "min": min(ready), "max": max(ready),
            "import": statistics.median(s["import"] for s in samples),
            "wall": statistics.median(s["wall"] for s in samples),
            "connects": max(s["connects"] for s in samples), "n": len(samples)}


def stage_code(variant: str) -> str:
    laps = ["_laps = []", "_t = time.perf_counter()"]
    for i, (_, code) in enumerate(STAGES[variant]):
        laps += [code, f"_laps.append(({i}, time.perf_counter() - _t))",
                 "_t = time.perf_counter()"]
    laps.append("print('LAPS ' + ' '.join(f'{i}={s!r}' for i, s in _laps))")
    return GUARD + "\n".join(laps) + "\n"


def stages(env: dict[str, str], flags: list[str]) -> dict[str, list[tuple[str, float]]]:
    """Median seconds per lap of each variant, over ``STAGE_RUNS`` interleaved children."""
    laps: dict[str, list[list[float]]] = {v: [] for v in STAGES}
    for _ in range(STAGE_RUNS):
        for variant in STAGES:
            out = subprocess.run([sys.executable, *flags, "-c", stage_code(variant)], env=env,
                                 cwd=env.get("BENCH_CWD", str(ROOT)), capture_output=True,
                                 text=True, timeout=120)
            line = next((x for x in out.stdout.splitlines() if x.startswith("LAPS ")), None)
            if out.returncode or line is None:
                raise RuntimeError(f"{variant} stages failed: {out.stderr.strip()[-300:]}")
            laps[variant].append([float(p.split("=")[1]) for p in line.split()[1:]])
    return {v: [(label, statistics.median(run[i] for run in laps[v]))
                for i, (label, _) in enumerate(STAGES[v])] for v in STAGES}


def importtime_rows(variant: str, env: dict[str, str]) -> list[tuple[int, int, str]]:
    """(self µs, depth, module) per line of ``python -X importtime``, in its order."""
    code = GUARD + VARIANTS[variant] + REPORT
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", code], env=env,
                         cwd=str(ROOT), capture_output=True, text=True, timeout=120)
    rows = []
    for line in out.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+\d+ \|( *)(\S+)", line)
        if m:
            rows.append((int(m.group(1)), len(m.group(2)) // 2, m.group(3)))
    return rows


def importer_chain(rows: list[tuple[int, int, str]], index: int) -> list[str]:
    """The module at ``index`` and those that imported it, up to a top-level import (in
    importtime's output a module's importer is the next line one level shallower)."""
    chain = [rows[index][2]]
    depth = rows[index][1]
    for _, d, name in rows[index + 1:]:
        if d < depth:
            chain.append(name)
            depth = d
    return chain


def offenders(env: dict[str, str], variant: str, beyond_floor: bool,
              top: int = 8) -> list[dict[str, Any]]:
    """Top-level packages by own import time in ``variant`` (only modules the floor does not
    import, if ``beyond_floor``), with the module that first pulled each in."""
    floor = {name for _, _, name in importtime_rows("floor", env)} if beyond_floor else set()
    rows = importtime_rows(variant, env)
    by_package: Counter[str] = Counter()
    first: dict[str, int] = {}
    for i, (us, _, name) in enumerate(rows):
        if name in floor:
            continue
        package = name.split(".")[0]
        by_package[package] += us
        first.setdefault(package, i)
    found = []
    for package, us in by_package.most_common(top):
        chain = importer_chain(rows, first[package])
        via = next((n for n in chain if n.split(".")[0] != package), chain[-1])
        found.append({"package": package, "ms": us / 1000, "via": via, "root": chain[-1]})
    return found


# -- 2. DynamoDB capacity ---------------------------------------------------------------------

def number_size(text: str) -> int:
    """1 byte per two significant digits + 1 (leading and trailing zeros trimmed)."""
    digits = Decimal(text).normalize().as_tuple().digits
    return math.ceil(len(digits) / 2) + 1


def value_size(value: dict[str, Any]) -> int:
    (kind, v), = value.items()
    if kind == "S":
        return len(v.encode("utf-8"))
    if kind == "N":
        return number_size(v)
    if kind == "B":
        return len(v)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(s.encode("utf-8")) for s in v)
    if kind == "NS":
        return sum(number_size(n) for n in v)
    if kind == "BS":
        return sum(len(b) for b in v)
    if kind == "L":  # 3 bytes + 1 per element
        return 3 + sum(1 + value_size(e) for e in v)
    if kind == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + value_size(e) for k, e in v.items())
    raise ValueError(f"unknown DynamoDB type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(v) for name, v in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / 1024))


def read_units(size: int, strong: bool) -> float:
    return max(1, math.ceil(size / 4096)) * (1.0 if strong else 0.5)


KINDS = (("CATALOG", "catalog"), ("CO#", "cart→order link"), ("C#", "cart"), ("O#", "order"),
         ("S#", "stock row"), ("RX#", "release marker"), ("R#", "reservation"),
         ("EV#", "outbox event"), ("I#", "idempotency record"), ("Y#", "loyalty"),
         ("U#", "customer"), ("EM#", "email link"), ("TK#", "token link"), ("FX", "fx rate"))


def kind_of(pk: str) -> str:
    return next((name for prefix, name in KINDS if pk.startswith(prefix)), pk)


def key_of(item: dict[str, Any]) -> tuple[str, str]:
    return item["pk"]["S"], item["sk"]["S"]


def write_targets(op: str, params: dict[str, Any]) -> list[tuple[str, tuple[str, str]]]:
    """(action, key) of every item a write call touches."""
    if op == "PutItem":
        return [("Put", key_of(params["Item"]))]
    if op in ("UpdateItem", "DeleteItem"):
        return [(op[:-4], key_of(params["Key"]))]
    if op == "TransactWriteItems":
        found = []
        for action in params["TransactItems"]:
            (name, body), = action.items()
            found.append((name, key_of(body["Item"] if name == "Put" else body["Key"])))
        return found
    if op == "BatchWriteItem":
        return [("Put", key_of(r["PutRequest"]["Item"])) if "PutRequest" in r
                else ("Delete", key_of(r["DeleteRequest"]["Key"]))
                for requests in params["RequestItems"].values() for r in requests]
    return []


def index_writes(before: dict[str, Any] | None, after: dict[str, Any] | None
                 ) -> list[tuple[str, str, int]]:
    """(index, what, WCU) for each keys-only GSI the change touches."""
    from kernel.store.dynamodb import GSIS

    writes = []
    for gsi in GSIS:
        names = (f"{gsi}pk", f"{gsi}sk")
        old = tuple(before[n] for n in names) if before and all(n in before for n in names) \
            else None
        new = tuple(after[n] for n in names) if after and all(n in after for n in names) \
            else None
        if old == new:
            continue
        entry = {n: v for n, v in (after or before or {}).items() if n in ("pk", "sk", *names)}
        units = write_units(item_size(entry))
        if old is None:
            writes.append((gsi, "put", units))
        elif new is None:
            writes.append((gsi, "delete", units))
        else:
            writes.append((gsi, "key changed: delete + put", 2 * units))
    return writes


def write_cost(op: str, action: str, before: dict[str, Any] | None,
               after: dict[str, Any] | None) -> dict[str, Any]:
    size_before, size_after = item_size(before), item_size(after)
    size = size_before if action in ("Delete", "ConditionCheck") else max(size_before,
                                                                           size_after)
    factor = 2 if op == "TransactWriteItems" else 1
    return {"action": action, "before": size_before, "after": size_after,
            "wcu": factor * write_units(size), "index": index_writes(before, after)}


def read_cost(op: str, params: dict[str, Any], parsed: dict[str, Any]) -> tuple[float, str]:
    """RCU of a read call and a short description of what it read."""
    if op == "GetItem":
        item = parsed.get("Item")
        strong = bool(params.get("ConsistentRead"))
        what = f"{kind_of(params['Key']['pk']['S'])} {item_size(item)} B"
        return read_units(item_size(item), strong), what + ("" if strong else ", eventual")
    if op == "BatchGetItem":
        units, sizes = 0.0, []
        for table, request in params["RequestItems"].items():
            found = {key_of(i): i for i in parsed.get("Responses", {}).get(table, [])}
            for key in request["Keys"]:
                size = item_size(found.get(key_of(key)))
                units += read_units(size, bool(request.get("ConsistentRead")))
                sizes.append(f"{kind_of(key['pk']['S'])} {size} B")
        return units, f"{len(sizes)} items: " + ", ".join(sizes)
    if op in ("Query", "Scan"):
        items = parsed.get("Items", [])
        size = sum(item_size(i) for i in items)
        strong = bool(params.get("ConsistentRead")) and "IndexName" not in params
        where = params.get("IndexName", "table")
        pk = next((v["S"] for k, v in params.get("ExpressionAttributeValues", {}).items()
                   if k == ":pk"), "")
        return read_units(size, strong), (f"{where} {pk!r}: {len(items)} items, {size} B"
                                          + ("" if strong else ", eventual"))
    if op == "TransactGetItems":
        sizes = [item_size(r.get("Item")) for r in parsed.get("Responses", [])]
        return sum(2 * read_units(s, True) for s in sizes), f"{len(sizes)} items"
    return 0.0, ""


CALLER: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="?")


def label_store_calls(store: Any) -> None:
    """Name the store method behind each call (the outermost one): a context variable set
    by a wrapper on the instance, carried into ``asyncio.to_thread`` with the context."""
    for name in dir(type(store)):
        method = getattr(store, name, None)
        if name.startswith("_") or not inspect.iscoroutinefunction(method):
            continue

        async def labelled(*args: Any, _name: str = name, _method: Any = method,
                           **kwargs: Any) -> Any:
            token = CALLER.set(_name) if CALLER.get() == "?" else None
            try:
                return await _method(*args, **kwargs)
            finally:
                if token is not None:
                    CALLER.reset(token)

        setattr(store, name, labelled)


class Serialized:
    """The store's client, one call at a time (moto in process does not lock)."""

    def __init__(self, client: Any):
        self._client = client
        self._lock = threading.Lock()
        self.meta = client.meta
        self.exceptions = client.exceptions

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("get_waiter"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return call


class Meter:
    """Every DynamoDB call of the hooked client, with the units it costs."""

    def __init__(self, client: Any, reader: Any, table: str):
        self.reader = reader
        self.table = table
        self.step = "setup"
        self.calls: list[dict[str, Any]] = []
        client.meta.events.register("before-parameter-build.dynamodb", self._before)
        client.meta.events.register("after-call.dynamodb", self._after)

    def _read(self, key: tuple[str, str]) -> dict[str, Any] | None:
        out = self.reader.get_item(TableName=self.table, ConsistentRead=True,
                                   Key={"pk": {"S": key[0]}, "sk": {"S": key[1]}})
        return out.get("Item")

    def _before(self, params: dict[str, Any], model: Any, context: dict[str, Any],
                **_: Any) -> None:
        targets = write_targets(model.name, params)
        context["bench"] = {"op": model.name, "params": params, "targets": targets,
                            "before": [self._read(key) for _, key in targets],
                            "caller": CALLER.get(), "step": self.step}

    def _after(self, parsed: dict[str, Any], model: Any, context: dict[str, Any],
               **_: Any) -> None:
        info = context.pop("bench", None)
        if info is None:
            return
        op, params = info["op"], info["params"]
        writes = []
        for (action, key), before in zip(info["targets"], info["before"], strict=True):
            after = self._read(key)
            kind = kind_of(key[0])
            if "ty" in (after or before or {}):  # an outbox event: name its type
                kind += f" {(after or before or {})['ty']['S']}"
            writes.append({"key": key, "kind": kind,
                           **write_cost(op, action, before, after)})
        rcu, read = read_cost(op, params, parsed)
        error = parsed.get("Error", {}).get("Code") if "Error" in parsed else None
        self.calls.append({
            "step": info["step"], "caller": info["caller"], "op": op, "read": read,
            "rcu": rcu, "writes": writes, "error": error,
            "wcu_table": sum(w["wcu"] for w in writes),
            "wcu_index": sum(u for w in writes for _, _, u in w["index"])})


ADDRESS = {"country": "DE", "region": "Berlin", "city": "Berlin", "postal_code": "10178",
           "line1": "Rosenthaler Straße 40", "name": "Bench Mark",
           "email": "bench@example.com"}
SKUS = ("BATIK-SHIRT-L", "SARONG-TENUN", "COFFEE-GAYO-250")


def expect(response: Any, status: int) -> Any:
    if response.status_code != status:
        raise RuntimeError(f"{response.request.method} {response.request.url}: "
                           f"{response.status_code} {response.text[:300]}")
    return response.json()


def checkout_flow(http: Any, meter: Meter, label: str) -> str:
    """A 3-line DE cart to a paid testpay order; each request is one metered step."""
    meter.step = f"{label}create cart"
    cart = expect(http.post("/carts", json={"market": "DE", "channel": "web"}), 201)
    path = f"/carts/{cart['id']}"
    for i, sku in enumerate(SKUS, 1):
        meter.step = f"{label}add line {i} ({sku})"
        expect(http.post(f"{path}/lines", json={"sku": sku, "quantity": 1}), 200)
    meter.step = f"{label}address"
    expect(http.put(f"{path}/address", json=ADDRESS), 200)
    meter.step = f"{label}delivery options"
    options = expect(http.get(f"{path}/delivery-options"), 200)
    meter.step = f"{label}delivery"
    ship = next(o["id"] for o in options if o["kind"] == "ship")
    expect(http.put(f"{path}/delivery", json={"option_id": ship}), 200)
    meter.step = f"{label}checkout"
    order = expect(http.post(f"{path}/checkout", headers={"Idempotency-Key": f"k-{cart['id']}"},
                             json={"payment": {"method": "testpay", "token": "tok_ok"}}), 201)
    meter.step = "after"
    return str(order["status"])


def capacity() -> dict[str, Any]:
    import logging

    import boto3
    from litestar.testing import TestClient
    from moto import mock_aws

    from kernel.api.app import create_app
    from kernel.demo import seed
    from kernel.markets import demo_markets_path, load_markets
    from kernel.runtime import Niaga
    from kernel.store.dynamodb import DynamoStore

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request
    creds = {"region_name": REGION, "aws_access_key_id": "bench",
             "aws_secret_access_key": "bench"}
    with mock_aws():
        client = boto3.client("dynamodb", **creds)
        store = DynamoStore(TABLE, client=Serialized(client))
        markets = load_markets(demo_markets_path())

        async def prepare() -> None:
            await store.create_schema()
            await seed(store, markets, time.time())

        asyncio.run(prepare())
        say("capacity: table made and seeded under moto")
        meter = Meter(client, boto3.client("dynamodb", **creds), TABLE)
        label_store_calls(store)
        niaga = Niaga(store, markets)
        niaga.dispatcher.in_process = False  # as on Lambda: the stream worker relays
        with TestClient(create_app(niaga, admin_token=ADMIN)) as http:
            checkout_flow(http, meter, "warm-up: ")
            say("capacity: warm-up flow done (process caches filled)")
            status = checkout_flow(http, meter, "")
    calls = [c for c in meter.calls if c["step"] not in ("setup", "after")
             and not c["step"].startswith("warm-up")]
    cold = [c for c in meter.calls if c["step"].startswith("warm-up")]
    say(f"capacity: {len(calls)} DynamoDB calls in the measured flow; order {status}")
    return {"calls": calls, "warmup": cold, "status": status}


def by_step(calls: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    steps: dict[str, dict[str, float]] = {}
    for call in calls:
        s = steps.setdefault(call["step"], {"calls": 0, "rcu": 0.0, "wcu_table": 0,
                                            "wcu_index": 0})
        s["calls"] += 1
        s["rcu"] += call["rcu"]
        s["wcu_table"] += call["wcu_table"]
        s["wcu_index"] += call["wcu_index"]
    return steps


# -- 3. package size ------------------------------------------------------------------------

PACKAGE_SCRIPT = ROOT / "infra" / "package.py"


def package_key() -> str:
    """What the built package depends on: requirements, the build script, the sources."""
    digest = hashlib.sha256()
    inputs = [ROOT / "infra" / "requirements.txt", PACKAGE_SCRIPT, ROOT / "pyproject.toml"]
    for name in ("kernel", "plugins"):
        inputs += sorted(f for f in (ROOT / name).rglob("*")
                         if f.is_file() and "__pycache__" not in f.parts)
    for path in inputs:
        digest.update(path.relative_to(ROOT).as_posix().encode() + b"\0" + path.read_bytes())
    digest.update(f"{sys.version_info[0]}.{sys.version_info[1]}-{platform.machine()}".encode())
    digest.update(os.environ.get("NIAGA_LOCALES", "").encode())
    return digest.hexdigest()[:12]


def package_dir() -> tuple[Path, bool]:
    """``infra/package.py build`` (stage + requirements + prune), cached by ``package_key``;
    its log (what prune removed) next to it."""
    cache = Path(tempfile.gettempdir()) / "niaga-bench-aws"
    target = cache / f"pkg-{package_key()}"
    if (cache / f"{target.name}.log").exists() and target.is_dir():
        return target, True
    partial = cache / f"partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    out = subprocess.run([sys.executable, str(PACKAGE_SCRIPT), "build", str(partial)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    if out.returncode:
        raise RuntimeError(f"infra/package.py build failed: {out.stderr.strip()[-500:]}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    (cache / f"{target.name}.log").write_text(out.stdout.replace(str(partial), "<pkg>"))
    return target, False


def build_log(target: Path) -> list[str]:
    """The summary lines ``infra/package.py`` printed when it built ``target``."""
    log = target.parent / f"{target.name}.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [x.removeprefix("[package] ") for x in lines
            if x.startswith("[package] ") and not x.startswith("[package] $")]


def deploy_copy(dest: Path) -> Path:
    """kernel/ and plugins/ as ``make deploy`` stages them (no __pycache__)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("kernel", "plugins"):
        shutil.copytree(ROOT / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def files_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*")
               if f.is_file() and "__pycache__" not in f.parts)


def largest_child(path: Path) -> tuple[str, int, int]:
    """The biggest entry directly inside ``path``: (relative name, bytes, files)."""
    child = max(path.iterdir(), key=files_size)
    count = sum(1 for f in child.rglob("*") if f.is_file()) if child.is_dir() else 1
    return f"{path.name}/{child.name}", files_size(child), count


def distribution_sizes(target: Path) -> dict[str, int]:
    """Bytes per installed distribution (its RECORD: code, data, metadata, scripts)."""
    from importlib.metadata import distributions

    sizes: dict[str, int] = {}
    for dist in distributions(path=[str(target)]):
        name = dist.metadata["Name"]
        total = 0
        for f in dist.files or []:
            p = Path(dist.locate_file(f))
            if "__pycache__" not in p.parts and p.is_file():
                total += p.stat().st_size
        sizes[name] = total
    return sizes


def package_size(target: Path) -> dict[str, Any]:
    top: dict[str, int] = {}
    for entry in target.iterdir():
        if entry.name.startswith(".") or entry.name == "__pycache__":
            continue
        name = "*.dist-info (metadata)" if entry.name.endswith(".dist-info") else entry.name
        if name in ("kernel", "plugins"):
            name += " (Niaga source)"
        top[name] = top.get(name, 0) + files_size(entry)
    dists = distribution_sizes(target)
    runtime = {k: v for k, v in dists.items()
               if k.lower().replace("_", "-") in RUNTIME_PROVIDED}
    total = sum(top.values())
    ranked = sorted(top.items(), key=lambda kv: -kv[1])
    inside = [largest_child(target / name) for name, _ in ranked[:4]
              if (target / name).is_dir()]
    return {"total": total, "inside": inside, "runtime": runtime,
            "without": total - sum(runtime.values()), "top": ranked, "dists": dists,
            "source": sum(files_size(target / n) for n in ("kernel", "plugins")),
            "log": build_log(target)}


def package_cold_start(target: Path, work: Path, runs: int) -> dict[str, Any]:
    """The three variants on the Lambda package: first as ``make deploy`` stages it, then
    with the ``niaga`` entry points the plugins are found by (if the plain copy fails)."""
    from importlib.metadata import distribution

    staged = deploy_copy(work / "lambda")
    env = lambda_env({"PYTHONPATH": f"{staged}{os.pathsep}{target}",
                      "PYTHONPYCACHEPREFIX": str(work / "pycache"), "BENCH_CWD": str(work)})
    flags = ["-S"]
    problem = None
    try:
        run_child("api", env, flags)
    except RuntimeError as exc:
        first, _, rest = str(exc).partition("; ")
        more = rest.count("no installed plugin")
        problem = first + (f" (and {more} more like it)" if more else "")
        say(f"package as staged by make deploy: {problem}")
        meta = staged / "niaga-0.1.0.dist-info"
        meta.mkdir()
        dist = distribution("niaga")
        for name in ("METADATA", "entry_points.txt"):
            text = dist.read_text(name) or dist.read_text("PKG-INFO") or ""
            (meta / name).write_text(text)
    return {"problem": problem, "env": env, "flags": flags,
            "results": cold_start(runs, env, flags, "Lambda package")}


# -- report ---------------------------------------------------------------------------------

def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def ms(seconds: float) -> str:
    return f"{1000 * seconds:.0f} ms"


def units(value: float) -> str:
    return f"{value:g}"


def cold_table(results: dict[str, dict[str, float]]) -> list[str]:
    lines = ["| variant | in process: import + ready, median (min–max) | of which the "
             "first import | whole process, median | connects |", "|---|---|---|---|---|"]
    for variant in VARIANTS:
        r = results[variant]
        lines.append(f"| {LABELS[variant]} | **{ms(r['ready'])}** ({ms(r['min'])}–"
                     f"{ms(r['max'])}) | {ms(r['import'])} | {ms(r['wall'])} | "
                     f"{r['connects']:.0f} |")
    return lines


def ratios(results: dict[str, dict[str, float]]) -> tuple[float, float, float]:
    api, floor, worker = (results[v]["ready"] for v in ("api", "floor", "worker"))
    return api / floor, worker / api, results["api"]["wall"] / results["floor"]["wall"]


def cold_section(cold: dict[str, Any], runs: int) -> list[str]:
    venv = cold["venv"]
    api_ratio, worker_ratio, wall_ratio = ratios(venv)
    lines = [
        "### 1. Cold start", "",
        f"{runs} fresh interpreters per variant, interleaved (the first variant rotates each "
        "round), after one untimed warm-up each; the environment a Lambda function gets "
        f"(`NIAGA_TABLE`, `NIAGA_IDEMPOTENCY_TABLE`, `NIAGA_EVENT_BUS`, `NIAGA_ADMIN_TOKEN`, "
        f"`POWERTOOLS_*`, region {REGION}, dummy credentials). "
        "*Ready* = the module imported and what its first invocation needs built: for the API "
        "`kernel.aws.api._adapter()` (markets, plugins, `Niaga`, `create_app`, `Mangum`) and the "
        "store's DynamoDB client; for the worker the container's kernel and its DynamoDB "
        "client; for the floor `import litestar, mangum, boto3; boto3.client(\"dynamodb\")`. "
        "Building makes no AWS calls (boto3 clients connect lazily): every socket connect is "
        "refused and counted (column *connects*). Not included: the SSM `GetParameter` a "
        "deployed function makes for `NIAGA_MARKETS_PARAM` (here the demo markets file is "
        "read), and the runtime's own start. **The ratios use the in-process times**; the "
        "whole-process time adds interpreter start-up and exit, the same for every variant. "
        "*First import*: the floor's `import litestar, mangum, boto3`, the API's "
        "`import kernel.aws.api`, the worker's `import kernel.aws.worker`.",
        "", "In this venv (`.venv/bin/python`):", "", *cold_table(venv), "",
        f"- API ÷ floor = **{api_ratio:.2f}** (whole process: {wall_ratio:.2f}; "
        f"{spread(venv['rounds']['api/floor'])}); target ≤ {TARGET_COLD_RATIO:g}: "
        f"{verdict(api_ratio <= TARGET_COLD_RATIO)}",
        f"- worker ÷ API = **{worker_ratio:.2f}** ({spread(venv['rounds']['worker/api'])}); "
        f"target ≤ {TARGET_WORKER_RATIO:g}: {verdict(worker_ratio <= TARGET_WORKER_RATIO)}",
    ]
    pkg = cold.get("package")
    if pkg:
        p_api, p_worker, p_wall = ratios(pkg["results"])
        rounds = pkg["results"]["rounds"]
        many = pkg["results"]["api"]["n"] >= 2
        lines += ["", f"On the Lambda package itself, {pkg['results']['api']['n']} "
                  "interleaved rounds as a cross-check (item 3's `pip install --target` + the "
                  "sources as `make deploy` copies them; `python -S` so only the package is on "
                  "`sys.path`; bytecode cached outside it; this machine's Python "
                  f"{platform.python_version()}, not the runtime's 3.12 arm64):", "",
                  *cold_table(pkg["results"]), "",
                  f"- API ÷ floor = **{p_api:.2f}** (whole process {p_wall:.2f}"
                  + (f"; {spread(rounds['api/floor'])}" if many else "") + ")",
                  f"- worker ÷ API = **{p_worker:.2f}**"
                  + (f" ({spread(rounds['worker/api'])})" if many else "")]
        if pkg["problem"]:
            lines += [f"- **As `make deploy` stages it, the API handler cannot be built**: "
                      f"`{pkg['problem']}` — the copy has no `niaga` distribution metadata, so "
                      "the `niaga` entry points (every first-party plugin) are not found. The "
                      "figures above add that metadata (`METADATA` + `entry_points.txt` of the "
                      "installed `niaga`) next to the sources."]
    if cold.get("stages"):
        lines += ["", f"Where the time goes: the same work in laps (median of {STAGE_RUNS} "
                  "interleaved children each; the API's laps are the steps of `_adapter()`):",
                  "", "| variant | lap | venv | Lambda package |", "|---|---|---|---|"]
        venv_laps, pkg_laps = cold["stages"]["venv"], cold["stages"]["package"]
        for variant, laps in venv_laps.items():
            lines += [f"| {LABELS[variant]} | {label} | {ms(s)} | {ms(p)} |"
                      for (label, s), (_, p) in zip(laps, pkg_laps[variant], strict=True)]
    if cold.get("offenders"):
        packaged = cold["packaged"]
        lines += offender_table(cold["offenders"]["api"], packaged,
                                "Modules the API imports and the floor does not")
        lines += offender_table(cold["offenders"]["worker"], packaged,
                                "Everything the worker imports")
    return lines


def offender_table(found: list[dict[str, Any]], packaged: set[str], title: str) -> list[str]:
    def shipped(package: str) -> str:
        if package in ("kernel", "plugins") or package in packaged or \
                f"{package}.py" in packaged:
            return "yes"
        return "stdlib" if package in sys.stdlib_module_names else "**no** (venv only)"

    return ["", f"{title} (`python -X importtime`, one run in the venv; own import time "
            "summed by top-level package):", "",
            "| package | own import time | first imported via | top-level import | "
            "in the Lambda package |", "|---|---|---|---|---|",
            *(f"| `{o['package']}` | {o['ms']:.0f} ms | `{o['via']}` | `{o['root']}` | "
              f"{shipped(o['package'])} |" for o in found)]


def capacity_section(cap: dict[str, Any]) -> list[str]:
    calls = cap["calls"]
    steps = by_step(calls)
    lines = [
        "### 2. DynamoDB capacity per 3-line checkout", "",
        "The real app (`create_app(Niaga(DynamoStore(...), markets))`, outbox relayed by the "
        "stream worker as on Lambda) on moto in process, demo data seeded, driven by "
        "Litestar's `TestClient`: a DE web cart, 3 lines (" + ", ".join(SKUS) + ") of 1, a "
        "Berlin address, the first ship option, testpay `tok_ok`. Counted on the store's "
        "boto3 client (`before-parameter-build` / `after-call` hooks); the old and new image "
        "of every written item is read with a second, un-hooked client. A first flow fills "
        "the process caches (locations, exchange rates: 30 s), as in a warm container; the "
        f"second is reported (order status `{cap['status']}`).", "",
        "Rules (AWS, *DynamoDB item sizes and formats*): item size = UTF-8 attribute names + "
        "values (strings UTF-8 bytes, binary raw bytes, numbers 1 byte per 2 significant "
        "digits + 1, maps/lists 3 bytes + 1 per element + nested); a write is 1 WCU per KB "
        "(rounded up, ≥ 1) of the larger of the old and new image (the old one for a delete "
        "or a ConditionCheck), doubled in `TransactWriteItems`; a keys-only GSI whose keys "
        "appear or disappear costs 1 index write, a changed index key 2 (delete + put), at "
        "the standard rate; reads 1 RCU per 4 KB strongly consistent, ½ eventually "
        "consistent (GSI queries), rounded per item for `BatchGetItem` (a missing key costs "
        "the minimum) and per request for `Query`. The Powertools idempotency table the API "
        "function puts in front of checkout is a separate table, not counted here.", "",
        "| step | calls | RCU | WCU table | WCU index | WCU total |", "|---|---|---|---|---|---|"]
    for name, s in steps.items():
        lines.append(f"| {name} | {s['calls']:.0f} | {units(s['rcu'])} | "
                     f"{s['wcu_table']:.0f} | {s['wcu_index']:.0f} | "
                     f"{s['wcu_table'] + s['wcu_index']:.0f} |")
    total = {k: sum(s[k] for s in steps.values()) for k in ("calls", "rcu", "wcu_table",
                                                            "wcu_index")}
    lines.append(f"| **whole flow** | {total['calls']:.0f} | {units(total['rcu'])} | "
                 f"{total['wcu_table']:.0f} | {total['wcu_index']:.0f} | "
                 f"{total['wcu_table'] + total['wcu_index']:.0f} |")
    co = steps.get("checkout", {"rcu": 0, "wcu_table": 0, "wcu_index": 0})
    wcu = co["wcu_table"] + co["wcu_index"]
    lines += ["", f"Checkout step: **{wcu:.0f} WCU** ({co['wcu_table']:.0f} table + "
              f"{co['wcu_index']:.0f} index), **{units(co['rcu'])} RCU**. Targets ≤ "
              f"{TARGET_WCU} WCU: {verdict(wcu <= TARGET_WCU)}; ≤ {TARGET_RCU} RCU: "
              f"{verdict(co['rcu'] <= TARGET_RCU)}.", "", "The checkout, call by call:", "",
              "| # | store method | call | RCU | WCU table | WCU index | what |",
              "|---|---|---|---|---|---|---|"]
    for i, call in enumerate((c for c in calls if c["step"] == "checkout"), 1):
        lines.append(f"| {i} | `{call['caller']}` | {call['op']}"
                     f"{' (' + call['error'] + ')' if call['error'] else ''} | "
                     f"{units(call['rcu'])} | {call['wcu_table']} | {call['wcu_index']} | "
                     f"{describe(call)} |")
    first = {k: sum(c[k] for c in cap["warmup"]) for k in ("rcu", "wcu_table", "wcu_index")}
    lines += ["", "The warm-up flow (process caches empty at its start) cost "
              f"{units(first['rcu'])} RCU and {first['wcu_table'] + first['wcu_index']:.0f} WCU in "
              f"{len(cap['warmup'])} calls, against {units(total['rcu'])} RCU and "
              f"{total['wcu_table'] + total['wcu_index']:.0f} WCU in {total['calls']:.0f} calls "
              "for the reported one."]
    return lines


def describe(call: dict[str, Any]) -> str:
    if not call["writes"]:
        return call["read"]
    parts = []
    for w in call["writes"]:
        size = f"{w['before']}→{w['after']} B" if w["action"] == "Update" else (
            f"{w['after'] or w['before']} B")
        index = "".join(f"; {g} {what} {u}" for g, what, u in w["index"])
        parts.append(f"{w['action']} {w['kind']} ({size}): {w['wcu']}{index}")
    return "; ".join(parts).replace("|", "\\|")


def package_section(size: dict[str, Any], cached: bool) -> list[str]:
    runtime_mb = sum(size["runtime"].values()) / MB
    lines = [
        "### 3. Package size", "",
        "`infra/package.py build <tmp>`, what `make deploy` ships: the project staged with "
        "its `niaga-*.dist-info` (the plugins' entry points), `pip install --target` of "
        "`infra/requirements.txt` (what `sam build` installs), then pruned (Babel locale data "
        "of other languages, distributions the functions never import, `__pycache__`, stubs, "
        "`bin/`; infra/README.md) ("
        + ("reused from the cache of an earlier run" if cached else "built in this run")
        + f"; wheels for this machine, Python {platform.python_version()} "
        f"{platform.machine()}, not arm64/3.12: compiled parts differ a little). Unzipped "
        "size = sum of file sizes.", "", "What the build printed:", "", "```",
        *size["log"], "```", "",
        "| largest top-level entries | size |", "|---|---|"]
    lines += [f"| `{name}` | {b / MB:.1f} MB |" for name, b in size["top"][:8]]
    removed = ", ".join(sorted(size["runtime"]))
    lines += [
        "",
        "| package | unzipped |", "|---|---|",
        f"| as `make deploy` ships it (boto3 bundled) | **{size['total'] / MB:.1f} MB** |",
        f"| with `--drop-boto3` (the Lambda runtime has {removed}: {runtime_mb:.1f} MB) | "
        f"**{size['without'] / MB:.1f} MB** |",
        f"| of which Niaga's own source | {size['source'] / MB:.2f} MB |", "",
        f"Target ≤ {TARGET_MB:g} MB unzipped for the function's own package, boto3 included "
        f"(the default; infra/README.md says why): {size['total'] / MB:.1f} MB: "
        f"{verdict(size['total'] <= TARGET_MB * MB)}. Relying on the runtime's boto3 instead "
        f"would leave {size['without'] / MB:.1f} MB: "
        f"{verdict(size['without'] <= TARGET_MB * MB)}."]
    lines += ["", "Inside the largest: " + ", ".join(
        f"`{name}` {b / MB:.1f} MB ({n} files)" for name, b, n in size["inside"]) + "."]
    dists = sorted(size["dists"].items(), key=lambda kv: -kv[1])[:8]
    lines += ["", "By distribution (largest): " + ", ".join(
        f"{name} {b / MB:.1f} MB" for name, b in dists) + "."]
    return lines


def report(cold: dict[str, Any], cap: dict[str, Any], size: dict[str, Any], cached: bool,
           command: str, runs: int) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    load = "/".join(f"{x:.2f}" for x in os.getloadavg())
    body = [
        START, "## Serverless: cold start, DynamoDB capacity, package size (issue 4)", "",
        f"Measured {when} UTC by `tests/bench/bench_aws.py`:", "", "```", command, "```", "",
        f"- machine: `os.cpu_count()` = {os.cpu_count()}, load average at start {load}; "
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.machine()}", "",
        *cold_section(cold, runs), "", *capacity_section(cap), "",
        *package_section(size, cached), END]
    return "\n".join(body)


def write(out: Path, section: str) -> None:
    text = out.read_text() if out.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    out.write_text(text)


@contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="niaga-bench-aws-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11,
                        help="fresh interpreters per cold-start variant (default 11, min 10)")
    parser.add_argument("--package-runs", type=int, default=7,
                        help="the same on the Lambda package, a cross-check (default 7)")
    parser.add_argument("--out", default=None, help="write the section into this Markdown file")
    args = parser.parse_args()
    if args.runs < 10 or args.package_runs < 1:
        parser.error("--runs must be at least 10, --package-runs at least 1")
    command = " ".join([".venv/bin/python", "tests/bench/bench_aws.py", *sys.argv[1:]])
    started = time.perf_counter()
    say(f"cpu_count {os.cpu_count()}; Python {platform.python_version()}")
    say("package: infra/package.py build (cached by hash) ...")
    target, cached = package_dir()
    say(f"package: {target} ({'cached' if cached else 'built now'})")
    cold: dict[str, Any] = {"venv": cold_start(args.runs, lambda_env(), [], "venv")}
    with workdir() as work:
        size = package_size(target)
        pkg = cold["package"] = package_cold_start(target, work, args.package_runs)
        if missed(cold):
            say("cold start: a target is missed; laps and python -X importtime for the offenders")
            cold["stages"] = {"venv": stages(lambda_env(), []),
                              "package": stages(pkg["env"], pkg["flags"])}
            cold["offenders"] = {"api": offenders(lambda_env(), "api", True),
                                 "worker": offenders(lambda_env(), "worker", False)}
            cold["packaged"] = {p.name for p in target.iterdir()}
    cap = capacity()
    section = report(cold, cap, size, cached, command, args.runs)
    print(section)
    if args.out:
        write(Path(args.out), section)
        say(f"wrote {args.out}")
    say(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
