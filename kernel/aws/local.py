"""``niaga serve --aws-local``: the serverless shape of ``infra/template.yaml`` in one
process, on moto's server instead of AWS.

What runs, all read from the template rather than restated here:

* moto's server (``ThreadedMotoServer``) on a loopback port, with every
  ``AWS::DynamoDB::Table``, ``AWS::SSM::Parameter`` and ``AWS::Events::EventBus`` of the
  template created from its ``Properties`` (named as a stack called ``niaga-local`` would
  name them: ``!Sub ${AWS::StackName}-events``, tables ``<stack>-<logical id>``), unless
  its ``Condition`` is false for the template parameters' defaults (``serve`` takes no
  parameters: ``MerchantMarketsParameter`` is empty, so ``/niaga-local/markets`` is made
  with the demo markets, and ``--markets`` puts a file in it);
* the functions' environment (``Globals`` and each function's ``Environment``), resolved,
  plus ``NIAGA_DYNAMODB_ENDPOINT``: the handlers read their settings exactly as on Lambda;
* the function with the ``HttpApi`` event behind uvicorn: each HTTP request becomes an API
  Gateway HTTP API (payload 2.0) event for its ``Handler`` (``kernel.aws.api.handler``:
  Mangum, Powertools Idempotency on the idempotency table, metrics);
* the function with the ``DynamoDB`` event fed the table's stream as its event source
  mapping would (``StartingPosition``, ``BatchSize``, ``FilterCriteria``,
  ``MaximumBatchingWindowInSeconds`` as the poll interval, ``MaximumRetryAttempts`` for
  partial batch failures);
* the function with the ``Schedule`` event every 60 s (``NIAGA_SWEEP_EVERY`` seconds; the
  template's schedule is for AWS).

The three handlers share one "container" thread, so they run one invocation at a time, as
one warm Lambda container would (this also keeps moto's unlocked transactions safe).

Nothing reaches AWS: every ``AWS_*`` variable of the environment is dropped and replaced by
test credentials, a region and ``AWS_ENDPOINT_URL`` (which boto3, and so Powertools
Parameters and Idempotency, honour) pointing at moto; startup refuses to go on unless every
client the kernel makes resolves to that endpoint. moto keeps everything in memory: stopping
the process ends the data. moto has no TTL sweeper, so items never expire by ``ttl`` here.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import importlib
import json
import logging
import os
import re
import secrets
import signal
import sys
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STACK = "niaga-local"
REGION = "us-east-1"
ACCOUNT = "123456789012"  # moto's default account
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                    "AWS_SESSION_TOKEN": "testing"}
SWEEP_EVERY_S = 60.0
PIP_HINT = ('pip install -e ".[test]"  (in a checkout; or: pip install "moto[server]>=5" '
            '"mangum>=0.17" "aws-lambda-powertools>=3")')

log = logging.getLogger("niaga.aws.local")


class LocalError(Exception):
    """A problem that stops ``--aws-local`` before it serves; the message says what to do."""


def default_template() -> Path:
    """``infra/template.yaml`` of a source checkout (an installed package has no infra/)."""
    return Path(__file__).resolve().parents[2] / "infra" / "template.yaml"


# -- the template ---------------------------------------------------------------------------

def load_template(path: Path) -> dict[str, Any]:
    """The template as data; CloudFormation's short tags become their long form
    (``!Ref X`` → ``{"Ref": "X"}``, ``!GetAtt A.B`` → ``{"Fn::GetAtt": ["A", "B"]}``, …)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def short_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
        if suffix == "GetAtt" and isinstance(value, str):
            value = value.split(".", 1)
        return {"Ref" if suffix == "Ref" else f"Fn::{suffix}": value}

    Loader.add_multi_constructor("!", short_tag)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=Loader)
    except (OSError, yaml.YAMLError) as exc:
        raise LocalError(f"{path}: cannot read the template: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("Resources"), dict):
        raise LocalError(f"{path}: not a CloudFormation template (no Resources)")
    return data


class Resolver:
    """``Ref``, ``Fn::GetAtt``, ``Fn::Sub`` and ``Fn::If`` over what a local stack knows:
    pseudo parameters, template parameters (their defaults, or the values given), the
    template's ``Conditions`` (``Fn::Equals``, ``Fn::Not``, ``Fn::And``, ``Fn::Or``,
    ``Condition``) and the names of the resources it creates."""

    def __init__(self, template: dict[str, Any], stack: str,
                 parameters: dict[str, str]) -> None:
        self.refs: dict[str, str] = {
            "AWS::StackName": stack, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
            "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
        for name, spec in (template.get("Parameters") or {}).items():
            if name in parameters:
                self.refs[name] = parameters[name]
            elif isinstance(spec, dict) and "Default" in spec:
                self.refs[name] = str(spec["Default"])
        self.attrs: dict[str, str] = {}
        self._conditions: dict[str, Any] = dict(template.get("Conditions") or {})
        self._decided: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        """The value of the template's condition ``name``, for these parameters (so
        ``MarketsParameter`` is made only while ``MerchantMarketsParameter`` is empty, its
        default, as CloudFormation would)."""
        if name not in self._decided:
            if name not in self._conditions:
                raise LocalError(f"condition {name!r}: not in the template's Conditions")
            self._decided[name] = self._truth(self._conditions[name], name)
        return self._decided[name]

    def _truth(self, expr: Any, where: str) -> bool:
        if isinstance(expr, dict) and len(expr) == 1:
            ((key, arg),) = expr.items()
            if key == "Condition":
                return self.condition(str(arg))
            if key == "Fn::Equals":
                left, right = (str(self(v)) for v in arg)
                return left == right
            if key == "Fn::Not":
                return not self._truth(arg[0], where)
            if key == "Fn::And":
                return all(self._truth(v, where) for v in arg)
            if key == "Fn::Or":
                return any(self._truth(v, where) for v in arg)
        raise LocalError(f"condition {where!r}: {expr!r} is not evaluated by --aws-local "
                         "(kernel/aws/local.py: Resolver)")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._lookup(arg, f"!Ref {arg}")
            if key == "Fn::GetAtt":
                name = ".".join(arg) if isinstance(arg, list) else str(arg)
                return self._lookup(name, f"!GetAtt {name}")
            if key == "Fn::Sub":
                text, extra = (arg, {}) if isinstance(arg, str) else (arg[0], self(arg[1]))
                return self._sub(text, extra)
            if key == "Fn::If":  # only the branch taken is resolved
                name, when_true, when_false = arg
                return self(when_true if self.condition(str(name)) else when_false)
            if key.startswith("Fn::"):
                raise LocalError(f"{key} is not resolved by --aws-local "
                                 "(kernel/aws/local.py: Resolver)")
        return {k: self(v) for k, v in value.items()}

    def _lookup(self, name: str, what: str) -> str:
        if name in self.refs:
            return self.refs[name]
        if name in self.attrs:
            return self.attrs[name]
        raise LocalError(f"{what}: not known to a local stack (only the tables, parameters "
                         "and buses it creates, template parameters and pseudo parameters)")

    def _sub(self, text: str, extra: dict[str, Any]) -> str:
        def one(m: re.Match[str]) -> str:
            name = m.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            return str(extra[name]) if name in extra else self._lookup(name, f"${{{name}}}")

        return re.sub(r"\$\{([^}]+)\}", one, text)


@dataclass
class Function:
    """An ``AWS::Serverless::Function``: its handler, limits and (the first) event."""

    logical: str
    name: str
    handler: str
    memory_mb: int
    timeout_s: int
    event: dict[str, Any]

    def load(self) -> Callable[[dict[str, Any], Any], Any]:
        module, _, attr = self.handler.rpartition(".")
        return getattr(importlib.import_module(module), attr)

    def context(self) -> LambdaContext:
        return LambdaContext(self.name, self.memory_mb, self.timeout_s)


@dataclass
class Plan:
    """What the template asks for, resolved for a local stack."""

    stack: str
    tables: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)
    buses: dict[str, dict[str, Any]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    functions: dict[str, Function] = field(default_factory=dict)  # by event type

    def function(self, event_type: str) -> Function:
        if event_type not in self.functions:
            raise LocalError(f"the template has no function with a {event_type} event")
        return self.functions[event_type]


# the resources --aws-local creates, and the property naming each one's physical name
CREATED = {"AWS::DynamoDB::Table": "TableName", "AWS::SSM::Parameter": "Name",
           "AWS::Events::EventBus": "Name"}


def plan(template: dict[str, Any], *, admin_token: str, stack: str = STACK,
         parameters: dict[str, str] | None = None) -> Plan:
    """The local stack: ``parameters`` are template parameter values (the others keep
    their defaults, as ``niaga serve --aws-local`` always does). A resource whose
    ``Condition`` is false for them is not made."""
    resources: dict[str, Any] = template["Resources"]
    resolve = Resolver(template, stack, {**(parameters or {}), "AdminToken": admin_token})
    out = Plan(stack)
    for logical, res in resources.items():
        kind = res.get("Type")
        if kind not in CREATED:
            continue
        if "Condition" in res and not resolve.condition(str(res["Condition"])):
            continue
        props = dict(res.get("Properties") or {})
        name_prop = CREATED[kind]
        name = resolve(props.pop(name_prop)) if name_prop in props else f"{stack}-{logical}"
        props = resolve(props)
        resolve.refs[logical] = name
        if kind == "AWS::DynamoDB::Table":
            out.tables[logical] = (name, props)
            resolve.attrs[f"{logical}.Arn"] = (
                f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}")
        elif kind == "AWS::SSM::Parameter":
            out.parameters[name] = props
        else:
            out.buses[name] = props
            resolve.attrs[f"{logical}.Name"] = name
            resolve.attrs[f"{logical}.Arn"] = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}"

    defaults = (template.get("Globals") or {}).get("Function") or {}
    env: dict[str, Any] = dict((defaults.get("Environment") or {}).get("Variables") or {})
    for logical, res in resources.items():
        if res.get("Type") != "AWS::Serverless::Function":
            continue
        props = res.get("Properties") or {}
        env.update((props.get("Environment") or {}).get("Variables") or {})
        for event in (props.get("Events") or {}).values():
            fn = Function(logical, f"{stack}-{logical}",
                          str(props.get("Handler") or defaults.get("Handler")),
                          int(props.get("MemorySize") or defaults.get("MemorySize") or 128),
                          int(props.get("Timeout") or defaults.get("Timeout") or 3),
                          event.get("Properties") or {})
            out.functions.setdefault(str(event.get("Type")), fn)
    out.env = {k: str(resolve(v)) for k, v in env.items()}
    return out


# -- creating the resources on moto ---------------------------------------------------------

TABLE_API = ("AttributeDefinitions", "KeySchema", "BillingMode", "GlobalSecondaryIndexes",
             "LocalSecondaryIndexes", "ProvisionedThroughput", "TableClass",
             "DeletionProtectionEnabled")


def _unknown(what: str, props: dict[str, Any], known: set[str]) -> None:
    extra = sorted(set(props) - known)
    if extra:
        raise LocalError(f"{what}: --aws-local does not apply {', '.join(extra)}; "
                         "teach kernel/aws/local.py (so the local shape keeps the template's)")


def create_table(ddb: Any, name: str, props: dict[str, Any]) -> None:
    """``CreateTable`` + ``UpdateTimeToLive`` + ``UpdateContinuousBackups`` from the
    CloudFormation properties (whose shapes differ from the API's in a few places)."""
    _unknown(f"table {name}", props, {*TABLE_API, "StreamSpecification", "SSESpecification",
                                      "TimeToLiveSpecification",
                                      "PointInTimeRecoverySpecification", "Tags"})
    args: dict[str, Any] = {k: props[k] for k in TABLE_API if k in props}
    if "StreamSpecification" in props:
        args["StreamSpecification"] = {
            "StreamEnabled": True,
            "StreamViewType": props["StreamSpecification"]["StreamViewType"]}
    if "SSESpecification" in props:
        sse = props["SSESpecification"]
        args["SSESpecification"] = {"Enabled": bool(sse.get("SSEEnabled")),
                                    **{k: sse[k] for k in ("SSEType", "KMSMasterKeyId")
                                       if k in sse}}
    if "Tags" in props:
        args["Tags"] = props["Tags"]
    ddb.create_table(TableName=name, **args)
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.1})
    if "TimeToLiveSpecification" in props:
        ddb.update_time_to_live(TableName=name,
                                TimeToLiveSpecification=props["TimeToLiveSpecification"])
    if "PointInTimeRecoverySpecification" in props:
        ddb.update_continuous_backups(
            TableName=name,
            PointInTimeRecoverySpecification=props["PointInTimeRecoverySpecification"])


def create_parameter(ssm: Any, name: str, props: dict[str, Any]) -> None:
    api = {"Type", "Value", "Tier", "Description", "AllowedPattern", "DataType"}
    _unknown(f"parameter {name}", props, api)
    ssm.put_parameter(Name=name, **props)


def create_bus(events: Any, name: str, props: dict[str, Any]) -> None:
    api = {"EventSourceName", "Description", "KmsKeyIdentifier", "DeadLetterConfig"}
    _unknown(f"event bus {name}", props, api)
    events.create_event_bus(Name=name, **props)


# -- the process environment ----------------------------------------------------------------

def aws_environment(environ: dict[str, str], endpoint: str) -> dict[str, str]:
    """``environ`` with every ``AWS_*`` variable (profiles, real keys, per-service endpoints,
    config files) replaced by test credentials and the moto endpoint."""
    env = {k: v for k, v in environ.items() if not k.startswith("AWS_")}
    env.update(FAKE_CREDENTIALS, AWS_REGION=REGION, AWS_DEFAULT_REGION=REGION,
               AWS_ENDPOINT_URL=endpoint, AWS_ACCOUNT_ID_ENDPOINT_MODE="disabled",
               AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_EC2_METADATA_DISABLED="true")
    return env


def _check_endpoints(endpoint: str) -> None:
    import boto3

    boto3.DEFAULT_SESSION = None
    for service in ("dynamodb", "dynamodbstreams", "ssm", "events"):
        url = boto3.client(service).meta.endpoint_url
        if url.rstrip("/") != endpoint:
            raise LocalError(f"a {service} client would reach {url}, not moto; refusing to start")


def _client(service: str, endpoint: str) -> Any:
    import boto3

    return boto3.client(service, endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        aws_session_token="testing")


# -- Lambda, locally ------------------------------------------------------------------------

class LambdaContext:
    """The parts of a Lambda context the handlers (and Powertools) read."""

    def __init__(self, function: str, memory_mb: int, timeout_s: int) -> None:
        self.function_name = function
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


class Container:
    """One warm container: every invocation runs on its one thread, one at a time."""

    def __init__(self, functions: list[Function]) -> None:
        self._handlers = {fn.handler: fn.load() for fn in functions}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lambda")
        # Powertools prints its own JSON lines; passed on to the root logger (which Litestar
        # configures) each would be printed a second time
        from aws_lambda_powertools import Logger

        for fn in functions:
            module = importlib.import_module(fn.handler.rpartition(".")[0])
            for value in vars(module).values():
                if isinstance(value, Logger):
                    logging.getLogger(value.name).propagate = False

    def invoke(self, fn: Function, event: dict[str, Any]) -> Any:
        return self.submit(fn, event).result()

    def submit(self, fn: Function, event: dict[str, Any]) -> Any:
        return self._pool.submit(self._handlers[fn.handler], event, fn.context())

    def close(self) -> None:
        self._pool.shutdown(wait=True)


class ApiGateway:
    """ASGI app in front of the API function: each request as an API Gateway HTTP API
    (payload format 2.0) event, the function's answer as the response."""

    def __init__(self, container: Container, fn: Function) -> None:
        self.container = container
        self.fn = fn

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        event = self.event(scope, body)
        future = self.container.submit(self.fn, event)
        try:
            out = await asyncio.wrap_future(future)
        except Exception:
            log.exception("the API function failed (%s %s)", scope["method"], scope["path"])
            out = {"statusCode": 502, "headers": {"content-type": "application/json"},
                   "body": '{"message":"Internal Server Error"}'}
        await self.respond(out, send)

    @staticmethod
    def event(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
        headers: dict[str, str] = {}
        cookies: list[str] = []
        for raw_key, raw_value in scope["headers"]:
            key, value = raw_key.decode("latin-1").lower(), raw_value.decode("latin-1")
            if key == "cookie":
                cookies += [c.strip() for c in value.split(";") if c.strip()]
            else:
                headers[key] = f"{headers[key]},{value}" if key in headers else value
        client = (scope.get("client") or ("127.0.0.1", 0))[0]
        server = scope.get("server") or ("127.0.0.1", 80)
        headers.setdefault("x-forwarded-for", client)
        headers.setdefault("x-forwarded-proto", scope.get("scheme", "http"))
        headers.setdefault("x-forwarded-port", str(server[1]))
        try:
            text, encoded = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode(), True
        now = time.time()
        request_id = uuid.uuid4().hex
        event: dict[str, Any] = {
            "version": "2.0", "routeKey": "$default", "rawPath": scope["path"],
            "rawQueryString": scope.get("query_string", b"").decode("latin-1"),
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT, "apiId": "local", "domainName": headers.get("host", ""),
                "domainPrefix": "local", "requestId": request_id, "routeKey": "$default",
                "stage": "$default", "timeEpoch": int(now * 1000),
                "time": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "http": {"method": scope["method"], "path": scope["path"],
                         "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
                         "sourceIp": client, "userAgent": headers.get("user-agent", "")},
            },
            "isBase64Encoded": encoded,
        }
        if body:
            event["body"] = text
        if cookies:
            event["cookies"] = cookies
        return event

    @staticmethod
    async def respond(out: dict[str, Any], send: Any) -> None:
        headers = [(k.lower().encode("latin-1"), str(v).encode("latin-1"))
                   for k, v in (out.get("headers") or {}).items()]
        for key, values in (out.get("multiValueHeaders") or {}).items():
            headers += [(key.lower().encode("latin-1"), str(v).encode("latin-1"))
                        for v in values]
        headers += [(b"set-cookie", c.encode("latin-1")) for c in out.get("cookies") or []]
        raw = out.get("body") or ""
        body = base64.b64decode(raw) if out.get("isBase64Encoded") else str(raw).encode()
        await send({"type": "http.response.start", "status": int(out.get("statusCode", 200)),
                    "headers": headers})
        await send({"type": "http.response.body", "body": body})


def as_lambda_json(value: Any) -> Any:
    """A boto3 stream record as Lambda delivers it: binary as base64, times as epoch."""
    if isinstance(value, dict):
        return {k: as_lambda_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_lambda_json(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, dt.datetime):
        return int(value.timestamp())
    return value


class StreamWorker(threading.Thread):
    """The event source mapping: polls the table's stream and invokes the worker function
    with each batch of the records its ``FilterCriteria`` pass (matched with moto's
    EventBridge pattern matcher; the rest cost no invocation); on a partial batch failure
    it retries from the first failed record, up to ``MaximumRetryAttempts`` times, then logs
    the record as dropped (on AWS it would go to the dead-letter queue) and moves on.
    Errors are logged; the thread goes on."""

    def __init__(self, container: Container, fn: Function, endpoint: str, table: str,
                 stop: threading.Event) -> None:
        super().__init__(name="stream-worker", daemon=True)
        self.container, self.fn, self.stop = container, fn, stop
        props = fn.event
        self.batch = int(props.get("BatchSize", 100))
        self.wait_s = float(props.get("MaximumBatchingWindowInSeconds") or 1)
        self.retries = int(props.get("MaximumRetryAttempts", 10))
        self.filters = _filters(props)
        self.streams = _client("dynamodbstreams", endpoint)
        self.arn = _client("dynamodb", endpoint).describe_table(
            TableName=table)["Table"]["LatestStreamArn"]
        self.shard = self.streams.describe_stream(
            StreamArn=self.arn)["StreamDescription"]["Shards"][0]["ShardId"]
        # taken now, before anything is written: like a mapping made with the stack
        self.iterator: str | None = self._iterator(str(props.get("StartingPosition", "LATEST")))
        self.position: str | None = None  # the last record handled (or given up)

    def _iterator(self, kind: str, sequence: str | None = None) -> str:
        args = {"SequenceNumber": sequence} if sequence else {}
        return self.streams.get_shard_iterator(StreamArn=self.arn, ShardId=self.shard,
                                               ShardIteratorType=kind, **args)["ShardIterator"]

    def run(self) -> None:
        attempts: dict[str, int] = {}
        pause = self.wait_s
        while not self.stop.is_set():
            try:
                if self.iterator is None:
                    self.iterator = (self._iterator("AFTER_SEQUENCE_NUMBER", self.position)
                                     if self.position else self._iterator("TRIM_HORIZON"))
                out = self.streams.get_records(ShardIterator=self.iterator, Limit=self.batch)
                records = out.get("Records", [])
                if not records:
                    self.iterator = out.get("NextShardIterator")
                    self.stop.wait(self.wait_s)
                    continue
                shaped = [{**as_lambda_json(r), "eventSourceARN": self.arn} for r in records]
                passed = [r for r in shaped
                          if not self.filters or any(f.matches_event(r) for f in self.filters)]
                failed = self.deliver(passed) if passed else None
                if failed is None:
                    self.iterator = out.get("NextShardIterator")
                    self.position = records[-1]["dynamodb"]["SequenceNumber"]
                    attempts.clear()
                    pause = self.wait_s
                    continue
                attempts[failed] = attempts.get(failed, 0) + 1
                if attempts[failed] > self.retries:
                    log.error("stream worker: record %s failed %d times; dropped (on AWS it "
                              "would go to the dead-letter queue)", failed, attempts[failed])
                    self.iterator = self._iterator("AFTER_SEQUENCE_NUMBER", failed)
                    self.position = failed
                    continue
                log.warning("stream worker: retry %d/%d from record %s", attempts[failed],
                            self.retries, failed)
                self.iterator = self._iterator("AT_SEQUENCE_NUMBER", failed)
                self.stop.wait(min(2 ** (attempts[failed] - 1), 30))
            except Exception as exc:
                log.exception("stream worker: polling failed; going on")
                if "ExpiredIterator" in type(exc).__name__ or "Trimmed" in type(exc).__name__:
                    self.iterator = None
                self.stop.wait(pause)
                pause = min(pause * 2, 30)

    def deliver(self, records: list[dict[str, Any]]) -> str | None:
        """Invoke the worker with one batch; the first failed record's sequence number."""
        try:
            result = self.container.invoke(self.fn, {"Records": records}) or {}
        except Exception:
            log.exception("stream worker: the worker function failed on a batch of %d",
                          len(records))
            return str(records[0]["dynamodb"]["SequenceNumber"])
        failures = [str(f["itemIdentifier"]) for f in result.get("batchItemFailures") or []]
        return min(failures, key=int) if failures else None


def _filters(props: dict[str, Any]) -> list[Any]:
    """The mapping's ``FilterCriteria`` patterns (none: every record passes)."""
    from moto.events.models import EventPattern

    raw = [f["Pattern"] for f in ((props.get("FilterCriteria") or {}).get("Filters") or [])]
    return [EventPattern(p, json.loads(p)) for p in raw]


class Schedule(threading.Thread):
    """Invokes a function every ``every_s`` seconds; errors are logged, the schedule goes on."""

    def __init__(self, container: Container, fn: Function, every_s: float,
                 stop: threading.Event) -> None:
        super().__init__(name="schedule", daemon=True)
        self.container, self.fn, self.every_s, self.stop = container, fn, every_s, stop

    def run(self) -> None:
        while not self.stop.wait(self.every_s):
            try:
                self.container.invoke(self.fn, {"source": "aws.events",
                                                "detail-type": "Scheduled Event"})
            except Exception:
                log.exception("%s failed; next run in %s s", self.fn.logical, self.every_s)


# -- serve ----------------------------------------------------------------------------------

def _imports() -> None:
    try:
        import aws_lambda_powertools  # noqa: F401
        import mangum  # noqa: F401
        import moto.server  # noqa: F401
        import uvicorn  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as exc:
        raise LocalError(f"--aws-local needs moto's server and the aws extras ({exc}); "
                         f"install them with: {PIP_HINT}") from exc


def _setup_logging(level: str) -> None:
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("niaga: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    # moto's server logs every request through werkzeug's logger (the stream is polled);
    # Mangum logs each request at INFO: an access log, shown from --log-level info down
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("botocore").setLevel(logging.WARNING)  # "found credentials in …"
    number = logging.getLevelName(level.upper())  # uvicorn's "trace" is not a logging level
    logging.getLogger("mangum").setLevel(number if isinstance(number, int) else logging.DEBUG)


def serve(*, host: str, port: int, template: str | None, markets: str | None, demo: bool,
          log_level: str) -> int:
    """Run the local AWS shape until interrupted. Returns the exit status."""
    from kernel.errors import ConfigError

    try:
        _imports()
        path = Path(template) if template else default_template()
        if not path.is_file():
            raise LocalError(
                f"--aws-local creates the resources infra/template.yaml defines, and there is "
                f"no template at {path}" + ("" if template else
                                            " (an installed package has no infra/)")
                + ": pass --template PATH")
        token = os.environ.get("NIAGA_ADMIN_TOKEN")
        generated = not token
        token = token or "adm_" + secrets.token_urlsafe(24)
        the_plan = plan(load_template(path), admin_token=token)
        markets_text = Path(markets).read_text(encoding="utf-8") if markets else None
    except (LocalError, OSError) as exc:
        print(f"niaga: {exc}", file=sys.stderr)
        return 2
    _setup_logging(log_level)
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)  # a free port
    moto.start()
    endpoint = "http://{}:{}".format(*moto.get_host_and_port())
    stop = threading.Event()
    container: Container | None = None
    threads: list[threading.Thread] = []
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again: make
    # SIGTERM a KeyboardInterrupt too, so both end here with the threads and moto stopped
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    try:
        api, stream_fn, schedule_fn = (the_plan.function(kind)
                                       for kind in ("HttpApi", "DynamoDB", "Schedule"))
        try:
            settings = _provision(the_plan, endpoint, markets_text)
            container = Container([api, stream_fn, schedule_fn])  # imported in this env
            # the stream position is taken before the demo data is written, as a mapping
            # deployed with the stack would see every write after it
            worker = StreamWorker(container, stream_fn, endpoint, settings.table, stop)
            seeded = asyncio.run(_seed(settings, demo))
        except ConfigError as exc:
            print("niaga: cannot start:", *exc.problems, sep="\n  ", file=sys.stderr)
            return 1
        except LocalError as exc:
            print(f"niaga: {exc}", file=sys.stderr)
            return 2
        every = float(os.environ.get("NIAGA_SWEEP_EVERY") or SWEEP_EVERY_S)
        threads = [worker, Schedule(container, schedule_fn, every, stop)]
        for t in threads:
            t.start()
        _banner(the_plan, endpoint, settings.table, seeded, token if generated else None,
                worker, every, host, port)
        import uvicorn

        uvicorn.run(ApiGateway(container, api), host=host, port=port, log_level=log_level,
                    access_log=False, lifespan="off")
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
        if container is not None:
            container.close()
        moto.stop()
        if main:
            signal.signal(signal.SIGTERM, previous)
        if threads:
            print("niaga: stopped the stream worker, the sweeper and moto", flush=True)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _provision(the_plan: Plan, endpoint: str, markets_text: str | None) -> Any:
    """Point the process at moto and create the template's resources; the functions'
    :class:`~kernel.aws.config.Settings`."""
    env = aws_environment(dict(os.environ), endpoint)
    for key in [k for k in os.environ if k not in env]:
        del os.environ[key]
    os.environ.update(env)
    os.environ.update(the_plan.env)
    os.environ.pop("NIAGA_ADMIN_TOKEN_PARAM", None)
    os.environ["NIAGA_DYNAMODB_ENDPOINT"] = endpoint
    _check_endpoints(endpoint)

    ddb, ssm, events = (_client(s, endpoint) for s in ("dynamodb", "ssm", "events"))
    for name, props in the_plan.tables.values():
        create_table(ddb, name, props)
    for name, props in the_plan.parameters.items():
        create_parameter(ssm, name, props)
    for name, props in the_plan.buses.items():
        create_bus(events, name, props)

    from kernel.aws import config

    settings = config.Settings.from_env()
    if markets_text is not None:
        if not settings.markets_param:
            raise LocalError("--markets: the template gives the functions no NIAGA_MARKETS_PARAM")
        from kernel.markets import parse_markets

        try:
            parse_markets(tomllib.loads(markets_text))
        except tomllib.TOMLDecodeError as exc:
            raise LocalError(f"--markets: not valid TOML: {exc}") from exc
        ssm.put_parameter(Name=settings.markets_param, Value=markets_text, Overwrite=True)
    if settings.table not in {name for name, _ in the_plan.tables.values()}:
        raise LocalError(f"NIAGA_TABLE {settings.table!r} is not a table of the template")
    return settings


async def _seed(settings: Any, demo: bool) -> dict[str, int] | None:
    from kernel.aws import config
    from kernel.demo import seed

    niaga = config.build_niaga(settings)
    await niaga.start()
    try:
        if demo and await niaga.store.is_empty():
            return await seed(niaga.store, niaga.markets, niaga.clock())
        return None
    finally:
        await niaga.close()
        config.reset()


def _banner(the_plan: Plan, endpoint: str, table: str, seeded: dict[str, int] | None,
            token: str | None, worker: StreamWorker, every: float, host: str, port: int) -> None:
    tables = ", ".join(name for name, _ in the_plan.tables.values())
    print(f"niaga: moto endpoint {endpoint} (in-process; test credentials, nothing reaches AWS)")
    print(f"niaga: from the template: tables {tables}; "
          f"parameters {', '.join(the_plan.parameters)}; buses {', '.join(the_plan.buses)}")
    print(f"niaga: store DynamoDB table {table}; markets from "
          f"{os.environ.get('NIAGA_MARKETS_PARAM')}")
    filters = f", {len(worker.filters)} filter patterns" if worker.filters else ""
    print(f"niaga: stream worker on {table}'s stream ({worker.fn.event.get('StartingPosition')}, "
          f"batches of {worker.batch}{filters}); sweeper every {every:g} s")
    if seeded:
        print(f"niaga: loaded demo data: {seeded['products']} products, "
              f"{seeded['locations']} locations, {seeded['stock_rows']} stock rows")
    if token:
        print(f"niaga: admin token (set NIAGA_ADMIN_TOKEN to choose one): {token}")
    print(f"niaga: AWS CLI / boto3: export AWS_ENDPOINT_URL={endpoint} AWS_ACCESS_KEY_ID=testing "
          f"AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION={REGION}")
    print(f"niaga:   e.g. aws dynamodb scan --endpoint-url {endpoint} --table-name {table} "
          "--select COUNT")
    print(f"niaga: API on http://{host}:{port}  (OpenAPI: /schema/openapi.json)", flush=True)

