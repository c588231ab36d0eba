"""How a log line looks: plain text (the default), or with ``LOG_FORMAT=json`` one JSON object per
line (time, level, logger, send_id, delivery_id, message; the traceback as ``exception``), which
a log collector reads without a pattern. Which send and delivery a line is about comes from
:func:`log_context` (or a record's ``extra``), so code that logs need not repeat them.

What goes in is already clean: every process masks secrets as each record is made
(:mod:`distributor.redaction`), and the engines never put SQL parameters in an error.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
_send_id: ContextVar[int | None] = ContextVar("send_id", default=None)
_delivery_id: ContextVar[int | None] = ContextVar("delivery_id", default=None)


@contextmanager
def log_context(*, send_id: int | None = None, delivery_id: int | None = None) -> Iterator[None]:
    """Lines logged in this block (in this thread or task) name ``send_id`` and
    ``delivery_id``; what is not given keeps the value of an enclosing block."""
    tokens = [
        (var, var.set(value))
        for var, value in ((_send_id, send_id), (_delivery_id, delivery_id))
        if value is not None
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a newline inside a message stays escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "send_id": getattr(record, "send_id", None) or _send_id.get(),
            "delivery_id": getattr(record, "delivery_id", None) or _delivery_id.get(),
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_text or self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def json_handler() -> logging.Handler:
    """A handler writing JSON lines to standard error."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    return handler


def use_json(logger: logging.Logger) -> None:
    """Every handler of ``logger`` writes JSON lines from now on."""
    for handler in logger.handlers:
        handler.setFormatter(JsonFormatter())


def uvicorn_log_config(log_format: str) -> dict[str, Any]:
    """uvicorn's logging set-up (its default for text); for JSON the same with JSON lines, and
    the application's own loggers written the same way."""
    from uvicorn.config import LOGGING_CONFIG

    if log_format != "json":
        return LOGGING_CONFIG
    config: dict[str, Any] = json.loads(json.dumps(LOGGING_CONFIG))
    config["formatters"] = {name: {"()": JsonFormatter} for name in config["formatters"]}
    config["root"] = {"handlers": ["default"], "level": "INFO"}
    return config
