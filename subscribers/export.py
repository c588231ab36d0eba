"""Subscribers out as CSV (:data:`~subscribers.csvfile.EXPORT_COLUMNS`), streamed in id order.

The file reads back with ``subscribers import`` to the same subscribers, lists and statuses.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from typing import IO

from sqlalchemy import select
from sqlalchemy.orm import Session

from subscribers.csvfile import EXPORT_COLUMNS, export_cells
from subscribers.models import List, Subscriber, Subscription, SubscriptionStatus
from subscribers.query import keyset_batches, subscriber_has
from subscribers.store import get_list

EXPORT_BATCH = 1_000  # subscribers per query


def _memberships(
    session: Session, subscriber_ids: Sequence[int]
) -> dict[int, list[tuple[str, SubscriptionStatus]]]:
    found: dict[int, list[tuple[str, SubscriptionStatus]]] = {}
    for subscriber_id, name, status in session.execute(
        select(Subscription.subscriber_id, List.name, Subscription.status)
        .join(List)
        .where(Subscription.subscriber_id.in_(subscriber_ids))
    ):
        found.setdefault(subscriber_id, []).append((name, status))
    return found


def export_subscribers(session: Session, out: IO[str], *, list_name: str | None = None) -> int:
    """Write every subscriber (or those ever on ``list_name``) to ``out``; returns how many."""
    query = select(
        Subscriber.id,
        Subscriber.email,
        Subscriber.name,
        Subscriber.status,
        Subscriber.channel,
        Subscriber.format,
        Subscriber.openid,
        Subscriber.attributes,
        Subscriber.created_at,
    )
    if list_name is not None:
        list_id = get_list(session, list_name).id
        query = query.where(
            subscriber_has(Subscription.subscriber_id, Subscription.list_id == list_id)
        )
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    count = 0
    for rows in keyset_batches(session, query, batch_size=EXPORT_BATCH):
        lists = _memberships(session, [row.id for row in rows])
        for row in rows:
            writer.writerow(
                export_cells(
                    email=row.email,
                    name=row.name,
                    status=row.status,
                    memberships=lists.get(row.id, []),
                    channel=row.channel,
                    format=row.format,
                    openid=row.openid,
                    attributes=row.attributes,
                    created_at=row.created_at,
                )
            )
        count += len(rows)
    return count
