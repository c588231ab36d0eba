"""The readers of each list, counted by database triggers (migration 0020) per the facts that
decide whom a send reaches: the subscription's status, the subscriber's status, channel and
format, whether mail can reach their address, and whether they have a WeChat OpenID.

A send to one list is then counted from a few dozen rows instead of a pass over its million
readers: the create form's live count, the confirmation, a draft's left-out page. Each key is
judged in Python by :class:`ReaderKind`, which states the conditions of
:mod:`subscribers.query` and :mod:`distributor.sending.planner` for one kind of reader; a test
compares every figure with the SQL ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, SmallInteger, String, case, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from distributor.db import Base, BigId
from subscribers.models import List, Subscriber, Subscription
from subscribers.query import has_email

# The OpenID column, in three: WeChat reaches only a set one, and a reader with none at all (not
# an empty one) falls back to email (``subscribers.query.fell_back_to_email``).
NO_OPENID, EMPTY_OPENID, OPENID = 0, 1, 2


class ListReaders(Base):
    """The subscriptions to one list of one kind of reader; ``shard``: the writing connection
    (PostgreSQL backend pid), so that concurrent writers never wait on one counter row."""

    __tablename__ = "list_readers"

    list_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    subscription: Mapped[str] = mapped_column(String(20), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), primary_key=True)
    channel: Mapped[str] = mapped_column(String(20), primary_key=True)
    format: Mapped[str] = mapped_column(String(20), primary_key=True)
    email: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    openid: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    shard: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    n: Mapped[int] = mapped_column(BigInteger)

    def __repr__(self) -> str:
        return f"<ListReaders {self.list_id} {self.subscription}/{self.status}={self.n}>"


@dataclass(frozen=True)
class ReaderKind:
    """One key of the kept counts: everything a send's conditions ask of a list's reader."""

    subscription: str  # their subscription's status on the list
    status: str  # the subscriber's
    channel: str  # the channel they chose
    format: str  # the email format they chose
    mailable: bool  # an address mail can reach
    openid: int  # NO_OPENID, EMPTY_OPENID or OPENID

    def reached_by_email(self, *, wechat: bool) -> bool:
        """As ``reach_conditions(EMAIL)``: an address, and email chosen or fallen back to."""
        return self.mailable and (
            self.channel in ("email", "both") or self.fell_back(wechat=wechat)
        )

    def reached_by_wechat(self) -> bool:
        """As ``reach_conditions(WECHAT)``: a (non-empty) OpenID and WeChat chosen."""
        return self.openid == OPENID and self.channel in ("wechat", "both")

    def reached(self, channel: str, *, wechat: bool) -> bool:
        return (
            self.reached_by_email(wechat=wechat)
            if channel == "email"
            else self.reached_by_wechat()
        )

    def fell_back(self, *, wechat: bool) -> bool:
        """As ``fell_back_to_email``: chose WeChat only, and WeChat cannot reach them."""
        return self.channel == "wechat" and (self.openid == NO_OPENID or not wechat)

    def on_wechat(self) -> bool:
        """Chose WeChat only and has an OpenID (possibly empty), as the left-out page asks."""
        return self.channel == "wechat" and self.openid != NO_OPENID


def list_ids(session: Session, names: tuple[str, ...]) -> list[int]:
    """The ids of the lists named (a name no list has is left out: it matches nobody)."""
    return list(session.scalars(select(List.id).where(List.name.in_(names))))


def readers_of(session: Session, list_id: int) -> dict[ReaderKind, int]:
    """The subscriptions to ``list_id`` per kind of reader, the shards added up."""
    t = ListReaders
    keys = (t.subscription, t.status, t.channel, t.format, t.email, t.openid)
    rows = session.execute(
        select(*keys, func.sum(t.n)).where(t.list_id == list_id).group_by(*keys)
    )
    return {
        ReaderKind(sub, status, channel, fmt, bool(email), int(openid)): int(n)
        for sub, status, channel, fmt, email, openid, n in rows
        if n
    }


def kind_columns() -> tuple[Any, ...]:
    """The key of :class:`ListReaders` as columns of a ``Subscription`` joined to its
    ``Subscriber``: what the triggers compute, for a count over some of the rows."""
    openid = Subscriber.openid
    return (
        Subscription.status,
        Subscriber.status,
        Subscriber.channel,
        Subscriber.format,
        case((has_email(), 1), else_=0),
        case((openid.is_(None), NO_OPENID), (openid == "", EMPTY_OPENID), else_=OPENID),
    )


def kind_of(row: Any) -> ReaderKind:
    """A row of :func:`kind_columns` as a :class:`ReaderKind`."""
    sub, status, channel, fmt, email, openid = (getattr(v, "value", v) for v in row)
    return ReaderKind(str(sub), str(status), str(channel), str(fmt), bool(email), int(openid))
