"""Signing up on a public list's web page: double opt-in, the same answer for everyone.

The page never says whether an address was known: a sign-up for a known address changes nothing
of what is stored about that person (not their name) beyond asking for the list, and the person
must follow the confirmation message sent to them. Anyone can type any address, so a sign-up
never undoes what a reader chose or what their address did: for an address that bounced or
complained nothing is stored or sent; for one that unsubscribed, a request waits for their own
confirmation (:mod:`subscribers.returning`), mailed at most once a day.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.errors import NotFound
from subscribers.address import normalise_address
from subscribers.models import LOCALE_MAX, NAME_MAX, List, Subscriber, SubscriberStatus
from subscribers.returning import request_return
from subscribers.store import get_list, request_subscription

SIGNUP_SOURCE = "web sign-up"
# The address itself stopped us (it bounced, or its owner reported us): a sign-up changes nothing.
SUPPRESSED_BY_ADDRESS = frozenset({SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED})


@dataclass(frozen=True)
class PublicList:
    id: int
    name: str
    description: str


def public_list(session: Session, list_id: int) -> PublicList:
    """The list anyone may sign up for; NotFound for a private or missing one alike."""
    found = session.get(List, list_id)
    if found is None or not found.public:
        raise NotFound("there is no such list to sign up for", code="signup.no_list")
    return PublicList(found.id, found.name, found.description)


def set_list_public(session: Session, name: str, public: bool = True) -> None:
    """Open a list to sign-ups on its web page (and to its members' preferences), or close it."""
    get_list(session, name).public = public


def sign_up(session: Session, list_id: int, email: str, *, name: str, locale: str) -> int | None:
    """Ask for ``list_id`` for ``email``: the subscriber's id, to send the confirmation to, or
    None when nothing is to be sent (the address bounced or complained, or a confirmation went
    to someone who unsubscribed less than a day ago).

    :class:`~subscribers.address.InvalidAddress` for an address that cannot be one. A new person
    is stored pending with the name and page language given; a known one keeps theirs.
    """
    target = public_list(session, list_id)
    key = normalise_address(email).key
    known = session.execute(
        select(Subscriber.id, Subscriber.status).where(Subscriber.email_key == key)
    ).first()
    if known is not None and known.status in SUPPRESSED_BY_ADDRESS:
        return None
    if known is not None and known.status is SubscriberStatus.UNSUBSCRIBED:
        return known.id if request_return(session, known.id, target.id) else None
    subscriber = request_subscription(
        session,
        email,
        lists=[target.name],
        name=None if known else name.strip()[:NAME_MAX],
        source=SIGNUP_SOURCE,
    )
    if not known:
        subscriber.locale = locale[:LOCALE_MAX]
    session.flush()
    return subscriber.id
