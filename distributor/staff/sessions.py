"""Server-side browser sessions: the cookie carries a random id, the table its hash, so
signing out, disabling an account or changing its password ends a session at once."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from distributor.db import utcnow
from distributor.errors import NotAuthenticated
from distributor.staff.models import StaffSession, StaffUser
from distributor.staff.secrets import new_secret, secret_hash

SESSION_LIFETIME = timedelta(hours=12)  # signed in for a working day at most
SESSION_IDLE = timedelta(hours=2)  # and signed out after two idle hours
LAST_SEEN_EVERY = timedelta(minutes=1)
SESSION_ID_MAX = 100


def start_session(session: Session, user: StaffUser, now: datetime | None = None) -> str:
    """A new session for ``user``; returns its id (for the cookie), never stored as such."""
    now = now or utcnow()
    session_id = new_secret()
    session.add(
        StaffSession(
            id_hash=secret_hash(session_id),
            user_id=user.id,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
            last_seen_at=now,
        )
    )
    session.execute(delete(StaffSession).where(StaffSession.expires_at < now))  # tidy up
    return session_id


def session_user(session: Session, session_id: str, now: datetime | None = None) -> StaffUser:
    """The enabled account signed in with ``session_id``, while the session is live."""
    now = now or utcnow()
    row = None
    if 0 < len(session_id) <= SESSION_ID_MAX:
        row = session.scalar(
            select(StaffSession).where(StaffSession.id_hash == secret_hash(session_id))
        )
    if (
        row is None
        or row.expires_at <= now
        or now - row.last_seen_at > SESSION_IDLE
        or row.user.disabled
    ):
        raise NotAuthenticated("the session has ended: sign in again", code="staff.session_ended")
    if now - row.last_seen_at >= LAST_SEEN_EVERY:
        row.last_seen_at = now
    return row.user


def end_session(session: Session, session_id: str) -> None:
    session.execute(delete(StaffSession).where(StaffSession.id_hash == secret_hash(session_id)))


def end_sessions_of(session: Session, user_id: int) -> None:
    session.execute(delete(StaffSession).where(StaffSession.user_id == user_id))
