"""No secret in a log line: the values of secret query parameters and URL passwords are masked.

httpx logs every request's URL at INFO, and WeChat's API takes the access token (and, for the
classic token call, the app secret) in the query string; a log file is read by more people, and
kept longer, than the settings. Masking happens as each record is made, so it holds for every
logger, handler and formatter of the process, tracebacks included.
"""

from __future__ import annotations

import logging
import re
from typing import Any

MASK = "***"
# Query parameters whose value is a secret: WeChat's (access_token, secret, appsecret), the
# callback's signatures, and the usual names elsewhere.
SECRET_PARAMETERS = (
    "access_token",
    "refresh_token",
    "token",
    "secret",
    "appsecret",
    "app_secret",
    "client_secret",
    "password",
    "passwd",
    "api_key",
    "apikey",
    "key",
    "signature",
    "msg_signature",
)
_SECRET_QUERY = re.compile(
    r"(?i)(?<![\w-])((?:" + "|".join(SECRET_PARAMETERS) + r")=)[^&#\s'\"<>]+"
)
# scheme://user:password@host: the password (Celery masks its own broker URL, not every URL).
_URL_PASSWORD = re.compile(r"([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s/]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """``text`` with every secret query value and URL password replaced by ``***``."""
    text = _SECRET_QUERY.sub(rf"\g<1>{MASK}", text)
    return _URL_PASSWORD.sub(rf"\g<1>{MASK}@", text)


def _redacted(record: logging.LogRecord) -> logging.LogRecord:
    try:
        message = record.getMessage()
    except Exception:  # a bad format: logging reports it where it emits, as it always did
        return record
    masked = redact(message)
    if masked != message:
        record.msg, record.args = masked, None
    if record.exc_info and record.exc_info[0] is not None and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    return record


class _RedactingFactory:
    """The record factory that was installed before, with every record it makes redacted."""

    def __init__(self, make: Any) -> None:
        self.make = make

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        return _redacted(self.make(*args, **kwargs))


def redact_every_log_record() -> None:
    """Mask secrets in every log record this process makes from now on (once is enough)."""
    current = logging.getLogRecordFactory()
    if not isinstance(current, _RedactingFactory):
        logging.setLogRecordFactory(_RedactingFactory(current))
