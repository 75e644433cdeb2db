"""docs/operating-aws.md: its ```sh blocks that need no AWS account, run as written.

`niaga markets push` talks to a moto server here instead of AWS (``AWS_ENDPOINT_URL``,
test credentials, every other ``AWS_*`` variable dropped), which already holds the
merchant's own markets parameter as a first push made it (`/niaga-shop/my-markets`, the
demo markets, version 1).
`niaga serve --aws-local` is started as a reader starts it, an order placed on it, and
its output read for the metrics and log fields the page names. The page's tables are
also checked against the template and the code, so neither drifts from the other.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("moto.server", reason="moto's server (pip install 'moto[server]')")
pytest.importorskip("samtranslator")

import boto3
from samtranslator.yaml_helper import yaml_parse

from tests.docs_blocks import ROOT, blocks, blocks_run_by, run_sh, start_server

pytestmark = pytest.mark.dynamodb

PAGE = ROOT / "docs" / "operating-aws.md"  # the page: operating-aws.md
TEMPLATE = ROOT / "infra" / "template.yaml"
DEMO = ROOT / "kernel" / "data" / "markets.toml"
PARAM = "/niaga-shop/my-markets"  # MerchantMarketsParameter
REGION = "eu-central-1"


def _mine(test: str) -> list[str]:
    return [b.body for b in blocks_run_by(PAGE, __file__, test)]


def _section(title: str) -> str:
    text = PAGE.read_text(encoding="utf-8")
    return text.split(f"\n{title}\n", 1)[1].split("\n## ", 1)[0]


@pytest.fixture
def moto_ssm(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto server holding the merchant's markets parameter; the environment points at
    it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = "http://{}:{}".format(*server.get_host_and_port())
    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    for key, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
                       "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION,
                       "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                       "AWS_EC2_METADATA_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    urllib.request.urlopen(urllib.request.Request(  # moto's state is per process: start empty
        endpoint + "/moto-api/reset", method="POST"), timeout=10).close()
    ssm = boto3.client("ssm", endpoint_url=endpoint, region_name=REGION,
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    ssm.put_parameter(Name=PARAM, Type="String", Tier="Advanced",
                      Value=DEMO.read_text(encoding="utf-8"))  # a first push
    try:
        yield ssm
    finally:
        server.stop()


def _value(ssm: Any) -> tuple[str, int]:
    p = ssm.get_parameter(Name=PARAM)["Parameter"]
    return p["Value"], p["Version"]


def test_check_and_push_a_markets_file(tmp_path: Path, moto_ssm: Any) -> None:
    mine = tmp_path / "my-markets.toml"
    mine.write_text(DEMO.read_text(encoding="utf-8").replace('name = "Germany"',
                                                            'name = "Deutschland"'))
    check, push = _mine("test_check_and_push_a_markets_file")
    done = run_sh(check, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "my-markets.toml: OK (4 markets)"
    assert "Deutschland" in done.stdout

    done = run_sh(push, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert _value(moto_ssm) == (mine.read_text(encoding="utf-8"), 2)
    # what the page says it prints, but for the file's size
    shown = _section("### Check it, then put it").split(push, 1)[1]
    expected = re.search(r"```text\n(.*?)```", shown, flags=re.S).group(1)
    size = len(mine.read_bytes())
    assert done.stdout == re.sub(r"\(\d+ bytes", f"({size} bytes", expected)

    # a file that fails the check is not put
    mine.write_text(mine.read_text(encoding="utf-8").replace('currency = "EUR"',
                                                            'currency = "EURO"'))
    done = run_sh(push, cwd=tmp_path)
    assert done.returncode == 1 and "nothing was put" in done.stderr, done.stderr
    assert "markets.DE" in done.stderr
    assert _value(moto_ssm)[1] == 2


def _toml_block(name: str) -> str:
    [block] = [b for b in blocks(PAGE) if b.lang == "toml" and f"file: {name}" in b.before]
    return block.body


def test_a_market_with_a_plugin_secret(tmp_path: Path, moto_ssm: Any) -> None:
    snippet = _toml_block("shop-markets.toml")
    shop = tmp_path / "shop-markets.toml"
    shop.write_text(DEMO.read_text(encoding="utf-8") + "\n" + snippet)
    [block] = _mine("test_a_market_with_a_plugin_secret")
    done = run_sh(block, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "stripe" in done.stdout and "shop-markets.toml: OK (4 markets)" in done.stdout
    assert _value(moto_ssm) == (shop.read_text(encoding="utf-8"), 2)

    # without the stand-in the check names the variable the market needs
    done = run_sh("niaga markets check shop-markets.toml", cwd=tmp_path,
                  STRIPE_API_KEY_DE="")
    assert done.returncode == 1 and "STRIPE_API_KEY_DE" in done.stderr, done.stderr

    # the page's SSM names and PluginSecrets value are the variables the snippet names,
    # in the form the template accepts
    names = re.findall(r'_env = "(\w+)"', snippet)
    section = _section("### Plugin secrets")
    assert f"--name /niaga-shop/secrets/{names[0]}" in section
    listed = re.search(r"PluginSecrets=(\S+)", section).group(1)
    assert listed.split(",") == names
    pattern = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))["Parameters"][
        "PluginSecrets"]["AllowedPattern"]
    assert re.fullmatch(pattern, listed)


def _post(base: str, path: str, body: Any, headers: dict[str, str] | None = None
          ) -> tuple[int, Any]:
    request = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json",
                                              **(headers or {})})
    return _send(request)


def _put(base: str, path: str, body: Any) -> tuple[int, Any]:
    return _send(urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                        method="PUT",
                                        headers={"content-type": "application/json"}))


def _send(request: urllib.request.Request) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def _json_lines(output: str) -> list[dict[str, Any]]:
    out = []
    for line in output.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
    return out


def _emf(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [x for x in lines if "_aws" in x and any(
        m["Name"] == name for d in x["_aws"]["CloudWatchMetrics"] for m in d["Metrics"])]


# Fields of the page's queries that this local run cannot show, and why
ONLY_ON_LAMBDA = {
    "correlation_id": "API lines only; the API logs nothing at INFO on a good order",
    "xray_trace_id": "needs Lambda's _X_AMZN_TRACE_ID",
    "name": "the kernel's loggers go through Powertools on Lambda only (route_kernel_logs, "
            "tested in tests/aws/test_handlers.py)",
    "failures": "the worker logs it when a record fails (tests/aws/test_handlers.py)",
}
QUERY_WORDS = {"fields", "filter", "stats", "sort", "limit", "by", "desc", "asc", "as", "and",
               "or", "count", "sum", "avg", "max", "min", "bin", "ispresent", "like"}


def test_the_local_shape_serves_the_pushed_markets(tmp_path: Path) -> None:
    text = DEMO.read_text(encoding="utf-8")
    (tmp_path / "my-markets.toml").write_text(text.split("# --- Japan")[0])
    [block] = blocks_run_by(PAGE, __file__, "test_the_local_shape_serves_the_pushed_markets")
    server = start_server(block, cwd=tmp_path, wait_s=90, NIAGA_SWEEP_EVERY="1",
                          NIAGA_ADMIN_TOKEN="adm_docs_operating_aws")
    try:
        status, _, body = server.get("/markets")
        assert status == 200
        assert {m["code"] for m in json.loads(body)} == {"ID", "DE", "US"}  # the file's
        assert "markets from /niaga-local/markets" in server.output

        # an order that fails, then one that is placed: the metrics of the page
        base = server.base
        status, cart = _post(base, "/carts", {"market": "DE", "channel": "web"})
        assert status == 201, cart
        status, _ = _post(base, f"/carts/{cart['id']}/lines",
                          {"sku": "TEA-JAVA-BLACK", "quantity": 2})
        assert status == 200
        status, _ = _put(base, f"/carts/{cart['id']}/delivery",
                         {"option_id": "store-pickup:de-ber-store"})
        assert status == 200
        status, problem = _post(base, f"/carts/{cart['id']}/checkout",
                                {"payment": {"method": "no-such-method"}},
                                {"Idempotency-Key": "docs-ops-1"})
        assert 400 <= status < 500, problem
        status, order = _post(base, f"/carts/{cart['id']}/checkout",
                              {"payment": {"method": "testpay", "token": "tok_ok"}},
                              {"Idempotency-Key": "docs-ops-2"})
        assert status == 201, order
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            lines = _json_lines(server.output)
            if _emf(lines, "EventsDelivered") and any(x.get("message") == "swept"
                                                       for x in lines):
                break
            time.sleep(0.3)
        else:
            pytest.fail(f"no worker metrics or sweeper line:\n{server.output}")
    finally:
        server.stop()

    # the Metrics table: names, namespace and dimensions as the handlers wrote them
    table = _section("## Metrics")
    for name, dims in (("OrdersPlaced", ["service"]), ("Revenue", ["service", "market",
                                                                     "currency"]),
                       ("EventsDelivered", ["service"]), ("OutboxLag", ["service"])):
        [blob] = _emf(lines, name)[:1]
        metric_dims = blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
        assert sorted(metric_dims[0]) == sorted(dims), (name, metric_dims)
        assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Niaga"
        assert f"| `{name}` |" in table
    failures = {tuple(b["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]): b
                for b in _emf(lines, "CheckoutFailures")}
    assert set(failures) == {("service",), ("service", "reason")}
    assert failures[("service", "reason")]["reason"] == problem["code"]
    assert f"`{problem['code']}`" in table

    # every field the Logs Insights queries read is in a line this run printed
    seen = {k for x in lines for k in x}
    queries = "\n".join(re.findall(r"```text\n(.*?)```", _section("### Logs Insights queries"),
                                   flags=re.S))
    queries = re.sub(r'"[^"]*"|/[^/\n]*/', "", queries)  # strings and patterns: not fields
    fields = {w for w in re.findall(r"(?<![@\w.])([A-Za-z_]\w*)(?:\.0)?", queries)
              if w not in QUERY_WORDS and not re.fullmatch(r"\d+\w", w)}
    assert {"level", "message", "reason", "Revenue", "market", "orders_expired"} <= fields
    named_by_as = set(re.findall(r"\bas (\w+)", queries))
    missing = fields - named_by_as - seen - set(ONLY_ON_LAMBDA)
    assert not missing, f"the queries read fields no line has: {missing}"


def test_the_page_lists_every_parameter_output_alarm_and_metric() -> None:
    template = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    text = PAGE.read_text(encoding="utf-8")
    for name in template["Parameters"]:
        assert f"| `{name}` |" in _section("### Parameters"), name
    for name in template["Outputs"]:
        assert f"`{name}`" in _section("### Outputs"), name
    alarms = [k for k, v in template["Resources"].items()
              if v["Type"] == "AWS::CloudWatch::Alarm"]
    assert f"`AlarmTopic` and {len(alarms)} alarms" in text
    alarm_table = _section("## Alarms")
    for name in alarms:
        assert f"`{name}`" in alarm_table, name
    code = "".join((ROOT / "kernel" / "aws" / f).read_text(encoding="utf-8")
                   for f in ("api.py", "worker.py", "sweeper.py"))
    emitted = set(re.findall(r'name="([A-Z]\w+)"', code)) | set(  # and the sweeper's pairs
        re.findall(r'\("([A-Z]\w+)", "[a-z_]+"\)', code))
    assert emitted >= {"OrdersPlaced", "CheckoutFailures", "Revenue", "EventsDelivered",
                       "OutboxLag", "RecordFailures", "OrdersExpired"}
    for name in emitted:
        assert f"| `{name}` |" in _section("## Metrics"), name


def test_the_page_pushes_to_the_parameter_its_deploy_names() -> None:
    """The name the page pushes to is the MerchantMarketsParameter its deploy command gives,
    one the template accepts, and not the demo parameter the stack owns."""
    template = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    section = _section("### Your own markets parameter")
    assert f"--parameter-overrides MerchantMarketsParameter={PARAM}\n" in section
    assert re.fullmatch(template["Parameters"]["MerchantMarketsParameter"]["AllowedPattern"],
                        PARAM)
    assert PARAM != "/niaga-shop/markets"
    pushed = set(re.findall(r"--ssm-name (\S+)", PAGE.read_text(encoding="utf-8")))
    assert pushed == {PARAM}


def test_push_says_what_is_missing_and_puts_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """No region (or no credentials): `niaga markets push` names the problem, exit 1."""
    from kernel.cli import main

    for key in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    mine = tmp_path / "my-markets.toml"
    mine.write_text(DEMO.read_text(encoding="utf-8"))
    assert main(["markets", "push", str(mine), "--ssm-name", PARAM]) == 1
    assert "region" in capsys.readouterr().err
    assert main(["markets", "push", str(tmp_path / "missing.toml"), "--ssm-name", PARAM]) == 1
    assert "No such file" in capsys.readouterr().err
    big = tmp_path / "big.toml"
    big.write_text(DEMO.read_text(encoding="utf-8") + "#" * 9000 + "\n")
    assert main(["markets", "push", str(big), "--ssm-name", PARAM]) == 1
    assert "over the 8 KB" in capsys.readouterr().err
