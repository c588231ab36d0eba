"""The access token of each Official Account, shared by every worker (embedded set-up: no Redis)."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from distributor.db import Base


class WechatToken(Base):
    """One row per AppID: the token, when to refresh it, and who is fetching a new one (lease).

    Times are seconds since the epoch, like the rate limiter's: compared with ``time.time()``.
    """

    __tablename__ = "wechat_tokens"

    app_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    access_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[float] = mapped_column(default=0.0)
    refresh_at: Mapped[float] = mapped_column(default=0.0)
    lease_holder: Mapped[str | None] = mapped_column(String(32))
    lease_until: Mapped[float] = mapped_column(default=0.0)

    def __repr__(self) -> str:
        return f"<WechatToken {self.app_id}>"


class WechatCallbackNonce(Base):
    """A callback already taken: its ``timestamp:nonce``, kept until its timestamp is out of the
    freshness window, so the same signed request replayed (a URL seen in a proxy's log) is
    refused by every web process. ``expires_at`` in seconds since the epoch."""

    __tablename__ = "wechat_callback_nonces"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    expires_at: Mapped[float] = mapped_column(index=True)

    def __repr__(self) -> str:
        return f"<WechatCallbackNonce {self.key}>"
