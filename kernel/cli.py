"""The ``niaga`` command: serve the API, list plugins, check a markets file, sweep, report,
audit."""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
from pathlib import Path

DEFAULT_DB = "niaga.sqlite"


def _markets_path(value: str | None) -> Path:
    from kernel.markets import demo_markets_path

    return Path(value) if value else demo_markets_path()


def _db_url(value: str) -> str:
    if value.startswith(("postgres://", "postgresql://", "sqlite://")):
        return value
    return str(Path(value).expanduser().resolve())


def build(db: str, markets_file: str | None):
    """The composition root used by every command."""
    from kernel.markets import load_markets
    from kernel.runtime import Niaga
    from kernel.store.sql import SqlStore

    return Niaga(SqlStore(_db_url(db)), load_markets(_markets_path(markets_file)))


async def prepare(db: str, markets_file: str | None, demo: bool) -> dict[str, int] | None:
    """Create the schema and, in an empty store, load the demo catalog."""
    from kernel.demo import seed

    niaga = build(db, markets_file)
    await niaga.start()
    try:
        await niaga.store.create_schema()
        if demo and await niaga.store.is_empty():
            return await seed(niaga.store, niaga.markets, niaga.clock())
        return None
    finally:
        await niaga.close()


def app_from_env():
    """Factory for ``uvicorn --factory`` (several workers): settings come from the environment."""
    from kernel.api.app import create_app

    niaga = build(os.environ["NIAGA_DB"], os.environ.get("NIAGA_MARKETS") or None)
    return create_app(niaga, admin_token=os.environ["NIAGA_ADMIN_TOKEN"],
                      sweep_every_s=float(os.environ.get("NIAGA_SWEEP_EVERY", "30")),
                      cors=os.environ.get("NIAGA_CORS") == "1",
                      extra_route_handlers=_storefront_routes(
                          os.environ.get("NIAGA_STOREFRONT") or None))


def _storefront_routes(directory: str | None) -> list | None:
    """The example storefront's routes (``--storefront``); imported only when asked for."""
    if directory is None:
        return None
    from kernel.api.shop import storefront_routes

    return storefront_routes(Path(directory))


def _serve_workers(config) -> None:
    """What ``uvicorn.run(..., workers=N)`` does, plus TCP_NODELAY on the listening socket.

    uvicorn binds that socket with protocol 0, and asyncio sets TCP_NODELAY only on sockets
    whose protocol is IPPROTO_TCP, so every keep-alive response of a worker waited ~40 ms on
    Nagle + delayed ACK (``tests/bench/bench_postgres.py``). Accepted sockets inherit the
    option from the listener on Linux.
    """
    import contextlib
    import socket

    from uvicorn.supervisors import Multiprocess

    sock = config.bind_socket()
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with contextlib.suppress(KeyboardInterrupt):
        Multiprocess(config, sockets=[sock]).run()


def cmd_serve(args: argparse.Namespace) -> int:
    if args.aws_local:
        from kernel.aws.local import serve

        return serve(host=args.host, port=args.port, template=args.template,
                     markets=args.markets, demo=not args.no_demo, log_level=args.log_level)
    import uvicorn

    from kernel.errors import ConfigError

    args.db = args.db or DEFAULT_DB
    storefront = None
    if args.storefront is not None:
        from kernel.api.shop import StorefrontNotFound, resolve_dir

        try:
            storefront = str(resolve_dir(args.storefront))
        except StorefrontNotFound as exc:
            print(f"niaga: --storefront: {exc}", file=sys.stderr)
            return 1
    token = os.environ.get("NIAGA_ADMIN_TOKEN")
    generated = not token
    token = token or "adm_" + secrets.token_urlsafe(24)
    try:
        seeded = asyncio.run(prepare(args.db, args.markets, not args.no_demo))
        niaga = build(args.db, args.markets)
    except ConfigError as exc:
        print("niaga: cannot start:", *exc.problems, sep="\n  ", file=sys.stderr)
        return 1
    store = "PostgreSQL" if niaga.store.name == "postgresql" else f"SQLite {niaga.store.url}"
    print(f"niaga: store {store}; markets {', '.join(niaga.markets)}")
    if seeded:
        print(f"niaga: loaded demo data: {seeded['products']} products, "
              f"{seeded['locations']} locations, {seeded['stock_rows']} stock rows")
    if generated:
        print(f"niaga: admin token (set NIAGA_ADMIN_TOKEN to choose one): {token}")
    if storefront:
        print(f"niaga: storefront on http://{args.host}:{args.port}/shop/  ({storefront})")
    print(f"niaga: API on http://{args.host}:{args.port}  (OpenAPI: /schema/openapi.json)",
          flush=True)
    if args.workers > 1:
        os.environ.update(NIAGA_DB=_db_url(args.db), NIAGA_ADMIN_TOKEN=token,
                          NIAGA_MARKETS=str(_markets_path(args.markets)),
                          NIAGA_STOREFRONT=storefront or "")
        _serve_workers(uvicorn.Config(
            "kernel.cli:app_from_env", factory=True, host=args.host, port=args.port,
            workers=args.workers, log_level=args.log_level, access_log=False))
        return 0
    from kernel.api.app import create_app

    app = create_app(niaga, admin_token=token, sweep_every_s=30.0,
                     extra_route_handlers=_storefront_routes(storefront))
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                access_log=False)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    from kernel.plugins import Registry

    rows = [(i.name, i.version, i.family, ", ".join(h.removeprefix("niaga_") for h in i.hooks))
            for i in sorted(Registry().plugins.values(), key=lambda i: i.name)]
    _table(["plugin", "version", "family", "hooks"], rows)
    return 0


def cmd_markets_check(args: argparse.Namespace) -> int:
    from kernel.errors import ConfigError
    from kernel.markets import load_markets
    from kernel.plugins import Registry, build_market_plugins

    try:
        markets = load_markets(args.file)
        managers = build_market_plugins(markets, Registry())
    except ConfigError as exc:
        print(f"{args.file}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    rows = [(m.code, m.name, m.currency, ", ".join(m.locales),
             "incl." if m.prices_include_tax else "excl.", ", ".join(managers[c].names))
            for c, m in markets.items()]
    _table(["market", "name", "currency", "locales", "tax", "plugins"], rows)
    print(f"{args.file}: OK ({len(markets)} markets)")
    return 0


def cmd_markets_push(args: argparse.Namespace) -> int:
    from kernel.aws.ops import markets_push

    return markets_push(args.file, args.ssm_name)


def cmd_sweep(args: argparse.Namespace) -> int:
    from kernel.services.orders import sweep

    async def run() -> dict[str, int]:
        niaga = build(args.db, args.markets)
        await niaga.start()
        try:
            return await sweep(niaga)
        finally:
            await niaga.close()

    result = asyncio.run(run())
    print(f"expired {result['orders_expired']} unpaid order(s), "
          f"released {result['units_released']} unit(s) from abandoned checkouts")
    return 0


def cmd_report_sales(args: argparse.Namespace) -> int:
    """The figures of GET /admin/reports/sales as tables (kernel.services.reports)."""
    from datetime import UTC, datetime

    from kernel.errors import ValidationError
    from kernel.money import Money
    from kernel.services import reports

    try:
        since, until = reports.period(args.from_, args.to)
    except ValidationError as exc:
        err = exc.errors[0]
        print(f"niaga report sales: error: --{err['field']}: {err['message']}", file=sys.stderr)
        return 2
    url = _db_url(args.db)
    if not url.startswith(("postgres://", "postgresql://", "sqlite://")) and \
            not Path(url).exists():
        print(f"niaga report sales: no store at {url} (--db)", file=sys.stderr)
        return 1

    async def run() -> reports.SalesReport:
        niaga = build(args.db, args.markets)
        await niaga.start()
        try:
            return await reports.sales(niaga, since, until)
        finally:
            await niaga.close()

    report = asyncio.run(run())

    def when(ts: float | None, open_end: str) -> str:
        return datetime.fromtimestamp(ts, UTC).isoformat() if ts is not None else open_end

    print(f"Sales: orders created from {when(since, 'the start')} until "
          f"{when(until, 'now')} (exclusive); revenue net of refunds, per currency")
    if report.truncated:
        print("warning: the period could not be read completely; figures are partial",
              file=sys.stderr)
    money_cols = ["currency", "orders", "gross", "refunded", "revenue", "aov"]

    def figures(r: reports.SalesRow) -> tuple:
        return (r.currency, r.orders, Money(r.gross, r.currency).format_amount(),
                Money(r.refunded, r.currency).format_amount(), r.revenue.format_amount(),
                r.aov.format_amount())

    for title, keys, rows in (
            ("By channel", ["channel"], report.by_channel),
            ("By market", ["market"], report.by_market),
            ("By channel and market", ["channel", "market"], report.by_channel_market),
            ("Totals", [], report.totals)):
        print(f"\n{title}")
        _table([*keys, *money_cols],
               [(*(getattr(r, k) for k in keys), *figures(r)) for r in rows])
    c = report.customers

    def share(n: int) -> str:
        return f"{n / c.customers:.1%}" if c.customers else "-"

    print("\nCustomers (known customers with counted orders; guests count in sales only)")
    _table(["customers", "repeat", "repeat rate", "multichannel", "multichannel share",
            "guest orders", "cross-channel orders"],
           [(c.customers, c.repeat_customers, share(c.repeat_customers),
             c.multichannel_customers, share(c.multichannel_customers), c.guest_orders,
             report.cross_channel_orders)])
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    """Recompute orders and stock from history (kernel.services.audit); 1 if anything differs."""
    from kernel.services.audit import audit

    url = _db_url(args.db)
    if not url.startswith(("postgres://", "postgresql://", "sqlite://")) and \
            not Path(url).exists():
        print(f"niaga audit: no store at {url} (--db)", file=sys.stderr)
        return 2

    async def run():
        niaga = build(args.db, args.markets)
        await niaga.start()
        try:
            return await audit(niaga, progress=lambda msg: print(msg, file=sys.stderr,
                                                                 flush=True))
        finally:
            await niaga.close()

    report = asyncio.run(run())
    print(f"Audit of {report.store}: {report.orders} orders, {report.stock_rows} stock rows")
    print("recomputed: " + "; ".join(report.checks))
    if not report.discrepancies:
        print("no discrepancies")
        return 0
    print(f"\n{len(report.discrepancies)} discrepancies")
    _table(["kind", "subject", "detail"],
           [(d.kind, d.subject, d.detail) for d in report.discrepancies])
    return 1


def cmd_demo(args: argparse.Namespace) -> int:
    from kernel.journey import run

    run(db=args.db)
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    """The API's OpenAPI document as JSON, keys sorted: the same on every run and machine."""
    import json

    from kernel.api.openapi import openapi_document

    text = json.dumps(openapi_document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(f"niaga openapi: wrote {args.out}", file=sys.stderr)
    else:  # UTF-8 whatever the terminal's encoding, as the file is
        sys.stdout.flush()
        sys.stdout.buffer.write(text.encode("utf-8"))
        sys.stdout.buffer.flush()
    return 0


def _table(headers: list[str], rows: list[tuple]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths)
    print(line.format(*headers))
    print(line.format(*("-" * w for w in widths)))
    for row in rows:
        print(line.format(*row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="niaga", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--db", help="SQLite file (default ./niaga.sqlite) or postgresql://… URL")
    serve.add_argument("--markets", help="markets TOML file (default: the demo markets; "
                       "with --aws-local it goes into the markets SSM parameter)")
    serve.add_argument("--no-demo", action="store_true", help="do not load demo data")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument("--log-level", default="warning")
    serve.add_argument("--aws-local", action="store_true",
                       help="the serverless shape on moto's server, in this process: the "
                       "template's tables, parameter and bus, the API, stream worker and "
                       "sweeper handlers (README: Run the AWS shape locally)")
    serve.add_argument("--template", help="with --aws-local: the SAM template "
                       "(default: infra/template.yaml of the source checkout)")
    serve.add_argument("--storefront", nargs="?", const="", metavar="DIR",
                       help="also serve the example storefront (static files) at /shop/, "
                       "and redirect / there; DIR defaults to examples/storefront of the "
                       "source checkout, else of the current directory "
                       "(examples/storefront/README.md)")
    serve.set_defaults(func=cmd_serve)

    plugins = sub.add_parser("plugins", help="list installed plugins")
    plugins.set_defaults(func=cmd_plugins)

    markets = sub.add_parser("markets", help="markets files")
    msub = markets.add_subparsers(dest="markets_command", required=True)
    check = msub.add_parser("check", help="validate a markets file and its plugin settings")
    check.add_argument("file")
    check.set_defaults(func=cmd_markets_check)
    push = msub.add_parser("push", help="check a markets file, then put it in the SSM "
                           "parameter the AWS functions read (docs/operating-aws.md)")
    push.add_argument("file")
    push.add_argument("--ssm-name", required=True, metavar="NAME",
                      help="the SSM parameter the stack's MerchantMarketsParameter names, "
                      "e.g. /<stack>/my-markets (its MarketsParameterName output)")
    push.set_defaults(func=cmd_markets_push)

    sweep = sub.add_parser("sweep", help="expire unpaid orders and release abandoned stock once")
    sweep.add_argument("--db", default="niaga.sqlite")
    sweep.add_argument("--markets")
    sweep.set_defaults(func=cmd_sweep)

    report = sub.add_parser("report", help="reports from the store")
    rsub = report.add_subparsers(dest="report_command", required=True)
    sales = rsub.add_parser("sales", help="orders, revenue and AOV per channel and market, "
                            "multichannel and repeat customers, over [--from, --to)")
    sales.add_argument("--from", dest="from_", metavar="DATE",
                       help="ISO 8601 date or date-time, inclusive (no offset: UTC)")
    sales.add_argument("--to", metavar="DATE", help="ISO 8601 date or date-time, exclusive")
    sales.add_argument("--db", default=DEFAULT_DB,
                       help="SQLite file (default ./niaga.sqlite) or postgresql://… URL")
    sales.add_argument("--markets", help="markets TOML file (default: the demo markets)")
    sales.set_defaults(func=cmd_report_sales)

    audit = sub.add_parser("audit", help="recompute every order's totals and payment and "
                           "every stock level from history; exit 1 on any discrepancy")
    audit.add_argument("--db", default=DEFAULT_DB,
                       help="SQLite file (default ./niaga.sqlite) or postgresql://… URL")
    audit.add_argument("--markets", help="markets TOML file (default: the demo markets)")
    audit.set_defaults(func=cmd_audit)

    demo = sub.add_parser("demo", help="a scripted omnichannel journey on a throwaway store: "
                          "web, app, pickup in a store, a POS sale, points, a return")
    demo.add_argument("--db", help="SQLite file to keep afterwards (default: a temporary one)")
    demo.set_defaults(func=cmd_demo)

    openapi = sub.add_parser("openapi", help="print the API's OpenAPI document (what "
                             "/schema/openapi.json serves), built without a store")
    openapi.add_argument("--out", metavar="FILE", help="write it to FILE instead "
                         "(docs/openapi.json is `niaga openapi --out docs/openapi.json`)")
    openapi.set_defaults(func=cmd_openapi)

    args = parser.parse_args(argv)
    if args.command == "serve":
        if args.aws_local and args.db is not None:
            serve.error("--db cannot be used with --aws-local: the store is the template's "
                        "DynamoDB table on moto")
        if args.aws_local and args.workers != 1:
            serve.error("--workers cannot be used with --aws-local: moto runs in the process")
        if args.template and not args.aws_local:
            serve.error("--template is only read with --aws-local")
        if args.aws_local and args.storefront is not None:
            serve.error("--storefront cannot be used with --aws-local: the Lambda API serves "
                        "no static files (put the storefront on a CDN in front of it)")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
