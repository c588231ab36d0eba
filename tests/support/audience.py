"""Build an audience quickly: N active subscribers on one list, inserted in bulk."""

from __future__ import annotations

from sqlalchemy import insert, select

from distributor.db import transaction
from subscribers.models import List, Subscriber, SubscriberStatus, Subscription, SubscriptionStatus


def make_audience(
    url: str,
    list_name: str,
    n: int,
    *,
    domain: str = "example.org",
    prefix: str = "reader",
    fmt: str = "full",
) -> list[str]:
    """Addresses ``reader00001@domain`` … in subscriber-id order."""
    emails = [f"{prefix}{i:05d}@{domain}" for i in range(1, n + 1)]
    with transaction(url) as session:
        list_id = session.scalar(select(List.id).where(List.name == list_name))
        if list_id is None:
            mailing_list = List(name=list_name)
            session.add(mailing_list)
            session.flush()
            list_id = mailing_list.id
        for start in range(0, n, 1000):
            chunk = emails[start : start + 1000]
            ids = session.scalars(
                insert(Subscriber).returning(Subscriber.id),
                [
                    {
                        "email": e,
                        "email_key": e,
                        "name": f"读者{e.split('@')[0][-5:]}",
                        "status": SubscriberStatus.ACTIVE,
                        "channel": "email",
                        "format": fmt,
                        "attributes": {},
                    }
                    for e in chunk
                ],
            ).all()
            session.execute(
                insert(Subscription),
                [
                    {"subscriber_id": i, "list_id": list_id, "status": SubscriptionStatus.ACTIVE}
                    for i in ids
                ],
            )
    return emails
