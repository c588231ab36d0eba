"""api indexes: the staff API's searches and the metrics stay one index range at a million rows

Revision ID: 0011_api_indexes
Revises: 0010_bounces
Create Date: 2026-11-28 07:00:00

On PostgreSQL the search keys are indexed in the "C" collation: a btree in the database's
linguistic collation can serve neither ``LIKE 'prefix%'`` nor the keyset order of the search
(``distributor.db.prefix_key``). SQLite compares bytes already and its tables stay small.
"""

from __future__ import annotations

from alembic import op

revision = "0011_api_indexes"
down_revision = "0010_bounces"
branch_labels = None
depends_on = None

POSTGRES_INDEXES = {
    # A send's deliveries searched by the start of their address.
    "ix_deliveries_send_address_key": 'deliveries (send_id, (lower(address) COLLATE "C"), id)',
    # Subscribers by the start of their address (email_key is lower-case already) or name.
    "ix_subscribers_email_key_c": 'subscribers ((email_key COLLATE "C"))',
    "ix_subscribers_name_key": 'subscribers ((lower(name) COLLATE "C"), id)',
}


def upgrade() -> None:
    op.create_index("ix_delivery_attempts_at", "delivery_attempts", ["at"])
    if op.get_bind().dialect.name == "postgresql":
        for name, definition in POSTGRES_INDEXES.items():
            op.execute(f"CREATE INDEX {name} ON {definition}")
    else:  # the same name, so that both schemas match the models (where it repeats the unique)
        op.create_index("ix_subscribers_email_key_c", "subscribers", ["email_key"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name in POSTGRES_INDEXES:
            op.execute(f"DROP INDEX {name}")
    else:
        op.drop_index("ix_subscribers_email_key_c", table_name="subscribers")
    op.drop_index("ix_delivery_attempts_at", table_name="delivery_attempts")
