"""Tables for staff accounts, their browser sessions and API tokens, and the audit log.

Secrets are never stored: a session id and an API token are kept as their SHA-256 (both are
long random strings, so a fast hash is enough), a password as its argon2id hash.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from distributor.db import Base, BigId, CreatedAt, Id, Timestamp

STAFF_NAME_MAX = 64
PASSWORD_HASH_MAX = 200
SECRET_HASH_LEN = 64  # hex SHA-256
ACTION_MAX = 64
TARGET_KIND_MAX = 32
TARGET_ID_MAX = 64


class Role(StrEnum):
    """What a staff member may do: viewers look, editors also send, admins also manage staff."""

    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def can_write(self) -> bool:
        return self in (Role.EDITOR, Role.ADMIN)

    @property
    def can_admin(self) -> bool:
        return self is Role.ADMIN

    def allows(self, needed: Role) -> bool:
        """True when this role may do what ``needed`` may (roles are ordered)."""
        order = list(Role)
        return order.index(self) >= order.index(needed)


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[Id]
    name: Mapped[str] = mapped_column(String(STAFF_NAME_MAX), unique=True)
    role: Mapped[Role]
    password_hash: Mapped[str | None] = mapped_column(String(PASSWORD_HASH_MAX))
    disabled: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[CreatedAt]


class ApiToken(Base):
    """A bearer token for the JSON API; shown once when issued, then only its hash is known."""

    __tablename__ = "staff_api_tokens"

    id: Mapped[Id]
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    token_hash: Mapped[str] = mapped_column(String(SECRET_HASH_LEN), unique=True)
    created_at: Mapped[CreatedAt]
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()

    user: Mapped[StaffUser] = relationship(lazy="joined")


class StaffSession(Base):
    """A signed-in browser: the cookie holds the id, the table its hash."""

    __tablename__ = "staff_sessions"

    id: Mapped[Id]
    id_hash: Mapped[str] = mapped_column(String(SECRET_HASH_LEN), unique=True)
    user_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[CreatedAt]
    expires_at: Mapped[Timestamp]
    last_seen_at: Mapped[Timestamp]

    user: Mapped[StaffUser] = relationship(lazy="joined")


class AuditEntry(Base):
    """One thing a staff member did: ``action`` on ``target_kind`` ``target_id``."""

    __tablename__ = "staff_audit"
    __table_args__ = (Index("ix_staff_audit_target", "target_kind", "target_id", "id"),)

    id: Mapped[Id]
    user_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("staff_users.id", ondelete="SET NULL"), index=True
    )
    actor: Mapped[str] = mapped_column(String(STAFF_NAME_MAX))  # kept when the user is gone
    action: Mapped[str] = mapped_column(String(ACTION_MAX))
    target_kind: Mapped[str | None] = mapped_column(String(TARGET_KIND_MAX))
    target_id: Mapped[str | None] = mapped_column(String(TARGET_ID_MAX))
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    at: Mapped[CreatedAt]
