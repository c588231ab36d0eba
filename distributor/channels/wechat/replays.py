"""The WeChat callbacks already taken, shared by every web process through the database.

A callback's signature covers only its query, so a URL seen once (proxy logs keep query strings)
could be posted again with any body while its timestamp is fresh. Each verified callback's
``timestamp:nonce`` is written in the same transaction as what it does: a second one is refused,
and a callback whose work failed (rolled back) can still be retried by WeChat.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, delete
from sqlalchemy.orm import Session

from distributor.channels.wechat.models import WechatCallbackNonce

_NONCES = cast(Table, WechatCallbackNonce.__table__)


def take_once(session: Session, key: str, expires_at: float, *, now: float) -> bool:
    """Record the callback ``key`` until ``expires_at``; False when it was taken already (a
    replay, or the same request at another process at the same moment: the insert decides).
    Keys out of their window are dropped on the way."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect: Any = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(delete(_NONCES).where(_NONCES.c.expires_at < now))
    inserted = session.execute(
        dialect.insert(_NONCES)
        .values(key=key, expires_at=expires_at)
        .on_conflict_do_nothing()
        .returning(_NONCES.c.key)
    ).scalar()
    return inserted is not None
