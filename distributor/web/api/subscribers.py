"""``/api/v1/subscribers``: search, add, edit, correct the address of, unsubscribe; list the
suppressed by cause and lift suppressions in bulk."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from distributor.errors import DistributorError
from distributor.vocabulary import FailureCause, Variant
from distributor.web.api.access import Editor, Viewer, audit
from distributor.web.api.errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from distributor.web.api.models import (
    EmailIn,
    ItemId,
    MembershipOut,
    Moment,
    SubscriberAdded,
    SubscriberEdit,
    SubscriberIn,
    SubscriberOut,
    SuppressionLiftIn,
    SuppressionLiftOut,
    SuppressionOut,
)
from distributor.web.api.pagination import Cursor, Limit, Page, cursors
from distributor.web.pages import WebDep
from subscribers.address import DOMAIN_PATTERN
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.store import (
    add_subscriber,
    change_address,
    get_subscriber,
    memberships,
    search_subscribers,
    unsubscribe,
)
from subscribers.suppressions import (
    SuppressionFilter,
    count_suppressions,
    lift_suppressions,
    list_suppressions,
)

router = APIRouter(prefix="/api/v1/subscribers", tags=["subscribers"], responses=COMMON_ERRORS)
Prefix = Annotated[str | None, Query(max_length=320)]


def subscriber_out(s: Subscriber) -> SubscriberOut:
    return SubscriberOut(
        id=s.id,
        email=s.email,
        name=s.name,
        status=s.status,
        channel=s.channel,
        format=s.format.value,
        locale=s.locale,
        openid=s.openid,
        lists=[MembershipOut(list=name, status=status) for name, status in memberships(s)],
        created_at=s.created_at,
    )


@router.get("", response_model=Page[SubscriberOut], responses=NOT_FOUND, summary="Search")
def search(
    web: WebDep,
    user: Viewer,
    email: Annotated[Prefix, Query(description="The start of the address, any case.")] = None,
    name: Annotated[Prefix, Query(description="The start of the name.")] = None,
    list_name: Annotated[str | None, Query(alias="list", max_length=100)] = None,
    status: SubscriberStatus | None = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[SubscriberOut]:
    """In address order when searched by address, in name order by name, else in ID order."""
    kind = f"subscribers:{email or ''}:{name or ''}:{list_name or ''}:{status or ''}"
    with web.reading() as session:
        found = search_subscribers(
            session,
            email_prefix=email or None,
            name_prefix=name or None,
            list_name=list_name,
            status=status,
            after=cursors(web).decode(kind, cursor),
            limit=limit,
        )
        items = [subscriber_out(s) for s in found.subscribers]
    return Page(
        items=items,
        next_cursor=cursors(web).encode(kind, list(found.after)) if found.after else None,
    )


@router.post(
    "",
    response_model=SubscriberAdded,
    responses={**NOT_FOUND, 201: {"model": SubscriberAdded, "description": "Added."}},
    summary="Add",
)
def add(body: SubscriberIn, web: WebDep, user: Editor, response: Response) -> SubscriberAdded:
    """An active subscriber (201), or a known address's details updated (200): a known
    address keeps its status, so nobody who unsubscribed is signed up again."""
    with web.transaction() as session:
        added = add_subscriber(
            session,
            body.email,
            name=body.name,
            lists=body.lists,
            openid=body.openid,
            channel=body.channel,
            format=Variant(body.format) if body.format else None,
        )
        subscriber = added.subscriber
        audit(
            session,
            user,
            "subscriber.add" if added.created else "subscriber.update",
            "subscriber",
            subscriber.id,
            body.model_dump(mode="json"),
        )
        out = SubscriberAdded(subscriber=subscriber_out(subscriber), created=added.created)
    response.status_code = 201 if added.created else 200
    return out


@router.get(
    "/suppressions", response_model=Page[SuppressionOut], summary="List suppressions by cause"
)
def suppressions(
    web: WebDep,
    user: Viewer,
    cause: FailureCause | None = None,
    domain: Annotated[
        str | None, Query(max_length=253, pattern=DOMAIN_PATTERN, description="e.g. qq.com")
    ] = None,
    since: Annotated[Moment | None, Query(description="Made at or after.")] = None,
    until: Annotated[Moment | None, Query(description="Made before.")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[SuppressionOut]:
    """Readers suppressed by a bounce or a complaint, in ID order, with the cause, when, the
    send and the remote server's words."""
    where = SuppressionFilter.of(cause, domain, since, until, zone=web.settings.zone)
    kind = f"suppressions:{cause or ''}:{where.domain or ''}:{since or ''}:{until or ''}"
    after = cursors(web).decode(kind, cursor)
    with web.reading() as session:
        rows = list_suppressions(session, where, limit=limit, after=after[0] if after else None)
    items = [
        SuppressionOut(
            subscriber_id=row.subscriber_id,
            email=row.email,
            status=SubscriberStatus(row.status),
            cause=FailureCause(row.cause) if row.cause else None,
            reason=row.reason,
            evidence=row.evidence,
            send_id=row.send_id,
            at=row.at,
        )
        for row in rows
    ]
    full = len(items) == limit
    return Page(
        items=items,
        next_cursor=cursors(web).encode(kind, [items[-1].subscriber_id]) if full else None,
    )


@router.post(
    "/suppressions/lift", response_model=SuppressionLiftOut, summary="Lift suppressions in bulk"
)
def lift(body: SuppressionLiftIn, web: WebDep, user: Editor) -> SuppressionLiftOut:
    """Make every reader suppressed for ``cause`` at ``domain`` within ``since``/``until``
    active again (our IP was on a provider's blocklist that day), each lifting logged; or, with
    ``dry_run``, only count them."""
    where = SuppressionFilter.of(
        body.cause, body.domain, body.since, body.until, zone=web.settings.zone
    )
    if not any((body.cause, body.domain, body.since, body.until)):
        raise DistributorError(
            "name the suppressions to lift: cause, domain, since or until",
            code="suppression.no_filter",
        )
    with web.transaction() as session:
        if body.dry_run:
            return SuppressionLiftOut(count=count_suppressions(session, where), dry_run=True)
        reason = body.reason or f"lifted in bulk by {user.name} through the API"
        count = lift_suppressions(session, where, reason=reason, source=f"staff: {user.name}")
        audit(session, user, "suppressions.lift", "subscriber", "bulk",
              body.model_dump(mode="json", exclude_none=True) | {"count": count})  # fmt: skip
    return SuppressionLiftOut(count=count, dry_run=False)


@router.get("/{subscriber_id}", response_model=SubscriberOut, responses=NOT_FOUND, summary="Show")
def show(subscriber_id: ItemId, web: WebDep, user: Viewer) -> SubscriberOut:
    with web.transaction() as session:
        return subscriber_out(get_subscriber(session, subscriber_id))


def _reloaded(session: Session, subscriber_id: int) -> SubscriberOut:
    session.expire_all()
    return subscriber_out(get_subscriber(session, subscriber_id))


@router.patch("/{subscriber_id}", response_model=SubscriberOut, responses=NOT_FOUND, summary="Edit")
def edit(subscriber_id: ItemId, body: SubscriberEdit, web: WebDep, user: Editor) -> SubscriberOut:
    """Change the name, channel, format or openid, or add lists; the status stays."""
    with web.transaction() as session:
        subscriber = get_subscriber(session, subscriber_id)
        add_subscriber(
            session,
            subscriber.email,
            name=body.name,
            lists=body.lists,
            openid=body.openid,
            channel=body.channel,
            format=Variant(body.format) if body.format else None,
        )
        audit(
            session,
            user,
            "subscriber.update",
            "subscriber",
            subscriber_id,
            body.model_dump(mode="json", exclude_none=True),
        )
        return _reloaded(session, subscriber_id)


@router.post(
    "/{subscriber_id}/email",
    response_model=SubscriberOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Correct the address",
)
def set_email(subscriber_id: ItemId, body: EmailIn, web: WebDep, user: Editor) -> SubscriberOut:
    """The same person (ID, status, lists, history) at a new address; refused when another
    subscriber has it."""
    with web.transaction() as session:
        subscriber = get_subscriber(session, subscriber_id)
        old = subscriber.email
        change_address(session, old, body.email)
        audit(
            session,
            user,
            "subscriber.set-email",
            "subscriber",
            subscriber_id,
            {"from": old, "to": subscriber.email},
        )
        return _reloaded(session, subscriber_id)


@router.post(
    "/{subscriber_id}/unsubscribe",
    response_model=SubscriberOut,
    responses=NOT_FOUND,
    summary="Unsubscribe",
)
def unsubscribe_one(subscriber_id: ItemId, web: WebDep, user: Editor) -> SubscriberOut:
    """From every list, as if they had used the link themselves."""
    with web.transaction() as session:
        unsubscribe(session, get_subscriber(session, subscriber_id))
        audit(session, user, "subscriber.unsubscribe", "subscriber", subscriber_id)
        return _reloaded(session, subscriber_id)
