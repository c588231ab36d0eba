"""Writing many subscribers at once, through temporary staging tables.

A batch of rows is made ready to load where it is parsed (a :class:`Batch`), loaded into
``import_rows`` (and the combinations of lists and tags it names beside it) with one COPY on
PostgreSQL or one executemany on SQLite, then moved into the real tables by a few set-based
``INSERT … SELECT … ON CONFLICT`` statements: no ORM object and no statement per row, so a
million rows cost little more memory than a thousand. A CSV import and ``subscribers add`` both
write this way, under the same rules, which live in the statements where no race slips past:

- a file (or the staff) may *suppress* a subscriber or a subscription, never lift suppression:
  only the person's own confirmation does (see :mod:`subscribers.public`);
- a person who said stop is on no list actively, whatever a file says;
- a file changes only the columns it has, and only the attributes it names; lists and tags in it
  are added, never taken away;
- a row that changes nothing writes nothing (``updated_at`` stays), and is not counted updated.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    case,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    text,
    true,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite

from distributor.db import UTCDateTime, utcnow
from subscribers.csvfile import SubscriberRow
from subscribers.models import (
    EMAIL_MAX,
    OPTED_OUT,
    SUPPRESSED,
    List,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Tag,
    subscriber_tags,
)

SUBSCRIBERS = cast(Table, Subscriber.__table__)
SUBSCRIPTIONS = cast(Table, Subscription.__table__)
LISTS = cast(Table, List.__table__)
TAGS = cast(Table, Tag.__table__)

# Columns a file may overwrite on a known subscriber (status has its own rule; id, created_at
# and consent never change).
UPDATABLE = ("email", "name", "openid", "locale", "attributes", "channel", "format")

_STAGING = MetaData()
ROWS = Table(
    "import_rows",
    _STAGING,
    Column("line", Integer, nullable=False),
    Column("email", String(EMAIL_MAX), nullable=False),
    Column("email_key", String(EMAIL_MAX), nullable=False),
    Column("name", String, nullable=False),
    Column("openid", String),
    Column("locale", String, nullable=False),
    # JSON text, written by us: UTF-8 rather than \u escapes, since SQLite's json_extract
    # matches keys as written. Typed JSON on PostgreSQL so it moves into a json column as is.
    Column("attributes", Text().with_variant(JSON(), "postgresql"), nullable=False),
    Column("status", String(20), nullable=False),
    Column("channel", String(20), nullable=False),
    Column("format", String(20), nullable=False),
    Column("created_at", UTCDateTime),
    Column("list_set", Integer),  # in LIST_SETS; NULL: on no list
    Column("tag_set", Integer),  # in TAG_SETS; NULL: no tag
    prefixes=["TEMPORARY"],
)
# The lists (and tags) of a staged row: the number of their combination in its batch, whose
# members are staged once each here. A file repeats a few combinations; nothing is staged per
# membership of a row.
LIST_SETS = Table(
    "import_list_sets",
    _STAGING,
    Column("set_id", Integer, nullable=False),
    Column("list_id", BigInteger, nullable=False),
    Column("status", String(20), nullable=False),
    prefixes=["TEMPORARY"],
)
TAG_SETS = Table(
    "import_tag_sets",
    _STAGING,
    Column("set_id", Integer, nullable=False),
    Column("tag_id", BigInteger, nullable=False),
    prefixes=["TEMPORARY"],
)
BATCH_TABLES = (ROWS, LIST_SETS, TAG_SETS)
STORED_TABLES = ("subscribers", "subscriptions", "subscriber_tags")  # what a bulk write grows


def _insert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT that knows ON CONFLICT, in the dialect of ``connection``."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


@contextmanager
def staging(connection: Connection, *extra: Table) -> Iterator[None]:
    """The staging tables (and ``extra`` temporary ones) for as long as the block runs.

    After an error they are left to the rollback (when created in the failed transaction) or
    to the end of the connection: temporary tables live no longer than that.
    """
    tables = (*BATCH_TABLES, *extra)
    for table in tables:
        table.create(connection)
    yield
    for table in reversed(tables):
        table.drop(connection)


BULK_CACHE_KB = 65_536  # SQLite's page cache during a bulk write, instead of its default 2 MB


@contextmanager
def bulk_writing(connection: Connection) -> Iterator[None]:
    """SQLite tuned for a big write while the block runs, then as before.

    A page cache big enough for the address index of a million readers: with the default, each
    insert reads the index's pages from the file again. Durability is untouched: every commit
    is as any other (WAL, ``synchronous=NORMAL``, see :mod:`distributor.db`). After an error
    the setting stays with the connection, which the caller then drops (as :func:`staging`).
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    before = int(connection.exec_driver_sql("PRAGMA cache_size").scalar_one())
    connection.exec_driver_sql(f"PRAGMA cache_size=-{BULK_CACHE_KB}")
    yield
    connection.exec_driver_sql(f"PRAGMA cache_size={before}")


def load(connection: Connection, table: Table, rows: Sequence[tuple[object, ...]]) -> None:
    """Put ``rows`` (values in column order) into a staging table.

    COPY on PostgreSQL, several times faster than any INSERT. On SQLite one executemany
    straight to the driver, each value through its column type's own bind processor: the
    per-row parameter handling of a Core executemany would cost more than SQLite's insert.
    """
    if not rows:
        return
    dialect = connection.dialect
    if dialect.name != "postgresql":
        processors = [
            (index, processor, processor(None) is None)
            for index, column in enumerate(table.columns)
            if (processor := column.type.dialect_impl(dialect).bind_processor(dialect))
        ]
        connection.exec_driver_sql(
            str(table.insert().compile(dialect=dialect)),
            [_processed(row, processors) for row in rows] if processors else list(rows),
        )
        return
    names = ", ".join(column.name for column in table.columns)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _processed(
    row: tuple[object, ...], processors: Sequence[tuple[int, Callable[[Any], Any], bool]]
) -> tuple[object, ...]:
    """``row`` through ``processors``, but for the NULLs a processor keeps NULL (most cells of
    an optional column): a call per cell is much of the cost."""
    values = list(row)
    for index, processor, keeps_null in processors:
        if values[index] is not None or not keeps_null:
            values[index] = processor(values[index])
    return tuple(values)


def clear(connection: Connection) -> None:
    """Empty the batch tables. TRUNCATE on PostgreSQL: autovacuum never visits temporary
    tables, so rows deleted chunk after chunk would pile up as dead tuples."""
    for table in BATCH_TABLES:
        if connection.dialect.name == "postgresql":
            connection.execute(text(f"TRUNCATE {table.name}"))
        else:
            connection.execute(table.delete())


_to_json = json.JSONEncoder(ensure_ascii=False).encode  # one encoder, not one a row
# What COPY's text format reads as a tab, a line break or a backslash inside a value.
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_COPY_SPECIAL = re.compile(r"[\\\t\n\r]")
_SQLITE = sqlite.dialect()
# created_at as SQLite stores it: UTCDateTime's bind step and then DateTime's (text).
_SQLITE_TIME = cast(
    Callable[[datetime], str],
    ROWS.c.created_at.type.dialect_impl(_SQLITE).bind_processor(_SQLITE),
)

ListSet = tuple[tuple[str, SubscriptionStatus], ...]


@dataclass
class Batch:
    """Rows (one per address) in the form ``import_rows`` loads them, made where they are parsed.

    For PostgreSQL the lines of COPY's text format, for SQLite the tuples executemany binds: so
    the process that writes (a parsing process's parent) only hands them on. A row's lists and
    tags are the number of their combination in :attr:`list_sets` / :attr:`tag_sets`. Plain
    data, cheap to pickle: it crosses from a parsing process in one piece.
    """

    copy: bool  # for PostgreSQL's COPY; else for SQLite
    rows: list[Any] = field(default_factory=list)  # for COPY, packed: one text of them all
    count: int = 0
    list_sets: dict[ListSet, int] = field(default_factory=dict)
    tag_sets: dict[tuple[str, ...], int] = field(default_factory=dict)

    @classmethod
    def for_dialect(cls, name: str) -> Batch:
        return cls(copy=name == "postgresql")

    def add(self, row: SubscriberRow) -> None:
        """Stage ``row``. An enum's ``_value_`` (a plain string, which pickles and binds faster
        than the member) is an attribute, where ``value`` is a descriptor: a call."""
        list_set = tag_set = None
        if row.lists:
            list_set = self.list_sets.setdefault(row.lists, len(self.list_sets))
        if row.tags:
            tag_set = self.tag_sets.setdefault(row.tags, len(self.tag_sets))
        attributes = _to_json(row.attributes) if row.attributes else "{}"
        self.count += 1
        if not self.copy:
            created = None if row.created_at is None else _SQLITE_TIME(row.created_at)
            self.rows.append((
                row.line, row.email, row.email_key, row.name, row.openid, row.locale, attributes,
                row.status._value_, row.channel._value_, row.format._value_, created, list_set,
                tag_set,
            ))
            return
        name, openid, locale = row.name, row.openid, row.locale
        if _COPY_SPECIAL.search(f"{name}{openid}{locale}{attributes}"):  # rarely
            name, locale, attributes = (
                value.translate(_COPY_ESCAPES) for value in (name, locale, attributes)
            )
            openid = None if openid is None else openid.translate(_COPY_ESCAPES)
        line = "\t".join((
            str(row.line), row.email, row.email_key, name, "\\N" if openid is None else openid,
            locale, attributes, row.status._value_, row.channel._value_, row.format._value_,
            "\\N" if row.created_at is None else row.created_at.isoformat(),
            "\\N" if list_set is None else str(list_set),
            "\\N" if tag_set is None else str(tag_set),
        ))
        self.rows.append(line + "\n")

    def __len__(self) -> int:
        return self.count

    def packed(self) -> Batch:
        """The batch with its COPY lines as one text: one object to pickle, one write."""
        if self.copy and len(self.rows) > 1:
            self.rows = ["".join(self.rows)]
        return self


def stage(
    connection: Connection, batch: Batch, list_ids: Mapping[str, int], tag_ids: Mapping[str, int]
) -> None:
    """Load ``batch`` into the staging tables; ``list_ids`` and ``tag_ids`` hold every name it
    gives. A list named twice in a row counts once, the first."""
    if batch.copy:
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        names = ", ".join(column.name for column in ROWS.columns)
        with cursor.copy(f"COPY {ROWS.name} ({names}) FROM STDIN") as copy:
            for text_ in batch.rows:
                copy.write(text_)
    elif batch.rows:
        connection.exec_driver_sql(str(ROWS.insert().compile(dialect=_SQLITE)), batch.rows)
    load(
        connection,
        LIST_SETS,
        [
            (set_id, list_id, status)
            for lists, set_id in batch.list_sets.items()
            for list_id, status in _firsts(lists, list_ids).items()
        ],
    )
    load(
        connection,
        TAG_SETS,
        [
            (set_id, tag_id)
            for tags, set_id in batch.tag_sets.items()
            for tag_id in dict.fromkeys(tag_ids[tag] for tag in tags)
        ],
    )


def _firsts(lists: ListSet, list_ids: Mapping[str, int]) -> dict[int, str]:
    """The status of each list of ``lists`` by id, the first where a list is named twice."""
    firsts: dict[int, str] = {}
    for name, status in lists:
        firsts.setdefault(list_ids[name], status.value)
    return firsts


def _only_toward(current: Any, proposed: Any, values: Iterable[str]) -> Any:
    """SQL for "take ``proposed`` if it is one of ``values``, else keep ``current``"."""
    return case((proposed.in_(list(values)), proposed), else_=current)


def _json_value(connection: Connection, value: Any) -> Any:
    """``value`` in a form SQL compares by content (PostgreSQL's json has no equality)."""
    if connection.dialect.name == "postgresql":
        return sql_cast(value, postgresql.JSONB)
    return func.json(value)


def _merged(connection: Connection, current: Any, proposed: Any) -> Any:
    """The stored attributes with the file's keys set over them; the other keys stay."""
    if connection.dialect.name == "postgresql":
        merged = _json_value(connection, current).op("||")(_json_value(connection, proposed))
        return sql_cast(merged, JSON)
    return func.json_patch(current, proposed)


def _new_values(
    connection: Connection, current: Any, proposed: Any, columns: frozenset[str]
) -> dict[str, Any]:
    """What each column a file speaks for becomes on a stored subscriber, under the rules above.

    ``current`` is the stored row's columns, ``proposed`` the file's (staged or ``excluded``).
    """
    values: dict[str, Any] = {
        name: proposed[name] for name in UPDATABLE if name in columns and name != "attributes"
    }
    if "attributes" in columns:
        values["attributes"] = _merged(connection, current.attributes, proposed.attributes)
    if "status" in columns:
        values["status"] = _only_toward(current.status, proposed.status, SUPPRESSED)
    return values


def _changes(connection: Connection, current: Any, values: dict[str, Any]) -> Any:
    """SQL: true when ``values`` differ from the stored row somewhere."""
    return or_(
        false(),
        *(
            _json_value(connection, current[name]).is_distinct_from(
                _json_value(connection, value)
            )
            if name == "attributes"
            else current[name].is_distinct_from(value)
            for name, value in values.items()
        ),
    )


def _subscription_status(subscriber_status: Any, link_status: Any) -> Any:
    """A subscription as the file gives it, except that a person who said stop is on no list."""
    return case(
        (subscriber_status.in_(OPTED_OUT), literal(SubscriptionStatus.UNSUBSCRIBED.value)),
        else_=link_status,
    )


def _subscription_update(current: Any, proposed: Any) -> Any:
    """A stored subscription may be ended by a file, never started again."""
    return _only_toward(current, proposed, [SubscriptionStatus.UNSUBSCRIBED.value])


def count_changed(connection: Connection, *, columns: frozenset[str]) -> int:
    """How many staged rows would change a stored subscriber: a column, a list or a tag.

    Asked before :func:`apply` (or instead, in a dry run), with the same rules as it.
    """
    stored, rows = SUBSCRIBERS.c, ROWS.c
    links, subscriptions = LIST_SETS.c, SUBSCRIPTIONS.c
    new_membership = exists().where(
        links.set_id == rows.list_set,
        not_(
            exists().where(
                subscriptions.subscriber_id == stored.id,
                subscriptions.list_id == links.list_id,
                subscriptions.status
                == _subscription_update(
                    subscriptions.status, _subscription_status(stored.status, links.status)
                ),
            )
        ),
    )
    new_tag = exists().where(
        TAG_SETS.c.set_id == rows.tag_set,
        not_(
            exists().where(
                subscriber_tags.c.subscriber_id == stored.id,
                subscriber_tags.c.tag_id == TAG_SETS.c.tag_id,
            )
        ),
    )
    changed = _changes(connection, stored, _new_values(connection, stored, rows, columns))
    query = (
        select(func.count())
        .select_from(ROWS)
        .join(SUBSCRIBERS, stored.email_key == rows.email_key)
        .where(or_(changed, new_membership, new_tag))
    )
    return connection.scalar(query) or 0


def apply(connection: Connection, *, columns: frozenset[str], source: str) -> None:
    """Move the staged batch into subscribers, subscriptions and tags; no commit."""
    now = literal(utcnow(), UTCDateTime)
    rows = ROWS.c
    insert = _insert(connection, SUBSCRIBERS).from_select(
        [*UPDATABLE, "email_key", "status", "consent_source", "consent_at", "created_at",
         "updated_at"],
        select(
            *(rows[name] for name in UPDATABLE),
            rows.email_key,
            rows.status,
            literal(source),
            now,
            func.coalesce(rows.created_at, now),
            now,
        ).where(true()),
    )
    values = _new_values(connection, SUBSCRIBERS.c, insert.excluded, columns)
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=["email_key"],
            set_={**values, "updated_at": insert.excluded.updated_at},
            where=_changes(connection, SUBSCRIBERS.c, values),
        )
    )

    subscribers = SUBSCRIBERS.c
    links = LIST_SETS.c
    insert = _insert(connection, SUBSCRIPTIONS).from_select(
        ["subscriber_id", "list_id", "status", "created_at", "updated_at"],
        select(
            subscribers.id,
            links.list_id,
            _subscription_status(subscribers.status, links.status),
            now,
            now,
        )
        .join_from(ROWS, LIST_SETS, links.set_id == rows.list_set)
        .join(SUBSCRIBERS, subscribers.email_key == rows.email_key)
        .where(true()),
    )
    status = _subscription_update(SUBSCRIPTIONS.c.status, insert.excluded.status)
    connection.execute(
        insert.on_conflict_do_update(
            index_elements=["subscriber_id", "list_id"],
            set_={"status": status, "updated_at": insert.excluded.updated_at},
            where=SUBSCRIPTIONS.c.status != status,
        )
    )

    connection.execute(
        _insert(connection, subscriber_tags)
        .from_select(
            ["subscriber_id", "tag_id"],
            select(subscribers.id, TAG_SETS.c.tag_id)
            .join_from(ROWS, TAG_SETS, TAG_SETS.c.set_id == rows.tag_set)
            .join(SUBSCRIBERS, subscribers.email_key == rows.email_key)
            .where(true()),
        )
        .on_conflict_do_nothing()
    )


def write_rows(
    connection: Connection,
    rows: Sequence[SubscriberRow],
    *,
    columns: frozenset[str],
    source: str,
    list_ids: Mapping[str, int],
    tag_ids: Mapping[str, int],
) -> None:
    """Upsert ``rows`` (one per address) with their lists and tags; no commit."""
    batch = Batch.for_dialect(connection.dialect.name)
    for row in rows:
        batch.add(row)
    with staging(connection):
        stage(connection, batch.packed(), list_ids, tag_ids)
        apply(connection, columns=columns, source=source)


def refresh_statistics(connection: Connection, *staged: Table, stored: bool = True) -> None:
    """Let PostgreSQL plan with the tables' sizes now, not after autovacuum: the ``stored``
    ones a bulk write grows, and the temporary ones ``staged`` (autovacuum never visits them).

    Planned with the sizes of an empty database, each chunk of an import would hash the whole
    subscribers table, a cost growing with every chunk, instead of looking its rows up.
    """
    if connection.dialect.name != "postgresql":
        return
    names = [*(STORED_TABLES if stored else ()), *(table.name for table in staged)]
    if names:
        connection.execute(text(f"ANALYZE {', '.join(names)}"))


def ensure_named(
    connection: Connection, table: Table, names: Iterable[str], known: dict[str, int]
) -> list[str]:
    """Add the ids of ``names`` to ``known``, creating the rows missing; returns the created."""
    missing = set(names) - known.keys()
    if not missing:
        return []
    query = select(table.c.name, table.c.id).where(table.c.name.in_(missing))
    existing = dict(connection.execute(query).all())
    created = sorted(missing - existing.keys())
    if created:
        connection.execute(
            _insert(connection, table).on_conflict_do_nothing(), [{"name": n} for n in created]
        )
        existing = dict(connection.execute(query).all())
    known.update(existing)
    return created


def existing_ids(connection: Connection, table: Table, names: Iterable[str]) -> dict[str, int]:
    """The id of each of ``names`` that exists in ``table`` (lists or tags)."""
    query = select(table.c.name, table.c.id).where(table.c.name.in_(set(names)))
    return {name: id_ for name, id_ in connection.execute(query)}
