"""Tables for the people who read the newsletter, the lists they are on and the tags they carry.

A subscriber's ``status`` is the one switch for sending: only ``active`` people are ever selected.
Unsubscribed, bounced and complained addresses are *suppressed*: nothing an operator does (an
import, ``subscribers add``) turns them back on; only the person's own confirmation does.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, ForeignKey, Index, String, Table, Text, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from distributor.db import Base, BigId, CreatedAt, Id, Timestamp, UpdatedAt
from distributor.vocabulary import FailureCause, Variant

# Column widths, in characters; the importer reports longer values instead of truncating them.
EMAIL_MAX = 254  # RFC 5321 path limit
NAME_MAX = 200
OPENID_MAX = 64  # WeChat openids are 28 characters today
LOCALE_MAX = 35  # longest BCP 47 tag in practical use
SOURCE_MAX = 200
LIST_NAME_MAX = 100
TAG_NAME_MAX = 100
DESCRIPTION_MAX = 500
DEFAULT_LOCALE = "zh-CN"


class SubscriberStatus(StrEnum):
    """Where a person stands with us, across every list."""

    PENDING = "pending"  # signed up, has not clicked the confirmation link yet
    ACTIVE = "active"  # receives the lists they are subscribed to
    UNSUBSCRIBED = "unsubscribed"  # said stop
    BOUNCED = "bounced"  # the address does not exist or refuses mail
    COMPLAINED = "complained"  # reported a message as spam


SUPPRESSED = frozenset(
    {SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED, SubscriberStatus.COMPLAINED}
)
# The person themselves said stop: they are on no list any more, whatever a file says.
OPTED_OUT = frozenset({SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.COMPLAINED})


class SubscriptionStatus(StrEnum):
    """A person's standing on one list."""

    PENDING = "pending"  # asked for, waiting for the confirmation link
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"


class ChannelPreference(StrEnum):
    """How a subscriber wants to receive issues."""

    EMAIL = "email"
    WECHAT = "wechat"
    BOTH = "both"


subscriber_tags = Table(
    "subscriber_tags",
    Base.metadata,
    Column(
        "subscriber_id",
        BigId,
        ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column(
        "tag_id", BigId, ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True
    ),
)


class Subscriber(Base):
    """One person, known by their address; ``email_key`` makes it unique case-insensitively."""

    __tablename__ = "subscribers"
    # The staff API's searches by address and name prefix, on PostgreSQL in the "C" collation
    # (migration 0011; PostgreSQL does not report an index's collation, so none is written here).
    __table_args__ = (
        Index("ix_subscribers_email_key_c", "email_key"),
        Index("ix_subscribers_name_key", text("lower(name::text)"), "id").ddl_if(
            dialect="postgresql"
        ),
    )

    id: Mapped[Id]
    # As given, with the domain normalised (lower case, IDNA); the key is all lower case.
    email: Mapped[str] = mapped_column(String(EMAIL_MAX))
    email_key: Mapped[str] = mapped_column(String(EMAIL_MAX), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    openid: Mapped[str | None] = mapped_column(String(OPENID_MAX), index=True)
    locale: Mapped[str] = mapped_column(String(LOCALE_MAX), default=DEFAULT_LOCALE)
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[SubscriberStatus] = mapped_column(default=SubscriberStatus.PENDING)
    channel: Mapped[ChannelPreference] = mapped_column(default=ChannelPreference.EMAIL)
    # One of the email variants (full, digest, text): what they receive by email.
    format: Mapped[Variant] = mapped_column(default=Variant.FULL)
    # Where and when the person agreed to receive the newsletter (an import, a form, the CLI).
    consent_source: Mapped[str | None] = mapped_column(String(SOURCE_MAX))
    consent_at: Mapped[Timestamp | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )
    tags: Mapped[list[Tag]] = relationship(secondary=subscriber_tags, order_by="Tag.name")

    def __repr__(self) -> str:
        return f"<Subscriber {self.id} {self.email} {self.status}>"


class List(Base):
    """A mailing list people subscribe to, e.g. 会员快讯."""

    __tablename__ = "lists"

    id: Mapped[Id]
    name: Mapped[str] = mapped_column(String(LIST_NAME_MAX), unique=True)
    description: Mapped[str] = mapped_column(String(DESCRIPTION_MAX), default="")
    # Anyone may sign up for a public list on its web page (double opt-in), and leave or rejoin
    # it from their preferences page; the others are the staff's to fill.
    public: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[CreatedAt]

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="mailing_list", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<List {self.id} {self.name!r}>"


class Subscription(Base):
    """A subscriber on a list, with a status of its own: one may leave a list and stay on others."""

    __tablename__ = "subscriptions"

    subscriber_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("lists.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    status: Mapped[SubscriptionStatus]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    mailing_list: Mapped[List] = relationship(back_populates="subscriptions")

    def __repr__(self) -> str:
        return f"<Subscription {self.subscriber_id}→{self.list_id} {self.status}>"


class Tag(Base):
    """A free label on subscribers (基层工会, 青年), for choosing an audience within lists."""

    __tablename__ = "tags"

    id: Mapped[Id]
    name: Mapped[str] = mapped_column(String(TAG_NAME_MAX), unique=True)

    def __repr__(self) -> str:
        return f"<Tag {self.id} {self.name!r}>"


class SubscriberEvent(Base):
    """Why a person's status changed when nobody asked through a link: a bounce or a complaint
    that suppressed them, or staff lifting such a suppression. Kept, never edited."""

    __tablename__ = "subscriber_events"
    __table_args__ = (Index("ix_subscriber_events_cause_at", "cause", "at"),)

    id: Mapped[Id]
    subscriber_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    old_status: Mapped[SubscriberStatus]
    new_status: Mapped[SubscriberStatus]
    reason: Mapped[str] = mapped_column(Text)
    source: Mapped[str] = mapped_column(String(SOURCE_MAX))  # "bounce", "complaint", "staff", …
    # The evidence of a suppression for a failure: its cause, the remote server's words, and
    # the send it came from (staff list and lift suppressions by cause, domain and time).
    cause: Mapped[FailureCause | None]
    evidence: Mapped[str | None] = mapped_column(Text)
    send_id: Mapped[int | None] = mapped_column(BigId)
    at: Mapped[CreatedAt]

    def __repr__(self) -> str:
        return f"<SubscriberEvent {self.subscriber_id} {self.old_status}→{self.new_status}>"


class Resubscription(Base):
    """Someone who said stop asked (by a sign-up) to come back to a list: nothing about them
    changes until they follow the link sent to their address, which names this request by its
    ``code``. One request a person at a time, renewed at most once a day, so strangers cannot
    make us mail them every time."""

    __tablename__ = "resubscriptions"

    subscriber_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    list_id: Mapped[int] = mapped_column(BigId, ForeignKey("lists.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))  # random; in the confirm link, used once
    requested_at: Mapped[Timestamp]

    def __repr__(self) -> str:
        return f"<Resubscription {self.subscriber_id} list {self.list_id}>"
