"""The Celery app: ``celery -A distributor worker`` and ``distributor worker`` both use it.

The broker only carries signals ("there is work", "tick"); losing or duplicating a message is
harmless because the database decides who sends what. With no CELERY_BROKER_URL the broker is
kombu's SQLAlchemy transport on a SQLite file beside the database.

Only worker and beat processes import this module, so it is where they check their settings
(once, at start) and keep their logs to what happens.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
from typing import Any, NoReturn

from celery import Celery
from celery.apps import worker as celery_worker
from celery.signals import (
    after_setup_logger,
    after_setup_task_logger,
    beat_embedded_init,
    beat_init,
    worker_init,
    worker_ready,
)
from celery.utils.log import get_logger
from kombu.transport import sqlalchemy as sqla_transport

from distributor import broker
from distributor.config import Settings
from distributor.errors import ConfigurationError
from distributor.logs import JsonFormatter, json_handler, use_json
from distributor.ops.heartbeats import Heartbeat
from distributor.private_files import create_private, sqlite_file
from distributor.redaction import redact_every_log_record

TICK_SECONDS = 1.0
WEBHOOK_SECONDS = 2.0  # how often the outbox is posted to webhooks
WEBHOOK_TASK = "distributor.webhooks"
TICK_TASK = "distributor.tick"
PERIODIC_TASKS = (TICK_TASK, WEBHOOK_TASK)

# The SQL transport polls once a second by default; passing polling_interval in
# broker_transport_options would reach create_engine and crash, so set it on the class.
sqla_transport.Transport.polling_interval = 0.2

logger = get_logger(__name__)


def make_app(settings: Settings, *, tasks: bool = True) -> Celery:
    """The app; ``tasks`` False: without the task modules, for a scheduler, which sends the
    periodic tasks by name (:mod:`distributor.celery_beat`)."""
    broker_file = sqlite_file(settings.broker_url)
    if broker_file is not None:
        create_private(broker_file)  # its messages name subscribers: owner only
    include = ["distributor.tasks"] if tasks else []
    app = Celery("distributor", broker=settings.broker_url, include=include)
    redis = settings.broker_url.startswith(("redis://", "rediss://"))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        # Dispatching waits on the network and the database, not the CPU: one process whose
        # threads each hold a dispatcher slot (its own SMTP connection), and two threads more
        # so that ticks and planning never wait behind the dispatchers. See "Throughput" in
        # README for a bigger machine.
        worker_pool="threads",
        worker_concurrency=settings.dispatch_slots + 2,
        task_ignore_result=True,
        result_backend=None,
        broker_connection_retry_on_startup=True,
        # A broker that is down for long is waited for, however long (every 30 s at most):
        # sending goes on meanwhile, and the worker takes new tasks as soon as it is back.
        broker_connection_max_retries=None,
        # kombu's Redis transport, but one that survives a broker restart (distributor.broker).
        broker_transport=broker.TRANSPORT if redis else None,
        # (The SQL transport hands every transport option to create_engine: give it none.)
        broker_transport_options={"visibility_timeout": 3600} if redis else {},
        worker_hijack_root_logger=False,
        # Our one periodic entry is the tick, whose state lives in the database: a scheduler
        # that persists nothing leaves no celerybeat-schedule files in the current folder.
        beat_scheduler="celery.beat:Scheduler",
        beat_schedule={
            # A tick that waited in the queue behind busy workers is stale: drop it.
            "tick": {
                "task": TICK_TASK,
                "schedule": TICK_SECONDS,
                "options": {"expires": 10 * TICK_SECONDS},
            },
            # The outbox's events to their webhooks: a round that waited is stale, drop it.
            "webhooks": {
                "task": WEBHOOK_TASK,
                "schedule": WEBHOOK_SECONDS,
                "options": {"expires": 2 * WEBHOOK_SECONDS},
            },
        },
        timezone="UTC",
    )
    if settings.bounce_imap_host is not None:
        # A poll that waited past the next one is stale: drop it.
        app.conf.beat_schedule["poll-bounces"] = {
            "task": "distributor.poll_bounces",
            "schedule": settings.bounce_imap_poll_seconds,
            "options": {"expires": settings.bounce_imap_poll_seconds},
        }
    return app


def _refuse_to_start(error: ConfigurationError) -> NoReturn:
    """One line on the real stderr (Celery may have redirected ``sys.stderr`` to its log)."""
    stream = sys.__stderr__ or sys.stderr
    stream.write(f"Error: {error.format_message()}\n")
    stream.flush()
    raise SystemExit(error.exit_code)


def startup_settings() -> Settings:
    try:
        return Settings.from_env()
    except ConfigurationError as error:
        _refuse_to_start(error)


def _check_settings(**_: Any) -> None:
    from distributor.startup import check_settings  # the mail parts: only a worker loads them

    try:
        warnings = check_settings(startup_settings())
    except ConfigurationError as error:
        _refuse_to_start(error)
    for warning in warnings:
        logger.warning("%s", warning)


class _WithoutTicks(logging.Filter):
    """Celery logs every task it sends, receives and finishes: for the once-a-second tick (and
    the webhooks' round every two seconds) that is lines every second of an idle worker. Each
    logs its own line when it did something."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(task in message for task in PERIODIC_TASKS)


def _redact_logs(**_: Any) -> None:
    """httpx logs each WeChat API call's URL, access token and all (distributor.redaction)."""
    redact_every_log_record()


def _log_format(logger: logging.Logger, **_: Any) -> None:
    """LOG_FORMAT=json: Celery's handlers write JSON lines (distributor.logs)."""
    if startup_settings().log_format == "json":
        use_json(logger)


def _say_as_json(message: str, _stream: Any = None) -> None:
    """What Celery says at a signal ("worker: Warm shutdown"), as a JSON line. Celery writes it
    with os.write, outside logging (no lock inside a signal handler), and so does this."""
    record = logging.LogRecord("celery.worker", logging.WARNING, "", 0, message.strip(), None, None)
    os.write(2, (JsonFormatter().format(record) + "\n").encode())


def _json_from_the_first_line() -> None:
    """LOG_FORMAT=json before Celery sets up logging: its start-up warnings (running as root)
    and what it says at a signal are JSON lines too. Celery keeps a handler it finds."""
    logging.basicConfig(level=logging.INFO, handlers=[json_handler()])
    logging.captureWarnings(True)
    celery_worker.safe_say = _say_as_json


after_setup_logger.connect(_log_format)
after_setup_task_logger.connect(_log_format)
_heartbeats: list[Heartbeat] = []


def _keep_a_heartbeat(role: str) -> None:
    """Say in the database, until this process exits, that it runs: a restore refuses to
    replace the database under it (distributor.ops.heartbeats)."""
    heartbeat = Heartbeat(startup_settings().database_url, role)
    heartbeat.start()
    _heartbeats.append(heartbeat)
    atexit.register(heartbeat.stop)


def _embedded_beat(**_: Any) -> None:
    """A beat inside a worker (``--beat``) is a child that is ended without running exit
    handlers; the worker's heartbeat speaks for it."""
    while _heartbeats:
        _heartbeats.pop().stop()


def _check_beat_settings(**_: Any) -> None:
    """The scheduler only publishes ticks: it needs the settings to parse and, as every process,
    a secret key; what sending needs (SMTP, MAIL_FROM, DKIM) is the worker's to refuse."""
    try:
        startup_settings().require_secret_key()
    except ConfigurationError as error:
        _refuse_to_start(error)


for _starting in (worker_init, beat_init):
    _starting.connect(_redact_logs)
worker_init.connect(_check_settings)
beat_init.connect(_check_beat_settings)
# After the settings are checked: a process that refuses to start leaves no mark.
worker_ready.connect(lambda **_: _keep_a_heartbeat("worker"), weak=False)
beat_init.connect(lambda **_: _keep_a_heartbeat("beat"), weak=False)
beat_embedded_init.connect(_embedded_beat)
for _name in ("celery.beat", "celery.worker.strategy", "celery.app.trace"):
    logging.getLogger(_name).addFilter(_WithoutTicks())

if startup_settings().log_format == "json":
    _json_from_the_first_line()
app = make_app(startup_settings())
