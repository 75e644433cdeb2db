"""Keep customers' personal data out of DEBUG logs written by the store's libraries.

aiosqlite logs every statement with its parameters at DEBUG, and botocore logs DynamoDB
request and response bodies: a host that turns DEBUG on (a developer, a Lambda with
``LOG_LEVEL=DEBUG``) would write emails, phones and addresses to its logs. The stores drop
those records when they start. ``NIAGA_LOG_PAYLOADS=1`` keeps them, for debugging on test
data only.
"""

from __future__ import annotations

import logging
import os

PAYLOAD_LOGGERS = ("aiosqlite", "botocore.endpoint", "botocore.parsers")


class _DropDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_FILTER = _DropDebug()


def quiet_payload_loggers() -> None:
    """Idempotent; a logger's own filter sees only records logged on that logger."""
    keep = os.environ.get("NIAGA_LOG_PAYLOADS") == "1"
    for name in PAYLOAD_LOGGERS:
        logger = logging.getLogger(name)
        if keep:
            logger.removeFilter(_FILTER)
        elif _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
