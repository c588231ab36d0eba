"""Migrations: the schema they build is the one the models declare, on both backends, and the
data of an older schema survives an upgrade (a send by preference, its deliveries)."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import text

from distributor.db import (
    Base,
    alembic_config,
    get_engine,
    head_revision,
    schema_is_current,
    upgrade,
)
from distributor.models import load_all_models


def test_migrations_build_the_schema_the_models_declare(empty_url: str) -> None:
    upgrade(empty_url)
    load_all_models()
    with get_engine(empty_url).connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


def test_a_send_by_preference_and_its_deliveries_survive_the_upgrade(empty_url: str) -> None:
    upgrade(empty_url, "0004_send_control")
    with get_engine(empty_url).begin() as connection:
        for statement in (
            "insert into newsletters (id, title, created_at) values (1, 't', '2026-01-01')",
            "insert into issues (id, newsletter_id, number, issue_date, masthead, source_format,"
            " imported_at) values (1, 1, 1, '2026-01-01', '{}', 'text', '2026-01-01')",
            *(
                "insert into sends (id, issue_id, audience, variant, channel, state, is_test,"
                f" planned_through, created_at, updated_at) values ({i}, 1, '{{}}', '{variant}',"
                " 'email', 'done', false, 0, '2026-01-01', '2026-01-01')"
                for i, variant in ((1, "preference"), (2, "full"))
            ),
            "insert into deliveries (send_id, channel, address, variant, state, attempts,"
            " reclaims, possible_duplicate, created_at, updated_at) values (1, 'email', 'a@b.cn',"
            " 'digest', 'sent', 1, 0, false, '2026-01-01', '2026-01-01')",
        ):
            connection.execute(text(statement))
    upgrade(empty_url)
    with get_engine(empty_url).connect() as connection:
        sends = connection.execute(text("select id, variant from sends order by id")).all()
        deliveries = connection.execute(text("select count(*) from deliveries")).scalar()
    assert [tuple(row) for row in sends] == [(1, None), (2, "full")]
    assert deliveries == 1


def test_the_newest_file_is_alembic_s_one_head_and_the_schema_check_knows_it(
    empty_url: str,
) -> None:
    """Revisions are named after their files and numbered in one line, so the newest file is
    the head: what a command's quick schema check (no Alembic import) compares with."""
    script = ScriptDirectory.from_config(alembic_config(empty_url))
    assert script.get_heads() == [head_revision()]
    assert not schema_is_current(empty_url)
    upgrade(empty_url, "0014_machine_clicks")
    assert not schema_is_current(empty_url)
    upgrade(empty_url)
    assert schema_is_current(empty_url)
