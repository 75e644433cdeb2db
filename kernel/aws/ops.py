"""Operator commands that talk to AWS from a workstation, not from a function:
``niaga markets push FILE --ssm-name NAME`` (docs/operating-aws.md, "Markets in SSM").

boto3 finds credentials and the region as the AWS CLI does (``AWS_PROFILE``,
``AWS_REGION``, ...), and ``AWS_ENDPOINT_URL`` points it at ``niaga serve --aws-local``'s
moto server instead of AWS. Nothing here is imported by the Lambda functions.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

STANDARD_MAX = 4096  # bytes: an SSM Standard parameter
ADVANCED_MAX = 8192  # bytes: an Advanced one


def markets_push(file: str, name: str, *, client: Any = None) -> int:
    """Validate a markets file as ``niaga markets check`` does, then put it in the SSM
    parameter ``name`` (overwritten; a String, tier chosen by SSM's Intelligent-Tiering:
    Standard up to 4 KB, Advanced up to 8 KB). Exit status 0 when it was put."""
    from kernel.errors import ConfigError
    from kernel.markets import load_markets
    from kernel.plugins import Registry, build_market_plugins

    path = Path(file)
    try:
        text = path.read_text(encoding="utf-8")
        markets = load_markets(path)
        build_market_plugins(markets, Registry())
    except OSError as exc:
        print(f"niaga markets push: {file}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"{file}: {len(exc.problems)} problem(s); nothing was put", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    size = len(text.encode("utf-8"))
    if size > ADVANCED_MAX:
        print(f"{file}: {size} bytes, over the 8 KB an SSM parameter holds (Advanced tier); "
              "nothing was put", file=sys.stderr)
        return 1
    try:
        if client is None:
            import boto3

            client = boto3.client("ssm")
        out = client.put_parameter(Name=name, Value=text, Type="String", Overwrite=True,
                                   Tier="Intelligent-Tiering",
                                   Description="Niaga market configuration (TOML)")
    except Exception as exc:  # botocore's ClientError, NoCredentialsError, NoRegionError ...
        print(f"niaga markets push: {name}: {exc}", file=sys.stderr)
        return 1
    languages = sorted({loc.split("-")[0] for m in markets.values() for loc in m.locales})
    tier = out.get("Tier")
    if tier in (None, "Intelligent-Tiering"):  # SSM answers the tier it chose; moto echoes
        tier = "Standard" if size <= STANDARD_MAX else "Advanced"
    print(f"{name}: version {out.get('Version')} ({size} bytes, {tier}): "
          f"{len(markets)} markets ({', '.join(markets)})")
    print(f"languages {', '.join(languages)}: the deployed package must keep their locale "
          f"data (NIAGA_LOCALES={','.join(languages)} make deploy, infra/README.md)")
    print("running functions keep the markets they loaded until their containers are "
          "replaced (docs/operating-aws.md)")
    return 0
