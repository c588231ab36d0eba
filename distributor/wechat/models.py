"""The WeChat side of a send: its prepared message and its mass-send jobs.

WeChat has no per-reader result for a mass send, only jobs with counts, so the truth about the
WeChat readers of a send is one row per job. Each row (and its ``clientmsgid``) is written before
WeChat is called: a retry after a lost answer, or after the worker died between the call and the
commit, repeats the same ``clientmsgid``, and WeChat answers with the job it already made (45065)
instead of making a second one.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from distributor.db import Base, BigId, CreatedAt, Id, UpdatedAt


class WechatJobState(StrEnum):
    """waiting → accepted → succeeded | failed; a refused call goes straight to failed. Before
    its first call a job goes to skipped when readers left: left with fewer than two, or (to all
    followers or a tag) replaced by jobs naming those still there.

    ``waiting`` also covers a call whose answer never came (``calls`` > 0): the next try repeats
    its ``clientmsgid``, so WeChat makes the job at most once.
    """

    WAITING = "waiting"
    ACCEPTED = "accepted"  # WeChat made the job (msg_id); its result is not known yet
    SUCCEEDED = "succeeded"  # WeChat reports the job done ("send success", SEND_SUCCESS)
    FAILED = "failed"  # refused, or WeChat reports the job failed
    SKIPPED = "skipped"  # readers left before it went (see above): WeChat never saw it


OPEN_JOB_STATES = (WechatJobState.WAITING, WechatJobState.ACCEPTED)


class WechatMessage(Base):
    """A send's WeChat message, ready for ``draft/add``: images uploaded and rewritten, the
    cover a permanent material. Made once per send; each job makes its own draft from it (WeChat
    consumes a draft with its mass send)."""

    __tablename__ = "wechat_messages"

    send_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("sends.id", ondelete="CASCADE"), primary_key=True
    )
    articles: Mapped[list[dict[str, Any]]] = mapped_column(JSON)  # DraftArticle fields
    created_at: Mapped[CreatedAt]

    def __repr__(self) -> str:
        return f"<WechatMessage {self.send_id}>"


class WechatJob(Base):
    """One mass send of a send: its WeChat deliveries ``first_delivery_id`` to
    ``last_delivery_id``, named as 2–10,000 OpenIDs, or (when they are exactly those) as all
    followers or one WeChat tag."""

    __tablename__ = "wechat_jobs"
    __table_args__ = (UniqueConstraint("send_id", "batch"),)

    id: Mapped[Id]
    send_id: Mapped[int] = mapped_column(BigId, ForeignKey("sends.id", ondelete="CASCADE"))
    batch: Mapped[int]  # 1, 2, … within the send
    clientmsgid: Mapped[str] = mapped_column(String(64), unique=True)
    # Whom the call names: "all" followers, one WeChat "tag", or the deliveries' "openids".
    target: Mapped[str] = mapped_column(String(10), default="openids")
    tag_id: Mapped[int | None]
    first_delivery_id: Mapped[int] = mapped_column(BigId)
    last_delivery_id: Mapped[int] = mapped_column(BigId)
    openids: Mapped[int]  # how many followers the job names
    state: Mapped[WechatJobState] = mapped_column(default=WechatJobState.WAITING)
    calls: Mapped[int] = mapped_column(default=0)  # mass-send calls made (each recorded first)
    # The worker calling WeChat for this job holds it until then (its call's timeout and more);
    # a worker that died holding it leaves it to the next after that.
    lease_until: Mapped[datetime | None]
    media_id: Mapped[str | None] = mapped_column(String(128))  # this job's draft
    # As WeChat gave them (numbers today, strings in newer docs): kept as text.
    msg_id: Mapped[str | None] = mapped_column(String(32), index=True)
    msg_data_id: Mapped[str | None] = mapped_column(String(32))
    wechat_status: Mapped[str | None] = mapped_column(String(40))  # "send success", "err(30003)"
    total: Mapped[int | None]  # WeChat's own counts, from MASSSENDJOBFINISH
    filtered: Mapped[int | None]
    sent: Mapped[int | None]
    errors: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(Text)
    accepted_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    def __repr__(self) -> str:
        return f"<WechatJob {self.send_id}#{self.batch} {self.state}>"
