"""Importing a CSV file of subscribers: read it line by line, write it chunk by chunk.

Each chunk of :data:`CHUNK_ROWS` valid rows is one transaction through :mod:`subscribers.bulk`;
memory stays flat however long the file. Bad rows are reported with their line and never stop
the good ones. Within the file the first row of an address wins; later ones are reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, or_, select

from distributor.errors import ImportFailed, RowError
from subscribers.bulk import (
    LISTS,
    ROWS,
    SUBSCRIBERS,
    TAGS,
    apply,
    clear,
    ensure_named,
    existing_names,
    refresh_statistics,
    stage_links,
    stage_rows,
    staging,
)
from subscribers.csvfile import (
    ColumnMap,
    Problem,
    SubscriberRow,
    check_label,
    describe_encoding,
    detect_encoding,
    map_columns,
    parse_row,
    read_lines,
    split_line,
)
from subscribers.models import (
    EMAIL_MAX,
    LIST_NAME_MAX,
    SUPPRESSED,
    SubscriberStatus,
    SubscriptionStatus,
)

CHUNK_ROWS = 5_000  # rows per transaction: amortises round trips, keeps memory flat

# Addresses already read from this file, with their line. A temporary table, so that "the first
# row of an address wins" costs the database a little, not this process memory in proportion
# to the file.
SEEN = Table(
    "import_seen",
    MetaData(),
    Column("email_key", String(EMAIL_MAX), primary_key=True),
    Column("line", Integer, nullable=False),
    prefixes=["TEMPORARY"],
)


@dataclass
class ImportReport:
    """What an import did (or, dry, would do); problems went to ``on_problem`` as they came."""

    encoding: str
    imported: int = 0  # new subscribers
    updated: int = 0  # existing subscribers whose details the file gave
    skipped: int = 0  # rows repeating an address an earlier row gave
    errors: int = 0  # rows that could not be read
    kept_suppressed: int = 0  # unsubscribed / bounced / complained people the file did not revive
    new_lists: list[str] = field(default_factory=list)

    @property
    def encoding_label(self) -> str:
        return describe_encoding(self.encoding)


_Item = tuple[SubscriberRow, str]  # a valid row and its line's text
_T = TypeVar("_T")


@dataclass(frozen=True)
class Chunk:
    """Up to :data:`CHUNK_ROWS` valid rows, with the problems of the lines read for them."""

    rows: list[_Item]
    problems: list[Problem]
    read: int  # bytes of the file read so far


def read_chunks(
    lines: Iterable[tuple[int, str, int]],
    columns: ColumnMap,
    extra_lists: tuple[tuple[str, SubscriptionStatus], ...] = (),
    size: int = CHUNK_ROWS,
) -> Iterator[Chunk]:
    """Parse ``lines`` (from :func:`read_lines`) into chunks; blank lines are skipped."""
    rows: list[_Item] = []
    problems: list[Problem] = []
    read = 0
    for number, text, read in lines:
        try:
            cells = split_line(text)
            if not any(cell.strip() for cell in cells):
                continue
            row = parse_row(cells, columns, number)
        except RowError as error:
            problems.append(Problem(number, error.message, text.rstrip("\r\n")))
            continue
        if extra_lists:
            row = row._replace(lists=row.lists + extra_lists)
        rows.append((row, text))
        if len(rows) == size:
            yield Chunk(rows, problems, read)
            rows, problems = [], []
    if rows or problems:
        yield Chunk(rows, problems, read)


def read_ahead(items: Iterator[_T]) -> Iterator[_T]:
    """``items``, each produced in a thread while the caller works on the one before.

    Parsing is Python and holds the GIL; writing mostly waits for the database (or runs inside
    sqlite3, which lets the GIL go), so on two cores the two overlap.
    """
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, items, None)
        while (item := pending.result()) is not None:
            pending = pool.submit(next, items, None)
            yield item


@dataclass
class _Import:
    """One file's import: what spans its chunks."""

    connection: Connection
    columns: frozenset[str]
    source: str
    dry_run: bool
    report: ImportReport
    list_ids: dict[str, int] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)
    checked_lists: set[str] = field(default_factory=set)  # dry run: names looked up already

    def write(self, chunk: Sequence[_Item]) -> list[Problem]:
        """One chunk, in the transaction the caller commits; returns the repeated addresses."""
        first: dict[str, _Item] = {}
        repeats = [
            _repeat(item, first[item[0].email_key][0].line)
            for item in chunk
            if first.setdefault(item[0].email_key, item) is not item
        ]
        stage_rows(self.connection, [row for row, _ in first.values()])
        seen, stored = self._known()
        if seen:
            self.connection.execute(ROWS.delete().where(ROWS.c.email_key.in_(seen)))
            repeats += [_repeat(first.pop(key), line) for key, line in seen.items()]
        self.connection.execute(
            SEEN.insert().from_select(["email_key", "line"], select(ROWS.c.email_key, ROWS.c.line))
        )
        rows = [row for row, _ in first.values()]
        self.report.imported += len(rows) - len(stored)
        self.report.updated += len(stored)
        self.report.kept_suppressed += sum(
            stored.get(row.email_key) in SUPPRESSED and row.status not in SUPPRESSED
            for row in rows
        )
        list_names = {name for row in rows for name, _ in row.lists}
        if self.dry_run:
            unchecked = list_names - self.checked_lists
            self.checked_lists |= unchecked
            self.report.new_lists += sorted(
                unchecked - existing_names(self.connection, LISTS, unchecked)
            )
        else:
            self.report.new_lists += ensure_named(self.connection, LISTS, list_names, self.list_ids)
            tags = {tag for row in rows for tag in row.tags}
            ensure_named(self.connection, TAGS, tags, self.tag_ids)
            stage_links(self.connection, rows, self.list_ids, self.tag_ids)
            apply(self.connection, columns=self.columns, source=self.source)
        clear(self.connection)
        self.report.skipped += len(repeats)
        return repeats

    def _known(self) -> tuple[dict[str, int], dict[str, SubscriberStatus]]:
        """Staged addresses an earlier chunk gave (→ its line), and others stored (→ status).

        One query, whose answer is empty for a file of new addresses.
        """
        found = self.connection.execute(
            select(ROWS.c.email_key, SEEN.c.line, SUBSCRIBERS.c.status)
            .select_from(ROWS)
            .outerjoin(SEEN, SEEN.c.email_key == ROWS.c.email_key)
            .outerjoin(SUBSCRIBERS, SUBSCRIBERS.c.email_key == ROWS.c.email_key)
            .where(or_(SEEN.c.line.is_not(None), SUBSCRIBERS.c.status.is_not(None)))
        ).all()
        seen = {key: line for key, line, _ in found if line is not None}
        stored = {key: status for key, line, status in found if line is None}
        return seen, stored


def _repeat(item: _Item, first_line: int) -> Problem:
    row, text = item
    return Problem(
        row.line,
        f"{row.email} repeats line {first_line}: the first row of an address wins",
        text.rstrip("\r\n"),
    )


def import_subscribers(
    connection: Connection,
    path: Path,
    *,
    list_name: str | None = None,
    dry_run: bool = False,
    on_problem: Callable[[Problem], None],
    on_progress: Callable[[int], None] = lambda done: None,
) -> ImportReport:
    """Import the CSV file at ``path``, committing every :data:`CHUNK_ROWS` rows.

    ``list_name`` subscribes every row to that list too. A dry run reads, checks and counts
    everything, writing nothing. ``on_problem`` gets the problems in line order, ``on_progress``
    the bytes read so far, after each chunk.
    """
    extra_lists = (
        ((check_label("list", list_name, LIST_NAME_MAX), SubscriptionStatus.ACTIVE),)
        if list_name
        else ()
    )
    encoding = detect_encoding(path)
    lines = read_lines(path, encoding)
    header = next(lines, None)
    if header is None:
        raise ImportFailed(f"{path.name} is empty")
    try:
        columns = map_columns(split_line(header[1]))
    except RowError as error:
        raise ImportFailed(f"{path.name}, line 1 (the header): {error.message}") from None
    report = ImportReport(encoding=encoding)
    if columns.ignored:
        on_problem(Problem(1, f"columns ignored (not known): {', '.join(columns.ignored)}"))
    job = _Import(connection, columns.columns, f"import {path.name}", dry_run, report)
    try:
        with staging(connection, SEEN):
            for chunk in read_ahead(read_chunks(lines, columns, extra_lists)):
                repeats = job.write(chunk.rows) if chunk.rows else []
                connection.commit()
                report.errors += len(chunk.problems)
                for problem in sorted(chunk.problems + repeats, key=lambda p: p.line):
                    on_problem(problem)
                on_progress(chunk.read)
        if not dry_run:
            refresh_statistics(connection)
        connection.commit()
    except BaseException:
        connection.invalidate()  # its temporary tables go with it
        raise
    return report
