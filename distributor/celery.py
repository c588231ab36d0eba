"""The Celery app: ``celery -A distributor worker`` and ``distributor worker`` both use it.

The broker only carries signals ("there is work", "tick"); losing or duplicating a message is
harmless because the database decides who sends what. With no CELERY_BROKER_URL the broker is
kombu's SQLAlchemy transport on a SQLite file beside the database.
"""

from __future__ import annotations

from celery import Celery
from kombu.transport import sqlalchemy as sqla_transport

from distributor.config import Settings

TICK_SECONDS = 1.0

# The SQL transport polls once a second by default; passing polling_interval in
# broker_transport_options would reach create_engine and crash, so set it on the class.
sqla_transport.Transport.polling_interval = 0.2


def make_app(settings: Settings) -> Celery:
    app = Celery("distributor", broker=settings.broker_url, include=["distributor.tasks"])
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        broker_connection_retry_on_startup=True,
        # (The SQL transport hands every transport option to create_engine: give it none.)
        broker_transport_options=(
            {"visibility_timeout": 3600} if settings.broker_url.startswith("redis") else {}
        ),
        worker_hijack_root_logger=False,
        beat_schedule={
            # A tick that waited in the queue behind busy workers is stale: drop it.
            "tick": {
                "task": "distributor.tick",
                "schedule": TICK_SECONDS,
                "options": {"expires": 10 * TICK_SECONDS},
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


app = make_app(Settings.from_env())
