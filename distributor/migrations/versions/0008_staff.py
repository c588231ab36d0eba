"""staff: accounts with roles, browser sessions, API tokens, the audit log

Revision ID: 0008_staff
Revises: 0007_wechat_tokens
Create Date: 2026-11-28 06:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import distributor.db

revision = "0008_staff"
down_revision = "0007_wechat_tokens"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = distributor.db.UTCDateTime(timezone=True)


def _user_fk(table: str, ondelete: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["user_id"], ["staff_users.id"],
                                   name=op.f(f"fk_{table}_user_id_staff_users"),
                                   ondelete=ondelete)


def upgrade() -> None:
    op.create_table(
        "staff_users",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("role", sa.Enum("viewer", "editor", "admin", name="role", native_enum=False,
                                  length=20), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_users")),
        sa.UniqueConstraint("name", name=op.f("uq_staff_users_name")),
    )
    op.create_table(
        "staff_api_tokens",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("revoked_at", WHEN, nullable=True),
        sa.Column("last_used_at", WHEN, nullable=True),
        _user_fk("staff_api_tokens", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_staff_api_tokens_token_hash")),
    )
    op.create_index(op.f("ix_staff_api_tokens_user_id"), "staff_api_tokens", ["user_id"])
    op.create_table(
        "staff_audit",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("user_id", BIG_ID, nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_kind", sa.String(length=32), nullable=True),
        sa.Column("target_id", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        _user_fk("staff_audit", "SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_audit")),
    )
    op.create_index("ix_staff_audit_target", "staff_audit", ["target_kind", "target_id", "id"])
    op.create_index(op.f("ix_staff_audit_user_id"), "staff_audit", ["user_id"])
    op.create_table(
        "staff_sessions",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("id_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", BIG_ID, nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("last_seen_at", WHEN, nullable=False),
        _user_fk("staff_sessions", "CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_staff_sessions")),
        sa.UniqueConstraint("id_hash", name=op.f("uq_staff_sessions_id_hash")),
    )
    op.create_index(op.f("ix_staff_sessions_user_id"), "staff_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_table("staff_sessions")
    op.drop_table("staff_audit")
    op.drop_table("staff_api_tokens")
    op.drop_table("staff_users")
