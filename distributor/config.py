"""One settings object, read from the environment once at each face (CLI, worker, web).

Every variable is documented in ``.env.example``; defaults give the embedded set-up: SQLite for
data and for the Celery broker, no server needed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from distributor.errors import ConfigurationError

SMTP_SECURITY_MODES = ("none", "starttls", "ssl")
# 32 characters of token_urlsafe are 192 random bits: out of reach of guessing a link's signature.
MIN_SECRET_KEY_LENGTH = 32
MAKE_A_SECRET_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in _TRUE + _FALSE:
        raise ConfigurationError(f"{name}={raw!r} is not 1 or 0")
    return raw in _TRUE


def _base_url(raw: str) -> str:
    """An http(s) URL with a host and nothing a header or link could be split at."""
    example = "e.g. https://news.example.org"
    if _CONTROL_OR_SPACE.search(raw):
        raise ConfigurationError(
            f"PUBLIC_BASE_URL={raw!r} contains a space or control character; {example}"
        )
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigurationError(
            f"PUBLIC_BASE_URL={raw!r} is not an http(s) URL of the public pages; {example}"
        )
    return raw.rstrip("/")


def _sqlite_broker_for(database_url: str) -> str:
    """The embedded broker sits beside the embedded database: ``x.db`` → ``x-broker.db``."""
    if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
        path = Path(database_url.removeprefix("sqlite:///"))
        return f"sqla+sqlite:///{path.with_name(path.stem + '-broker.db')}"
    return "sqla+sqlite:///distributor-broker.db"


@dataclass(frozen=True)
class Settings:
    """What the environment says. Built by :meth:`from_env`; nothing else reads ``os.environ``."""

    database_url: str = "sqlite:///distributor.db"
    broker_url: str = "sqla+sqlite:///distributor-broker.db"
    redis_url: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    timezone: str = "Asia/Shanghai"
    mail_from: str = "杭州工运 <newsletter@localhost>"
    public_base_url: str = "http://localhost:8000"
    smtp_host: str = "localhost"
    smtp_port: int = 25
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_security: str = "none"
    smtp_allow_plaintext_auth: bool = False  # a password over plain TCP: for a loopback relay
    smtp_timeout: float = 30.0
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_private_key_file: str | None = None
    # The sending engine; each is documented with its unit in .env.example.
    dispatch_slots: int = 4
    batch_size: int = 100
    claim_lease_seconds: float = 30.0
    retry_base_seconds: float = 60.0
    retry_max_attempts: int = 5
    rate_limit: float | None = None  # messages per second, all workers together
    domain_concurrency: str = ""  # "qq.com=5,163.com=3"
    default_domain_concurrency: int | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        database_url = env.get("DATABASE_URL", "").strip() or cls.database_url
        security = env.get("SMTP_SECURITY", "").strip().lower() or "none"
        if security not in SMTP_SECURITY_MODES:
            raise ConfigurationError(
                f"SMTP_SECURITY={security!r} is not one of {', '.join(SMTP_SECURITY_MODES)}"
            )
        timezone = env.get("DISTRIBUTOR_TIMEZONE", "").strip() or cls.timezone
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError(
                f"DISTRIBUTOR_TIMEZONE={timezone!r} is not a known time zone"
            ) from None
        return cls(
            database_url=database_url,
            broker_url=env.get("CELERY_BROKER_URL", "").strip() or _sqlite_broker_for(database_url),
            redis_url=env.get("REDIS_URL", "").strip() or None,
            secret_key=env.get("DISTRIBUTOR_SECRET_KEY") or None,
            timezone=timezone,
            mail_from=env.get("MAIL_FROM", "").strip() or cls.mail_from,
            public_base_url=_base_url(
                env.get("PUBLIC_BASE_URL", "").strip() or cls.public_base_url
            ),
            smtp_host=env.get("SMTP_HOST", "").strip() or cls.smtp_host,
            smtp_port=_int(env, "SMTP_PORT", 465 if security == "ssl" else cls.smtp_port),
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_security=security,
            smtp_allow_plaintext_auth=_flag(env, "SMTP_ALLOW_PLAINTEXT_AUTH"),
            smtp_timeout=_float(env, "SMTP_TIMEOUT", cls.smtp_timeout),
            dkim_domain=env.get("DKIM_DOMAIN") or None,
            dkim_selector=env.get("DKIM_SELECTOR") or None,
            dkim_private_key_file=env.get("DKIM_PRIVATE_KEY_FILE") or None,
            dispatch_slots=_int(env, "DISPATCH_SLOTS", cls.dispatch_slots),
            batch_size=_int(env, "DISPATCH_BATCH_SIZE", cls.batch_size),
            claim_lease_seconds=_float(env, "CLAIM_LEASE_SECONDS", cls.claim_lease_seconds),
            retry_base_seconds=_float(env, "RETRY_BASE_SECONDS", cls.retry_base_seconds),
            retry_max_attempts=_int(env, "RETRY_MAX_ATTEMPTS", cls.retry_max_attempts),
            rate_limit=_float(env, "RATE_LIMIT", 0.0) or None,
            domain_concurrency=env.get("DOMAIN_CONCURRENCY", "").strip(),
            default_domain_concurrency=_int(env, "DEFAULT_DOMAIN_CONCURRENCY", 0) or None,
        )

    def require_secret_key(self) -> str:
        """The key that signs public links; refusing to sign with a default or a guessable key
        is the point."""
        if not self.secret_key:
            problem = "is not set"
        elif len(self.secret_key) < MIN_SECRET_KEY_LENGTH:
            problem = f"has {len(self.secret_key)} characters, fewer than {MIN_SECRET_KEY_LENGTH}"
        else:
            return self.secret_key
        raise ConfigurationError(
            f"DISTRIBUTOR_SECRET_KEY {problem}: it signs every public link. "
            f"Generate one with: {MAKE_A_SECRET_KEY}"
        )

    @property
    def one_click_unsubscribe(self) -> bool:
        """RFC 8058 one-click unsubscribe may only be advertised for an https link."""
        return self.public_base_url.startswith("https://")

    @property
    def shared_redis_url(self) -> str | None:
        """Where shared counters live: REDIS_URL, else the broker when it is Redis."""
        if self.redis_url:
            return self.redis_url
        return self.broker_url if self.broker_url.startswith(("redis://", "rediss://")) else None

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
