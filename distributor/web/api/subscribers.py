"""``/api/v1/subscribers``: search, add, edit, correct the address of, unsubscribe; care for one
person at their request (the dashboard's services: a note records who asked); list the
suppressed by cause and lift suppressions in bulk."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy.orm import Session

from distributor.automations.joins import record_joins
from distributor.campaigns.erasure import erase_subscriber
from distributor.db import utcnow
from distributor.errors import DistributorError
from distributor.staff.models import StaffUser
from distributor.vocabulary import FailureCause, Variant
from distributor.web.api.access import Editor, Viewer, audit
from distributor.web.api.errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from distributor.web.api.models import (
    AttributesIn,
    CareNote,
    EmailIn,
    ErasedOut,
    ItemId,
    ListsIn,
    MembershipOut,
    Moment,
    ResubscribeIn,
    SubscriberAdded,
    SubscriberDetailOut,
    SubscriberEdit,
    SubscriberIn,
    SubscriberOut,
    SuppressionLiftIn,
    SuppressionLiftOut,
    SuppressionOut,
    TagsIn,
    UnsuppressIn,
)
from distributor.web.api.pagination import Cursor, Limit, Page, cursors
from distributor.web.pages import WebDep
from subscribers.address import DOMAIN_PATTERN
from subscribers.care import (
    required_note,
    resubscribe_at_request,
    set_attributes,
    set_lists,
    set_tags,
    unsubscribe_at_request,
)
from subscribers.models import Subscriber, SubscriberStatus
from subscribers.store import (
    add_subscriber,
    change_address,
    get_subscriber,
    memberships,
    search_subscribers,
    unsubscribe,
    unsuppress,
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
    since = utcnow()
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
        if body.welcome:
            record_joins(session, since, utcnow(), subscriber_id=subscriber.id)
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


def subscriber_detail(s: Subscriber) -> SubscriberDetailOut:
    return SubscriberDetailOut(
        **subscriber_out(s).model_dump(),
        tags=sorted(tag.name for tag in s.tags),
        attributes=dict(s.attributes or {}),
    )


@router.get(
    "/{subscriber_id}", response_model=SubscriberDetailOut, responses=NOT_FOUND, summary="Show"
)
def show(subscriber_id: ItemId, web: WebDep, user: Viewer) -> SubscriberDetailOut:
    with web.transaction() as session:
        return subscriber_detail(get_subscriber(session, subscriber_id))


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
def unsubscribe_one(
    subscriber_id: ItemId, web: WebDep, user: Editor, body: CareNote | None = None
) -> SubscriberOut:
    """From every list, as if they had used the link themselves. With a `note` (who asked, and
    how: by phone, in a letter), as the dashboard does it: the note is kept in their history,
    and one unsubscribed already is refused (422)."""
    with web.transaction() as session:
        subscriber = get_subscriber(session, subscriber_id)
        if body is None:
            unsubscribe(session, subscriber)
        else:
            unsubscribe_at_request(session, subscriber, note=body.note, source=_source(user))
        detail = {} if body is None else {"note": body.note}
        audit(session, user, "subscriber.unsubscribe", "subscriber", subscriber_id, detail)
        return _reloaded(session, subscriber_id)


def _source(user: StaffUser) -> str:
    """Who made a change, in the reader's history (as the dashboard writes it)."""
    return f"staff {user.name}"


def _cared(
    web: WebDep,
    user: StaffUser,
    subscriber_id: int,
    action: str,
    act: Callable[[Session, Subscriber], dict[str, object]],
) -> SubscriberDetailOut:
    """One act of care through its service, audited with what ``act`` returns, in one
    transaction; answered with the person as they now stand."""
    with web.transaction() as session:
        detail = act(session, get_subscriber(session, subscriber_id))
        audit(session, user, action, "subscriber", subscriber_id, detail)
        session.expire_all()
        return subscriber_detail(get_subscriber(session, subscriber_id))


@router.post(
    "/{subscriber_id}/resubscribe",
    response_model=SubscriberDetailOut,
    responses=NOT_FOUND,
    summary="Send again, with their consent",
)
def resubscribe(
    subscriber_id: ItemId, body: ResubscribeIn, web: WebDep, user: Editor
) -> SubscriberDetailOut:
    """One who unsubscribed asked to be sent again: active on `lists`, the `note` (their
    consent: who asked, how) kept in their history and as their consent. A bounce or a
    complaint is lifted with `unsuppress` instead."""

    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        resubscribe_at_request(
            session, subscriber, body.lists, note=body.note, source=_source(user)
        )
        return {"note": body.note, "lists": body.lists}

    return _cared(web, user, subscriber_id, "subscriber.resubscribe", act)


@router.put(
    "/{subscriber_id}/lists",
    response_model=SubscriberDetailOut,
    responses=NOT_FOUND,
    summary="Set the lists",
)
def put_lists(
    subscriber_id: ItemId, body: ListsIn, web: WebDep, user: Editor
) -> SubscriberDetailOut:
    """On exactly `lists` (pending for one not confirmed yet), the others left; one who said
    stop joins none (422) until sent again."""

    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        set_lists(session, subscriber, body.lists)
        return {"lists": body.lists}

    return _cared(web, user, subscriber_id, "subscriber.lists", act)


@router.put(
    "/{subscriber_id}/tags",
    response_model=SubscriberDetailOut,
    responses=NOT_FOUND,
    summary="Set the tags",
)
def put_tags(subscriber_id: ItemId, body: TagsIn, web: WebDep, user: Editor) -> SubscriberDetailOut:
    """Exactly `tags` (a new name makes the tag)."""

    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        set_tags(session, subscriber, body.tags)
        return {"tags": body.tags}

    return _cared(web, user, subscriber_id, "subscriber.labels", act)


@router.put(
    "/{subscriber_id}/attributes",
    response_model=SubscriberDetailOut,
    responses=NOT_FOUND,
    summary="Set the attributes",
)
def put_attributes(
    subscriber_id: ItemId, body: AttributesIn, web: WebDep, user: Editor
) -> SubscriberDetailOut:
    """Exactly `attributes` (name: value, as text), which segments match on."""

    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        set_attributes(subscriber, body.attributes)
        return {"attributes": sorted(body.attributes)}

    return _cared(web, user, subscriber_id, "subscriber.labels", act)


@router.post(
    "/{subscriber_id}/unsuppress",
    response_model=SubscriberDetailOut,
    responses=NOT_FOUND,
    summary="Lift a suppression",
)
def lift_one(
    subscriber_id: ItemId, body: UnsuppressIn, web: WebDep, user: Editor
) -> SubscriberDetailOut:
    """A bounce or a complaint lifted knowingly (the address was fixed, it was a mistake):
    active again, the `reason` kept in their history. An unsubscribe is not lifted here (422):
    only the person undoes it."""

    def act(session: Session, subscriber: Subscriber) -> dict[str, object]:
        unsuppress(session, subscriber.email, reason=body.reason, source=_source(user))
        return {"reason": body.reason}

    return _cared(web, user, subscriber_id, "subscriber.unsuppress", act)


@router.post(
    "/{subscriber_id}/erase",
    response_model=ErasedOut,
    responses=NOT_FOUND,
    summary="Erase a person",
)
def erase(subscriber_id: ItemId, body: CareNote, web: WebDep, user: Editor) -> ErasedOut:
    """Personal-data deletion at the person's request: they are gone (address, name, history,
    lists); their deliveries stay in the sends' counts, anonymous. The `note` says who asked."""
    note = required_note(body.note)
    with web.transaction() as session:
        deliveries = erase_subscriber(session, subscriber_id)
        detail = {"note": note, "deliveries": deliveries}
        audit(session, user, "subscriber.erase", "subscriber", subscriber_id, detail)
    return ErasedOut(subscriber_id=subscriber_id, deliveries=deliveries)
