"""issue images: the pictures of an issue imported from a .docx, and image blocks naming them

Revision ID: 0015_issue_images
Revises: 0014_machine_clicks
Create Date: 2026-12-06 06:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_issue_images"
down_revision = "0014_machine_clicks"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "issue_images",
        sa.Column("id", BIG_ID, nullable=False),
        sa.Column("issue_id", BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["issue_id"],
            ["issues.id"],
            name=op.f("fk_issue_images_issue_id_issues"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_issue_images")),
        sa.UniqueConstraint("issue_id", "name", name=op.f("uq_issue_images_issue_id_name")),
    )
    op.add_column("article_blocks", sa.Column("image", sa.String(length=40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("article_blocks") as batch:
        batch.drop_column("image")
    op.drop_table("issue_images")
