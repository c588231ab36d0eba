"""Alembic environment: the URL comes from the caller (``distributor db upgrade``), never a file."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from distributor.db import Base, get_engine
from distributor.models import load_all_models

load_all_models()
target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


url = context.config.get_main_option("sqlalchemy.url")
assert url, "set sqlalchemy.url on the Alembic config (distributor.db.alembic_config does)"
if context.is_offline_mode():
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    with get_engine(url).connect() as connection:
        _run(connection)
