"""Which worker and beat processes are alive, as each says every few seconds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from distributor.db import Base


class ProcessHeartbeat(Base):
    """One row per running worker or beat process, written every ``HEARTBEAT_SECONDS`` and
    removed when it stops: a restore refuses while one is fresh (it would write into the
    database being replaced). A killed process leaves its row, which goes stale."""

    __tablename__ = "process_heartbeats"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # role@host:pid
    seen_at: Mapped[datetime]

    def __repr__(self) -> str:
        return f"<ProcessHeartbeat {self.name} {self.seen_at}>"
