"""``niaga serve --aws-local``: the README's "Run the AWS shape locally" session run verbatim
against a real server process, then the moto endpoint it printed inspected with boto3: the
order in the table, its outbox events delivered by the stream worker, Powertools' idempotency
record, and every resource shaped as infra/template.yaml says (read here with
aws-sam-translator's YAML loader, not the one kernel/aws/local.py uses)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("moto.server", reason="moto's server (pip install 'moto[server]')")
pytest.importorskip("samtranslator")

import boto3
from samtranslator.yaml_helper import yaml_parse

from kernel.aws import local
from kernel.cli import main
from tests.serving import free_port

pytestmark = pytest.mark.dynamodb

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "template.yaml"
NIAGA = str(Path(sys.executable).with_name("niaga"))
SECTION = "Run the AWS shape locally"


def _section_blocks() -> list[str]:
    """The ``sh`` blocks of the README section (found as tests/test_readme.py finds its own)."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {SECTION}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


@dataclass
class Server:
    proc: subprocess.Popen[str]
    base: str
    lines: list[str] = field(default_factory=list)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def printed(self, pattern: str) -> str:
        found = re.search(pattern, self.output)
        assert found, f"{pattern!r} not in:\n{self.output}"
        return found.group(1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "NIAGA_ADMIN_TOKEN"}
    env["NIAGA_SWEEP_EVERY"] = "1"  # the sweeper's schedule, so this test sees it run
    env["AWS_PROFILE"] = "a-real-profile-that-must-be-ignored"
    proc = subprocess.Popen([NIAGA, "serve", "--aws-local", "--port", str(port)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    srv = Server(proc, f"http://127.0.0.1:{port}")
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: srv.lines.extend(
        line.rstrip("\n") for line in proc.stdout), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if "niaga: API on" in srv.output:
                    urllib.request.urlopen(srv.base + "/markets", timeout=2)
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            proc.kill()
            reader.join(5)
            pytest.fail(f"niaga serve --aws-local did not start:\n{srv.output}")
        yield srv
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _clients(endpoint: str) -> tuple[Any, Any, Any]:
    kw = {"endpoint_url": endpoint, "region_name": local.REGION,
          "aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    return boto3.client("dynamodb", **kw), boto3.client("ssm", **kw), boto3.client("events", **kw)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the README session uses curl")
def test_the_readme_session_runs_on_the_aws_shape(server: Server) -> None:
    blocks = _section_blocks()
    assert "niaga serve --aws-local" in blocks[0] and "SERVE_ARGS=--aws-local" in blocks[0]
    [session] = [b for b in blocks if "curl" in b]
    script = "set -e\n" + session.replace("127.0.0.1:8000", server.base.removeprefix("http://"))
    done = subprocess.run(["bash", "-c", script + '\necho "ORDER=$ORDER"\n'],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[-3:-1] == ["paid", "{'amount': '17.80', 'currency': 'EUR'}"]  # as the README says
    order_id = lines[-1].removeprefix("ORDER=")

    endpoint = server.printed(r"niaga: moto endpoint (http://127\.0\.0\.1:\d+)")
    assert endpoint != server.base
    token = server.printed(r"admin token \(set NIAGA_ADMIN_TOKEN to choose one\): (\S+)")
    assert token.startswith("adm_")
    export = server.printed(r"niaga: AWS CLI / boto3: (export AWS_ENDPOINT_URL=.*)")
    assert f"AWS_ENDPOINT_URL={endpoint} " in export
    ddb, ssm, events = _clients(endpoint)
    plan = local.plan(local.load_template(TEMPLATE), admin_token=token)
    table, idem_table = plan.env["NIAGA_TABLE"], plan.env["NIAGA_IDEMPOTENCY_TABLE"]
    assert (table, idem_table) == ("niaga-local-Table", "niaga-local-IdempotencyTable")

    # the order is an item of the template's table
    item = ddb.get_item(TableName=table, Key={"pk": {"S": f"O#{order_id}"}, "sk": {"S": "O"}},
                        ConsistentRead=True).get("Item")
    assert item and item["st"]["S"] == "paid", item

    # the stream worker ran: the order's outbox events are marked delivered
    delivered: dict[str, bool] = {}
    for _ in range(50):
        evs = ddb.scan(TableName=table, FilterExpression="sk = :ev AND #s = :o",
                       ExpressionAttributeNames={"#s": "sub"},
                       ExpressionAttributeValues={":ev": {"S": "EV"}, ":o": {"S": order_id}},
                       ConsistentRead=True)["Items"]
        delivered = {e["ty"]["S"]: "dl" in e for e in evs}
        if "order.placed" in delivered and all(delivered.values()):
            break
        time.sleep(0.2)
    assert "order.placed" in delivered and all(delivered.values()), delivered

    # Powertools Idempotency (the API function's) kept the checkout in its table on moto
    records = ddb.scan(TableName=idem_table)["Items"]
    assert [r["status"]["S"] for r in records] == ["COMPLETED"]

    _assert_the_template_shape(ddb, ssm, events)

    # the README's AWS CLI hint, with the export line the server printed
    [cli] = [b for b in blocks if "aws dynamodb" in b]
    assert f"--table-name {table}" in cli
    if shutil.which("aws") and subprocess.run(["aws", "--version"],
                                              capture_output=True).returncode == 0:
        done = subprocess.run(["bash", "-c", f"set -e\n{export}\n{cli}"], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        assert re.search(rf"order\.placed\s+{re.escape(order_id)}\s+\d", done.stdout), done.stdout

    # Ctrl-C/SIGTERM: uvicorn stops, then the worker, the sweeper and moto
    server.proc.send_signal(signal.SIGTERM)
    assert server.proc.wait(30) == 0, server.output
    time.sleep(0.2)
    assert "niaga: stopped the stream worker, the sweeper and moto" in server.output
    assert '"message":"swept"' in server.output  # the sweeper handler ran on its schedule
    assert "Traceback" not in server.output, server.output


def _assert_the_template_shape(ddb: Any, ssm: Any, events: Any) -> None:
    """Every table, parameter and bus of the template, as moto holds them."""
    template = yaml_parse(TEMPLATE.read_text(encoding="utf-8"))
    resources = template["Resources"]
    tables = {k: r["Properties"] for k, r in resources.items()
              if r["Type"] == "AWS::DynamoDB::Table"}
    assert set(tables) == {"Table", "IdempotencyTable"}

    def by_name(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(items, key=lambda d: str(d.get("AttributeName") or d.get("IndexName")))

    for logical, props in tables.items():
        name = f"niaga-local-{logical}"
        got = ddb.describe_table(TableName=name)["Table"]
        assert got["KeySchema"] == props["KeySchema"]
        assert by_name(got["AttributeDefinitions"]) == by_name(props["AttributeDefinitions"])
        assert got["BillingModeSummary"]["BillingMode"] == props["BillingMode"]
        gsis = [{k: g[k] for k in ("IndexName", "KeySchema", "Projection")}
                for g in got.get("GlobalSecondaryIndexes", [])]
        assert by_name(gsis) == by_name(props.get("GlobalSecondaryIndexes", []))
        stream = props.get("StreamSpecification")
        assert got.get("StreamSpecification") == (
            {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]} if stream
            else None)
        ttl = ddb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == (
            "ENABLED", props["TimeToLiveSpecification"]["AttributeName"])
        pitr = ddb.describe_continuous_backups(TableName=name)["ContinuousBackupsDescription"]
        assert pitr["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
        assert got["SSEDescription"]["Status"] == "ENABLED"
    assert ddb.describe_table(TableName="niaga-local-Table")["Table"]["LatestStreamArn"]

    markets = resources["MarketsParameter"]["Properties"]
    param = ssm.get_parameter(Name="/niaga-local/markets")["Parameter"]
    assert (param["Type"], param["Value"]) == (markets["Type"], markets["Value"])
    [described] = ssm.describe_parameters(
        ParameterFilters=[{"Key": "Name", "Values": ["/niaga-local/markets"]}])["Parameters"]
    assert described["Tier"] == markets["Tier"]

    buses = {b["Name"] for b in events.list_event_buses()["EventBuses"]}
    assert resources["EventBus"]["Properties"]["Name"] == {"Fn::Sub": "${AWS::StackName}-events"}
    assert "niaga-local-events" in buses


# -- without a server -------------------------------------------------------------------------

def test_db_cannot_be_used_with_aws_local(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--aws-local", "--db", "x"])
    assert exc.value.code == 2
    assert "--db cannot be used with --aws-local" in capsys.readouterr().err


def test_a_missing_template_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["serve", "--aws-local", "--template", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "--template PATH" in err


def test_without_moto_server_it_names_the_pip_command(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "moto.server", None)  # import moto.server → ImportError
    assert main(["serve", "--aws-local"]) == 2
    err = capsys.readouterr().err
    assert "moto's server" in err and 'pip install -e ".[test]"' in err


def test_the_loader_reads_the_template_as_aws_sam_translator_does() -> None:
    text = TEMPLATE.read_text(encoding="utf-8")
    assert local.load_template(TEMPLATE) == yaml_parse(text)


def test_the_plan_gives_the_functions_the_template_environment() -> None:
    plan = local.plan(local.load_template(TEMPLATE), admin_token="adm_chosen")
    assert plan.env["NIAGA_TABLE"] == "niaga-local-Table"
    assert plan.env["NIAGA_IDEMPOTENCY_TABLE"] == "niaga-local-IdempotencyTable"
    assert plan.env["NIAGA_EVENT_BUS"] == "niaga-local-events"  # !GetAtt EventBus.Name
    assert plan.env["NIAGA_MARKETS_PARAM"] == "/niaga-local/markets"  # !Ref MarketsParameter
    assert plan.env["NIAGA_ADMIN_TOKEN"] == "adm_chosen"  # !Ref AdminToken
    assert plan.env["POWERTOOLS_LOG_LEVEL"] == "INFO"  # the LogLevel parameter's default
    handlers = {kind: fn.handler for kind, fn in plan.functions.items()}
    assert handlers == {"HttpApi": "kernel.aws.api.handler",
                        "DynamoDB": "kernel.aws.worker.handler",
                        "Schedule": "kernel.aws.sweeper.handler"}
    assert plan.function("DynamoDB").event["StartingPosition"] == "LATEST"



def test_the_plan_honours_the_markets_parameter_condition() -> None:
    """``MarketsParameter`` has ``Condition: CreatesMarketsParameter``: with
    ``MerchantMarketsParameter`` at its default (empty, what ``serve`` uses) the demo
    parameter is made as before; set, none is made and the functions read the named one."""
    template = local.load_template(TEMPLATE)
    demo = local.plan(template, admin_token="adm_x")
    assert list(demo.parameters) == ["/niaga-local/markets"]
    assert demo.parameters["/niaga-local/markets"]["Value"] == (
        template["Resources"]["MarketsParameter"]["Properties"]["Value"])
    assert demo.env["NIAGA_MARKETS_PARAM"] == "/niaga-local/markets"

    own = local.plan(template, admin_token="adm_x",
                     parameters={"MerchantMarketsParameter": "/shop/markets"})
    assert own.parameters == {}
    assert own.env["NIAGA_MARKETS_PARAM"] == "/shop/markets"
    assert set(own.tables) == set(demo.tables) and own.buses == demo.buses


def test_the_resolver_evaluates_the_template_conditions() -> None:
    template = local.load_template(TEMPLATE)

    def conditions(**parameters: str) -> dict[str, bool]:
        resolve = local.Resolver(template, local.STACK, parameters)
        return {name: resolve.condition(name) for name in template["Conditions"]}

    assert conditions() == {"HasAlarmEmail": False, "HasNoOrdersAlarm": False,
                            "CreatesMarketsParameter": True}
    assert conditions(AlarmEmail="ops@example.com", NoOrdersAlarmHours="6",
                      MerchantMarketsParameter="/shop/markets") == {
        "HasAlarmEmail": True, "HasNoOrdersAlarm": True, "CreatesMarketsParameter": False}
    resolve = local.Resolver({"Conditions": {"Both": {"Fn::And": [
        {"Condition": "A"}, {"Fn::Or": [{"Fn::Equals": ["x", "y"]}, {"Condition": "A"}]}]},
        "A": {"Fn::Not": [{"Fn::Equals": [{"Ref": "AWS::Region"}, "eu-west-1"]}]}},
        "Resources": {}}, local.STACK, {})
    assert resolve.condition("Both") is True
    assert resolve({"Fn::If": ["Both", {"Ref": "AWS::StackName"}, {"Ref": "Unknown"}]}) == (
        local.STACK)  # the branch not taken is not resolved
    with pytest.raises(local.LocalError, match="not in the template's Conditions"):
        resolve.condition("Missing")


def test_real_aws_settings_are_dropped_from_the_environment() -> None:
    env = local.aws_environment({
        "PATH": "/usr/bin", "AWS_PROFILE": "prod", "AWS_ACCESS_KEY_ID": "AKIAREAL",
        "AWS_SECRET_ACCESS_KEY": "real", "AWS_ENDPOINT_URL_DYNAMODB": "https://real.example",
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"}, "http://127.0.0.1:1")
    assert env["PATH"] == "/usr/bin"
    assert {k: v for k, v in env.items() if k.startswith("AWS_")} == {
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing", "AWS_REGION": local.REGION,
        "AWS_DEFAULT_REGION": local.REGION, "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled", "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull, "AWS_EC2_METADATA_DISABLED": "true"}


def test_the_api_gateway_event_round_trip() -> None:
    """The ASGI side of the local API Gateway: request → payload 2.0 event."""
    scope = {"type": "http", "method": "POST", "path": "/carts/c1/checkout",
             "query_string": b"a=1&b=2", "http_version": "1.1", "scheme": "http",
             "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"Idempotency-Key", b"k1"),
                         (b"cookie", b"a=1; b=2"), (b"x-multi", b"1"), (b"x-multi", b"2")]}
    event = local.ApiGateway.event(scope, b'{"x": 1}')
    assert event["rawPath"] == event["requestContext"]["http"]["path"] == "/carts/c1/checkout"
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["rawQueryString"] == "a=1&b=2"
    assert event["headers"]["idempotency-key"] == "k1"
    assert event["headers"]["x-multi"] == "1,2"
    assert event["cookies"] == ["a=1", "b=2"]
    assert (event["body"], event["isBase64Encoded"]) == ('{"x": 1}', False)
    binary = local.ApiGateway.event(scope, b"\xff\x00")
    assert binary["isBase64Encoded"] is True and binary["body"] == "/wA="


def test_the_stream_worker_retries_a_failing_record_then_drops_it_and_goes_on(
        caplog: pytest.LogCaptureFixture) -> None:
    """The local event source mapping: a batch that raises or reports a failed record is
    retried from that record, up to MaximumRetryAttempts, then the record is dropped and
    the stream goes on; records the template's FilterCriteria reject invoke nothing."""
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    stop = threading.Event()
    try:
        endpoint = "http://{}:{}".format(*moto.get_host_and_port())
        plan = local.plan(local.load_template(TEMPLATE), admin_token="adm_x")
        ddb = local._client("dynamodb", endpoint)
        table, props = plan.tables["Table"]
        local.create_table(ddb, table, props)
        mapping = plan.function("DynamoDB")
        fn = local.Function(mapping.logical, mapping.name, mapping.handler, 128, 3, {
            **mapping.event, "MaximumRetryAttempts": 1, "MaximumBatchingWindowInSeconds": 0.1})
        calls: list[list[str]] = []

        class Container:
            def invoke(self, fn: Any, event: dict[str, Any]) -> dict[str, Any]:
                calls.append([r["dynamodb"]["Keys"]["pk"]["S"] for r in event["Records"]])
                if len(calls) == 1:
                    raise RuntimeError("the worker function crashed")
                bad = [r["dynamodb"]["SequenceNumber"] for r in event["Records"]
                       if r["dynamodb"]["Keys"]["pk"]["S"] == "EV#bad"]
                return {"batchItemFailures": [{"itemIdentifier": s} for s in bad]}

        local.log.addHandler(caplog.handler)
        worker = local.StreamWorker(Container(), fn, endpoint, table, stop)  # type: ignore[arg-type]
        for pk, sk in (("EV#bad", "EV"), ("C#cart", "C"), ("EV#good", "EV")):
            ddb.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}})
        worker.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(calls) < 3:
            time.sleep(0.05)
        stop.set()
        worker.join(10)
        assert not worker.is_alive()
    finally:
        stop.set()
        local.log.removeHandler(caplog.handler)
        moto.stop()
    filtered = bool(mapping.event.get("FilterCriteria"))
    first = ["EV#bad", "EV#good"] if filtered else ["EV#bad", "C#cart", "EV#good"]
    assert calls[:3] == [first, first, first[1:]]
    text = caplog.text
    assert "the worker function failed on a batch" in text and "crashed" in text
    assert "retry 1/1 from record" in text and "failed 2 times; dropped" in text
