"""What a subscriber does through the links in their messages; the web pages call only these.

Each takes the token from the link (see :mod:`subscribers.links`) and acts on the subscriber it
names, for the purpose it was signed for: an unsubscribe token cannot confirm, a confirm token
cannot unsubscribe. :class:`~distributor.errors.InvalidToken` for anything not genuine.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from distributor.errors import InvalidToken, NotFound
from distributor.issues.models import Variant
from subscribers.models import ChannelPreference, Subscriber
from subscribers.store import confirm, set_preferences, unsubscribe
from subscribers.tokens import TokenPurpose, TokenSigner

CONFIRM_MAX_AGE = 7 * 24 * 3600  # seconds a confirmation link stays valid
# Unsubscribe and preferences links never expire: an old issue's footer must still work.


def _subscriber(
    session: Session,
    signer: TokenSigner,
    token: str,
    purpose: TokenPurpose,
    max_age: int | None = None,
) -> Subscriber:
    subject = signer.verify(token, purpose, max_age=max_age)
    if not subject.isdigit():
        raise InvalidToken("this link is not valid for this page")
    subscriber = session.get(Subscriber, int(subject))
    if subscriber is None:
        raise NotFound("this subscription no longer exists")
    return subscriber


def unsubscribe_by_token(session: Session, signer: TokenSigner, token: str) -> Subscriber:
    """Unsubscribe from everything; following the link twice is harmless."""
    subscriber = _subscriber(session, signer, token, TokenPurpose.UNSUBSCRIBE)
    unsubscribe(session, subscriber)
    return subscriber


def confirm_by_token(session: Session, signer: TokenSigner, token: str) -> Subscriber:
    """Double opt-in: the person proves the address is theirs and becomes active."""
    subscriber = _subscriber(session, signer, token, TokenPurpose.CONFIRM, CONFIRM_MAX_AGE)
    confirm(session, subscriber)
    return subscriber


def update_preferences_by_token(
    session: Session,
    signer: TokenSigner,
    token: str,
    *,
    channel: ChannelPreference | None = None,
    format: Variant | None = None,
) -> Subscriber:
    """Change how (email, WeChat, both) and what (full, digest, text) the person receives."""
    subscriber = _subscriber(session, signer, token, TokenPurpose.PREFERENCES)
    set_preferences(subscriber, channel=channel, format=format)
    return subscriber
