"""One settings object, read from the environment once at each face (CLI, worker, web).

Every variable is documented in ``.env.example``; defaults give the embedded set-up: SQLite for
data and for the Celery broker, no server needed.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from distributor.config_relays import (
    SMTP_SECURITY_MODES,
    Relay,
    RoutingPlan,
    load_relays_file,
)
from distributor.errors import ConfigurationError
from distributor.logs import LOG_FORMATS

WECHAT_ACCOUNT_TYPES = ("subscription", "service")
# 32 characters of token_urlsafe are 192 random bits: out of reach of guessing a link's signature.
MIN_SECRET_KEY_LENGTH = 32
MAKE_A_SECRET_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("", "0", "false", "no", "off")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f-\x9f\u2028\u2029]")


def _int(
    env: Mapping[str, str], name: str, default: int, *, least: int = 0, most: int | None = None
) -> int:
    """``name`` as a whole number from ``least`` to ``most``; the default when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None
    _check_range(name, raw, value, least, most)
    return value


def _float(
    env: Mapping[str, str],
    name: str,
    default: float,
    *,
    positive: bool = False,
    most: float | None = None,
) -> float:
    """``name`` as a finite number, at least 0 (above it when ``positive``: a time of 0 would
    make a loop spin or a lease run out at once) and at most ``most``; the default when unset.
    NaN compares false with everything, so it would silently switch a check off."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigurationError(f"{name}={raw!r} is not a finite number")
    if positive and value <= 0:
        raise ConfigurationError(f"{name}={raw!r} must be more than 0")
    _check_range(name, raw, value, 0, most)
    return value


def _check_range(name: str, raw: str, value: float, least: float, most: float | None) -> None:
    if value < least or (most is not None and value > most):
        bounds = f"at least {least}" if most is None else f"from {least} to {most}"
        raise ConfigurationError(f"{name}={raw!r} must be {bounds}")


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw not in _TRUE + _FALSE:
        raise ConfigurationError(f"{name}={raw!r} is not 1 or 0")
    return raw in _TRUE


def _encoding_aes_key(env: Mapping[str, str]) -> str | None:
    """The EncodingAESKey of WeChat's safe mode: 43 characters of base64 (32 bytes of key)."""
    raw = env.get("WECHAT_ENCODING_AES_KEY", "").strip()
    if not raw:
        return None
    try:
        valid = len(raw) == 43 and len(base64.b64decode(raw + "=", validate=True)) == 32
    except (binascii.Error, ValueError):
        valid = False
    if not valid:
        raise ConfigurationError(
            f"WECHAT_ENCODING_AES_KEY is {len(raw)} characters, not the 43 letters, digits, '+' "
            "and '/' of the EncodingAESKey shown in the WeChat console"
        )
    if not env.get("WECHAT_APP_ID", "").strip():
        raise ConfigurationError(
            "WECHAT_ENCODING_AES_KEY needs WECHAT_APP_ID: a safe-mode message names its account"
        )
    return raw


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


def _relays(env: Mapping[str, str]) -> RoutingPlan | None:
    path = env.get("SMTP_RELAYS_FILE", "").strip()
    return load_relays_file(path, env) if path else None


# SQLite has one writer, which every dispatcher waits for to record its answers: there more slots
# only queue (benchmarks/send.py, embedded: 0.88× the baseline with 4, 0.76× with 6).
EMBEDDED_DISPATCH_SLOTS = 4


def _default_slots(database_url: str) -> int:
    return EMBEDDED_DISPATCH_SLOTS if database_url.startswith("sqlite") else Settings.dispatch_slots


def _sqlite_broker_for(database_url: str) -> str:
    """The embedded broker sits beside the embedded database: ``x.db`` → ``x-broker.db``."""
    if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
        path = Path(database_url.removeprefix("sqlite:///"))
        return f"sqla+sqlite:///{path.with_name(path.stem + '-broker.db')}"
    return "sqla+sqlite:///distributor-broker.db"


_DOMAIN_NAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")


def _bounce_domain(env: Mapping[str, str]) -> str | None:
    """Lower-cased: VERP addresses are compared without case (receivers may change it)."""
    raw = env.get("BOUNCE_DOMAIN", "").strip().lower().rstrip(".")
    if raw and not _DOMAIN_NAME.fullmatch(raw):
        raise ConfigurationError(
            f"BOUNCE_DOMAIN={raw!r} is not a domain name like bounces.example.org"
        )
    return raw or None


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
    # Several relays with caps and failover (SMTP_RELAYS_FILE); None: the one relay above.
    smtp_relays: RoutingPlan | None = None
    cap_hour_seconds: float = 3600.0  # the "hour" relay and domain caps are counted in (tests)
    relay_rest_seconds: float = 30.0  # a failing relay rests this long, doubling while it fails
    relay_rest_max_seconds: float = 600.0
    domain_slowdown_seconds: float = 300.0  # a domain that said "too many" is slowed this long
    dkim_domain: str | None = None
    dkim_selector: str | None = None
    dkim_private_key_file: str | None = None
    # The sending engine; each is documented with its unit in .env.example.
    dispatch_slots: int = 6
    worker_processes: int = 0  # sending processes of `distributor worker`; 0: one per core
    batch_size: int = 250  # about a second of one slot's sending: claims cost little per message
    claim_lease_seconds: float = 30.0
    retry_base_seconds: float = 60.0
    retry_max_attempts: int = 5
    retry_max_delay_seconds: float = 3600.0
    dispatch_budget_seconds: float = 10.0  # a drain hands its slot on after this
    recheck_seconds: float = 1.0  # how stale a pause or an unsubscribe may be when a message goes
    tick_seconds: float = 1.0  # how often beat ticks
    plan_batch_size: int = 1000  # audience members frozen into deliveries per transaction
    planner_lease_seconds: float = 60.0  # a dead planner's send is planned again after this
    rate_limit: float | None = None  # messages per second, all workers together
    domain_concurrency: str = ""  # "qq.com=5,163.com=3"
    default_domain_concurrency: int | None = None
    # Bounces: the domain of VERP return paths (bounces+<token>@…); unset = no VERP.
    bounce_domain: str | None = None
    bounce_pause_rate: float = 0.05  # a send pauses when more of its accepted mail bounces hard
    bounce_pause_min_sent: int = 200  # … once at least this many messages were accepted
    # A send pauses when one receiving domain refuses more than this share of its messages for
    # reasons that are about us or the path (blocklist, authentication, content, rate, …) …
    refusal_pause_rate: float = 0.2
    refusal_pause_min_attempts: int = 50  # … once this many were tried at that domain
    bounce_intake_secret: str | None = field(default=None, repr=False)  # HTTP intake's secret
    bounce_imap_host: str | None = None  # the bounce mailbox; unset = not polled
    bounce_imap_port: int = 993
    bounce_imap_security: str = "ssl"  # ssl, starttls or none (none only for loopback tests)
    bounce_imap_allow_plaintext: bool = False  # none to a host other than loopback
    bounce_imap_user: str | None = None
    bounce_imap_password: str | None = field(default=None, repr=False)
    bounce_imap_folder: str = "INBOX"
    bounce_imap_done_folder: str = "Processed"
    bounce_imap_failed_folder: str = "Failed"
    bounce_imap_poll_seconds: float = 60.0
    # Outgoing webhooks (distributor.webhooks): the first retry's wait, doubling up to an hour,
    # and how many tries an event gets (the default: about nine hours of retrying).
    webhook_retry_base_seconds: float = 30.0
    webhook_max_attempts: int = 15
    webhook_timeout_seconds: float = 10.0
    # The web server (distributor web).
    forwarded_allow_ips: str = "127.0.0.1"  # proxies whose X-Forwarded-For/-Proto are believed
    web_form_rate_limit: int = 30  # form posts per minute from one IP address
    signup_rate_limit: int = 5  # sign-ups per hour from one IP address
    web_workers: int = 0  # processes of `distributor web`; 0: see web_worker_count
    # A staff page's count over readers that is not kept waits at most this long; one that takes
    # longer is finished in the background and shown when counted (distributor.count_budget).
    count_budget_seconds: float = 0.06
    web_max_body_bytes: int = 1024 * 1024  # a request body (forms, JSON), before any route
    web_max_upload_bytes: int = 50 * 1024 * 1024  # an upload's body (issue files, CSV imports)
    web_header_timeout: float = 10.0  # seconds a request's head may take to arrive
    web_max_header_bytes: int = 64 * 1024  # the largest request head (request line, headers)
    web_start_timeout: float = 120.0  # seconds a web process may take to start listening
    web_hang_timeout: float = 60.0  # seconds a listening web process may not answer its manager
    # /metrics: clients at these addresses or networks, or with this bearer token.
    metrics_allow_ips: str = "127.0.0.1,::1"
    metrics_token: str | None = field(default=None, repr=False)
    # The WeChat Official Account (公众号) channel; see the README section "WeChat channel".
    wechat_app_id: str | None = None
    wechat_app_secret: str | None = field(default=None, repr=False)
    wechat_api_base: str = "https://api.weixin.qq.com"
    wechat_account_type: str = "subscription"
    wechat_callback_token: str | None = field(default=None, repr=False)
    # Safe mode: callbacks encrypted, their signature covering the body (None: plain mode).
    wechat_encoding_aes_key: str | None = field(default=None, repr=False)
    wechat_timeout_seconds: float = 30.0  # how long a call to WeChat may take to answer
    log_format: str = "text"  # or "json": one object per line (distributor.logs)
    doctor_nameserver: str | None = None  # the DNS server `distributor doctor` asks

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
        wechat_account_type = env.get("WECHAT_ACCOUNT_TYPE", "").strip().lower() or "subscription"
        if wechat_account_type not in WECHAT_ACCOUNT_TYPES:
            raise ConfigurationError(
                f"WECHAT_ACCOUNT_TYPE={wechat_account_type!r} is not one of "
                f"{', '.join(WECHAT_ACCOUNT_TYPES)}"
            )
        imap_security = env.get("BOUNCE_IMAP_SECURITY", "").strip().lower() or "ssl"
        if imap_security not in SMTP_SECURITY_MODES:
            raise ConfigurationError(
                f"BOUNCE_IMAP_SECURITY={imap_security!r} is not one of "
                f"{', '.join(SMTP_SECURITY_MODES)}"
            )
        log_format = env.get("LOG_FORMAT", "").strip().lower() or cls.log_format
        if log_format not in LOG_FORMATS:
            raise ConfigurationError(
                f"LOG_FORMAT={log_format!r} is not one of {', '.join(LOG_FORMATS)}"
            )
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
            smtp_port=_int(
                env, "SMTP_PORT", 465 if security == "ssl" else cls.smtp_port, least=1, most=65535
            ),
            smtp_username=env.get("SMTP_USERNAME") or None,
            smtp_password=env.get("SMTP_PASSWORD") or None,
            smtp_security=security,
            smtp_allow_plaintext_auth=_flag(env, "SMTP_ALLOW_PLAINTEXT_AUTH"),
            smtp_timeout=_float(env, "SMTP_TIMEOUT", cls.smtp_timeout, positive=True),
            smtp_relays=_relays(env),
            cap_hour_seconds=_float(env, "CAP_HOUR_SECONDS", cls.cap_hour_seconds, positive=True),
            relay_rest_seconds=_float(env, "RELAY_REST_SECONDS", cls.relay_rest_seconds),
            relay_rest_max_seconds=_float(
                env, "RELAY_REST_MAX_SECONDS", cls.relay_rest_max_seconds
            ),
            domain_slowdown_seconds=_float(
                env, "DOMAIN_SLOWDOWN_SECONDS", cls.domain_slowdown_seconds
            ),
            dkim_domain=env.get("DKIM_DOMAIN") or None,
            dkim_selector=env.get("DKIM_SELECTOR") or None,
            dkim_private_key_file=env.get("DKIM_PRIVATE_KEY_FILE") or None,
            dispatch_slots=_int(env, "DISPATCH_SLOTS", _default_slots(database_url), least=1),
            worker_processes=_int(env, "WORKER_PROCESSES", cls.worker_processes),
            batch_size=_int(env, "DISPATCH_BATCH_SIZE", cls.batch_size, least=1),
            claim_lease_seconds=_float(
                env, "CLAIM_LEASE_SECONDS", cls.claim_lease_seconds, positive=True
            ),
            retry_base_seconds=_float(env, "RETRY_BASE_SECONDS", cls.retry_base_seconds),
            retry_max_attempts=_int(env, "RETRY_MAX_ATTEMPTS", cls.retry_max_attempts, least=1),
            retry_max_delay_seconds=_float(
                env, "RETRY_MAX_DELAY_SECONDS", cls.retry_max_delay_seconds
            ),
            dispatch_budget_seconds=_float(
                env, "DISPATCH_BUDGET_SECONDS", cls.dispatch_budget_seconds, positive=True
            ),
            recheck_seconds=_float(env, "RECHECK_SECONDS", cls.recheck_seconds),
            tick_seconds=_float(env, "TICK_SECONDS", cls.tick_seconds, positive=True),
            plan_batch_size=_int(env, "PLAN_BATCH_SIZE", cls.plan_batch_size, least=1),
            planner_lease_seconds=_float(
                env, "PLANNER_LEASE_SECONDS", cls.planner_lease_seconds, positive=True
            ),
            rate_limit=_float(env, "RATE_LIMIT", 0.0) or None,
            domain_concurrency=env.get("DOMAIN_CONCURRENCY", "").strip(),
            default_domain_concurrency=_int(env, "DEFAULT_DOMAIN_CONCURRENCY", 0) or None,
            bounce_domain=_bounce_domain(env),
            bounce_pause_rate=_float(env, "BOUNCE_PAUSE_RATE", cls.bounce_pause_rate, most=1),
            bounce_pause_min_sent=_int(env, "BOUNCE_PAUSE_MIN_SENT", cls.bounce_pause_min_sent),
            refusal_pause_rate=_float(env, "REFUSAL_PAUSE_RATE", cls.refusal_pause_rate, most=1),
            refusal_pause_min_attempts=_int(
                env, "REFUSAL_PAUSE_MIN_ATTEMPTS", cls.refusal_pause_min_attempts
            ),
            bounce_intake_secret=env.get("BOUNCE_INTAKE_SECRET", "").strip() or None,
            bounce_imap_host=env.get("BOUNCE_IMAP_HOST", "").strip() or None,
            bounce_imap_port=_int(
                env,
                "BOUNCE_IMAP_PORT",
                143 if imap_security != "ssl" else cls.bounce_imap_port,
                least=1,
                most=65535,
            ),
            bounce_imap_security=imap_security,
            bounce_imap_allow_plaintext=_flag(env, "BOUNCE_IMAP_ALLOW_PLAINTEXT"),
            bounce_imap_user=env.get("BOUNCE_IMAP_USER", "").strip() or None,
            bounce_imap_password=env.get("BOUNCE_IMAP_PASSWORD") or None,
            bounce_imap_folder=env.get("BOUNCE_IMAP_FOLDER", "").strip() or cls.bounce_imap_folder,
            bounce_imap_done_folder=env.get("BOUNCE_IMAP_DONE_FOLDER", "").strip()
            or cls.bounce_imap_done_folder,
            bounce_imap_failed_folder=env.get("BOUNCE_IMAP_FAILED_FOLDER", "").strip()
            or cls.bounce_imap_failed_folder,
            bounce_imap_poll_seconds=_float(
                env, "BOUNCE_IMAP_POLL_SECONDS", cls.bounce_imap_poll_seconds, positive=True
            ),
            webhook_retry_base_seconds=_float(
                env, "WEBHOOK_RETRY_BASE_SECONDS", cls.webhook_retry_base_seconds
            ),
            webhook_max_attempts=_int(
                env, "WEBHOOK_MAX_ATTEMPTS", cls.webhook_max_attempts, least=1
            ),
            webhook_timeout_seconds=_float(
                env, "WEBHOOK_TIMEOUT_SECONDS", cls.webhook_timeout_seconds, positive=True
            ),
            forwarded_allow_ips=env.get("FORWARDED_ALLOW_IPS", "").strip()
            or cls.forwarded_allow_ips,
            web_form_rate_limit=_int(env, "WEB_FORM_RATE_LIMIT", cls.web_form_rate_limit, least=1),
            signup_rate_limit=_int(env, "SIGNUP_RATE_LIMIT", cls.signup_rate_limit, least=1),
            web_workers=_int(env, "WEB_WORKERS", cls.web_workers),
            count_budget_seconds=_float(env, "COUNT_BUDGET_SECONDS", cls.count_budget_seconds),
            web_max_body_bytes=_int(env, "WEB_MAX_BODY_BYTES", cls.web_max_body_bytes, least=1),
            web_max_upload_bytes=_int(
                env, "WEB_MAX_UPLOAD_BYTES", cls.web_max_upload_bytes, least=1
            ),
            web_header_timeout=_float(
                env, "WEB_HEADER_TIMEOUT", cls.web_header_timeout, positive=True
            ),
            web_max_header_bytes=_int(
                env, "WEB_MAX_HEADER_BYTES", cls.web_max_header_bytes, least=1
            ),
            web_start_timeout=_float(
                env, "WEB_START_TIMEOUT", cls.web_start_timeout, positive=True
            ),
            web_hang_timeout=_float(env, "WEB_HANG_TIMEOUT", cls.web_hang_timeout, positive=True),
            metrics_allow_ips=env.get("METRICS_ALLOW_IPS", "").strip() or cls.metrics_allow_ips,
            metrics_token=env.get("METRICS_TOKEN", "").strip() or None,
            wechat_app_id=env.get("WECHAT_APP_ID", "").strip() or None,
            wechat_app_secret=env.get("WECHAT_APP_SECRET", "").strip() or None,
            wechat_api_base=(env.get("WECHAT_API_BASE", "").strip() or cls.wechat_api_base).rstrip(
                "/"
            ),
            wechat_account_type=wechat_account_type,
            wechat_callback_token=env.get("WECHAT_CALLBACK_TOKEN", "").strip() or None,
            wechat_encoding_aes_key=_encoding_aes_key(env),
            wechat_timeout_seconds=_float(
                env, "WECHAT_TIMEOUT_SECONDS", cls.wechat_timeout_seconds, positive=True
            ),
            log_format=log_format,
            doctor_nameserver=env.get("DOCTOR_NAMESERVER", "").strip() or None,
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
    def routing(self) -> RoutingPlan:
        """The relays file's plan, else one relay made of the ``SMTP_*`` settings."""
        if self.smtp_relays is not None:
            return self.smtp_relays
        return RoutingPlan(
            (
                Relay(
                    name="default",
                    host=self.smtp_host,
                    port=self.smtp_port,
                    security=self.smtp_security,
                    username=self.smtp_username,
                    password=self.smtp_password,
                ),
            )
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
    def web_worker_count(self) -> int:
        """WEB_WORKERS when set; else one per CPU core when the rate limits are shared in Redis,
        and one without it (each process would count, and allow, the limits on its own)."""
        if self.web_workers > 0:
            return self.web_workers
        return max(1, os.cpu_count() or 1) if self.shared_redis_url else 1

    @property
    def worker_process_count(self) -> int:
        """WORKER_PROCESSES; 0 (the default): one sending process per CPU core, as many as there
        are slots at most, since one interpreter's threads share one core (the GIL) and a message
        costs it about half a millisecond of CPU; but one on SQLite, whose one writer is what the
        dispatchers wait for (processes would only take turns at its file lock)."""
        if self.worker_processes > 0:
            return self.worker_processes
        if self.database_url.startswith("sqlite"):
            return 1
        return max(1, min(os.cpu_count() or 1, self.dispatch_slots))

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)
