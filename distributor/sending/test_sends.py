"""Staff test sends: an issue to a few staff addresses, sent by the command that asks, while it
waits, and marked as a test in the subject.

No worker ever takes a test send's deliveries (the dispatcher skips test sends), so what the
command reports is what happened: whatever did not go out while it waited is failed, never
delivered a minute later.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from distributor.config import Settings
from distributor.errors import NotFound
from distributor.issues.models import Issue
from distributor.sending.lifecycle import finish_if_complete
from distributor.sending.models import OPEN_DELIVERY_STATES, Delivery, Send
from distributor.sending.renders import render_variant, store_render
from distributor.vocabulary import DeliveryChannel, DeliveryState, SendState, Variant
from subscribers.address import normalise_address
from subscribers.models import SUPPRESSED, Subscriber
from subscribers.query import Audience

NOT_SENT = "not sent while the test waited; a test send is never retried later"
SUPPRESSED_TEST = "this address unsubscribed, bounced or complained: nothing is sent to it"


def create_test_send(
    session: Session,
    *,
    issue_id: int,
    addresses: Sequence[str],
    variant: Variant,
    settings: Settings,
    now: datetime,
) -> Send:
    """A running test send with one delivery per address, its message rendered first: a render
    error raises before anything is stored. Suppressed addresses are recorded as suppressed."""
    if session.get(Issue, issue_id) is None:
        raise NotFound(
            f"there is no issue with ID {issue_id}", code="issue.missing", issue=issue_id
        )
    emails = list(dict.fromkeys(normalise_address(address).email for address in addresses))
    send = Send(
        issue_id=issue_id,
        audience=Audience(addresses=tuple(emails)),
        variant=variant,
        channel=DeliveryChannel.EMAIL,
        state=SendState.RUNNING,
        is_test=True,
        scheduled_at=now,
        started_at=now,
        planned_at=now,
    )
    compiled = render_variant(session, send, variant, settings)
    session.add(send)
    session.flush()
    store_render(session, send.id, compiled)
    suppressed = set(
        session.scalars(
            select(Subscriber.email_key).where(
                Subscriber.email_key.in_([email.lower() for email in emails]),
                Subscriber.status.in_(SUPPRESSED),
            )
        )
    )
    session.add_all(
        Delivery(
            send_id=send.id,
            subscriber_id=None,
            channel=DeliveryChannel.EMAIL,
            address=email,
            name=None,
            variant=variant,
            **(
                {"state": DeliveryState.SUPPRESSED, "last_error": SUPPRESSED_TEST}
                if email.lower() in suppressed
                else {}
            ),
        )
        for email in emails
    )
    session.flush()
    return send


def finish_test_send(session: Session, send_id: int, now: datetime) -> None:
    """Whatever did not go out while the command waited fails now, and the send is done."""
    session.execute(
        update(Delivery)
        .where(Delivery.send_id == send_id, Delivery.state.in_(OPEN_DELIVERY_STATES))
        .values(
            state=DeliveryState.FAILED,
            claim_token=None,
            lease_until=None,
            not_before=None,
            last_error=func.coalesce(Delivery.last_error + "; ", "") + NOT_SENT,
            updated_at=now,
        )
    )
    finish_if_complete(session, send_id, now)
