"""kombu's Redis transport, made to survive a broker restart in the threads-pool worker.

When Redis goes away, Celery's consumer first ``collect()``s its connection and then
``close()``s it. kombu 5.7's Redis channel begins its close by reading the BRPOP reply it
awaits; with the broker gone that read raises before the channel marks itself closed, and
``collect()`` then detaches the transport from the connection (``transport.client = None``).
Celery's ``close()`` closes the same channel again, which now restores the unacknowledged
messages (the late-acked tasks still running in pool threads): it builds a new Redis client
from ``transport.client.hostname`` and raises ``AttributeError``. That is not a connection
error, so the consumer does not ignore it and the worker stops ("Unrecoverable error"). A pool
thread acknowledging its task in that moment meets the same ``AttributeError``.

Here a channel whose connection is gone says so with a Redis ``ConnectionError``, which kombu
and Celery treat as the broker being unreachable: the consumer reconnects, and an ack that can
no longer reach the broker is skipped with a warning. Nothing is lost by skipping it: a message
that Redis kept comes again after the visibility timeout, and the database decides whether
there is anything left to do (see :mod:`distributor.tasks`).
"""

from __future__ import annotations

import logging
from typing import Any

from kombu.transport import redis as kombu_redis
from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger(__name__)

# What ``broker_transport`` names for a redis:// or rediss:// broker.
TRANSPORT = "distributor.broker:Transport"


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag: str) -> None:
        """A task finished after its broker connection was lost: say so in one line."""
        try:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]
        except RedisConnectionError as error:
            if not self.channel.closed:
                raise
            logger.warning(
                "Not acknowledged: message %s came on a broker connection that is gone (%s);"
                " the database keeps what was done",
                delivery_tag,
                error,
            )


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        try:
            params: dict[str, Any] = super()._connparams(  # type: ignore[no-untyped-call]
                asynchronous=asynchronous
            )
        except AttributeError as error:
            if self.connection.client is not None:
                raise
            raise RedisConnectionError("the broker connection is closed") from error
        return params


class Transport(kombu_redis.Transport):
    Channel = Channel
