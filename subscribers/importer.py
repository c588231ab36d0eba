"""Importing a CSV file of subscribers: read it line by line, write it chunk by chunk.

Each chunk of up to :data:`CHUNK_ROWS` valid rows is one transaction through
:mod:`subscribers.bulk`; memory stays flat however long the file. A big file is parsed by one
process per core while this one writes. Bad rows are reported with their line and never stop
the good ones. Within the file the first row of an address wins; later ones are reported. A list
that does not exist is created only when asked: a typo in a list name must not make a new list.
A dry run stages rows in temporary tables only and never writes to a real one.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, or_, select

from distributor.errors import ImportFailed, RowError, UnknownList
from subscribers.bulk import (
    LISTS,
    ROWS,
    SUBSCRIBERS,
    TAGS,
    apply,
    bulk_writing,
    clear,
    count_changed,
    ensure_named,
    existing_ids,
    refresh_statistics,
    stage_links,
    stage_rows,
    staging,
)
from subscribers.csvfile import (
    ColumnMap,
    Line,
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
from subscribers.text import shorten

CHUNK_ROWS = 5_000  # rows per transaction: amortises round trips, keeps memory flat
PARALLEL_FROM = 16 << 20  # bytes (some 150,000 rows): a file parsed by several processes
PIECE_BYTES = 1 << 19  # of such a file, parsed at a time by one process: some 5,000 rows
PARSERS = len(os.sched_getaffinity(0))  # processes parsing such a file: one per core

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
    updated: int = 0  # known subscribers the file changed: a column, attribute, list or tag
    skipped: int = 0  # rows repeating an address an earlier row gave
    errors: int = 0  # rows that could not be read, or that name a list that does not exist
    kept_suppressed: int = 0  # unsubscribed / bounced / complained people the file did not revive
    new_lists: list[str] = field(default_factory=list)
    attribute_columns: tuple[str, ...] = ()  # columns we do not know, kept as attributes

    @property
    def encoding_label(self) -> str:
        return describe_encoding(self.encoding)


_Item = tuple[SubscriberRow, str]  # a valid row and its line's text
_T = TypeVar("_T")


@dataclass(frozen=True)
class Chunk:
    """Up to :data:`CHUNK_ROWS` valid rows (or those of a piece of a big file), with the
    problems of the lines read for them."""

    rows: list[_Item]
    problems: list[Problem]
    read: int  # bytes of the file read so far


def read_chunks(
    lines: Iterable[Line],
    columns: ColumnMap,
    extra_lists: tuple[tuple[str, SubscriptionStatus], ...] = (),
    size: int = CHUNK_ROWS,
) -> Iterator[Chunk]:
    """Parse ``lines`` (from :func:`read_lines`) into chunks; blank lines are skipped."""
    rows: list[_Item] = []
    problems: list[Problem] = []
    read = 0
    for number, text, read, unreadable in lines:
        if unreadable is not None:
            problems.append(
                Problem(
                    number,
                    str(unreadable),  # a plain str: a Problem is pickled between processes
                    text.rstrip("\r\n"),
                    unreadable.code,
                    unreadable.params,
                )
            )
            continue
        try:
            cells = split_line(text)
            if not any(cell.strip() for cell in cells):
                continue
            row = parse_row(cells, columns, number, extra_lists)
        except RowError as error:
            problems.append(
                Problem(number, error.message, text.rstrip("\r\n"), error.code, error.params)
            )
            continue
        rows.append((row, text))
        if len(rows) == size:
            yield Chunk(rows, problems, read)
            rows, problems = [], []
    if rows or problems:
        yield Chunk(rows, problems, read)


def parse_chunks(
    path: Path,
    encoding: str,
    lines: Iterator[Line],
    columns: ColumnMap,
    extra_lists: tuple[tuple[str, SubscriptionStatus], ...],
    *,
    start: int,
) -> Iterator[Chunk]:
    """The chunks of ``lines`` (the file's from byte ``start``, after the header), each parsed
    while the caller writes the one before.

    Parsing is most of an import's work, and Python: in a thread it holds the GIL the writing
    needs too. So a file of :data:`PARALLEL_FROM` bytes or more is parsed by one process per
    core, a piece of the file each (read by the process itself: nothing per line crosses from
    this one), while this one writes; a smaller one, in less time than processes take to
    start, by a thread.
    """
    if PARSERS < 2 or path.stat().st_size < PARALLEL_FROM:
        return read_ahead(read_chunks(lines, columns, extra_lists))
    return _parsed_apart(path, encoding, start, columns, extra_lists)


def _parsed_apart(
    path: Path,
    encoding: str,
    start: int,
    columns: ColumnMap,
    extra_lists: tuple[tuple[str, SubscriptionStatus], ...],
) -> Iterator[Chunk]:
    """Chunks in order, parsed by :data:`PARSERS` processes, one piece each in hand and one
    more: memory stays flat. The processes come from a fork server, never forked from this
    one, whose threads (a progress bar's) may hold a lock at the moment of the fork."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    pool = ProcessPoolExecutor(PARSERS, mp_context=context)
    pending: deque[Future[Chunk]] = deque()
    try:
        for piece in _pieces(path, start):
            pending.append(pool.submit(_parse, path, encoding, piece, columns, extra_lists))
            if len(pending) > PARSERS:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(cancel_futures=True)


def _pieces(path: Path, start: int) -> Iterator[tuple[int, int, int]]:
    """The file from byte ``start`` (line 2) in pieces of about :data:`PIECE_BYTES`, each cut
    where a line ends: its first byte, the byte after its last, the number of its first line."""
    number = 2
    with path.open("rb") as file:
        file.seek(start)
        while block := file.read(PIECE_BYTES):
            if not block.endswith(b"\n"):
                block += file.readline()
            yield start, start + len(block), number
            start += len(block)
            number += block.count(b"\n")


def _parse(
    path: Path,
    encoding: str,
    piece: tuple[int, int, int],
    columns: ColumnMap,
    extra_lists: tuple[tuple[str, SubscriptionStatus], ...],
) -> Chunk:
    """One piece of the file (from :func:`_pieces`) as one chunk, in a parsing process."""
    start, stop, number = piece
    lines = read_lines(path, encoding, start=start, stop=stop, first=number)
    parsed = list(read_chunks(lines, columns, extra_lists, size=sys.maxsize))
    return parsed[0] if parsed else Chunk([], [], stop)


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
    create_lists: bool
    report: ImportReport
    list_ids: dict[str, int] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)

    def write(self, chunk: Sequence[_Item]) -> list[Problem]:
        """One chunk, in the transaction the caller commits; returns the rows not written."""
        named = {name for lists in {row.lists for row, _ in chunk} for name, _ in lists}
        missing = self._ids(LISTS, named, self.list_ids, create=self.create_lists)
        unknown = [_unknown_list(item, missing) for item in chunk if _names_any(item, missing)]
        if unknown:
            chunk = [item for item in chunk if not _names_any(item, missing)]
            self.report.errors += len(unknown)
        first: dict[str, _Item] = {}
        repeats = [
            _repeat(item, first[item[0].email_key][0].line)
            for item in chunk
            if first.setdefault(item[0].email_key, item) is not item
        ]
        rows = [row for row, _ in first.values()]
        stage_rows(self.connection, rows)
        seen, stored = self._known()
        if seen:
            self.connection.execute(ROWS.delete().where(ROWS.c.email_key.in_(seen)))
            repeats += [_repeat(first.pop(key), line) for key, line in seen.items()]
            rows = [row for row, _ in first.values()]
        self.connection.execute(
            SEEN.insert().from_select(["email_key", "line"], select(ROWS.c.email_key, ROWS.c.line))
        )
        self.report.imported += len(rows) - len(stored)
        if stored:
            self.report.kept_suppressed += sum(
                stored.get(row.email_key) in SUPPRESSED and row.status not in SUPPRESSED
                for row in rows
            )
        tags = {tag for tagged in {row.tags for row in rows} for tag in tagged}
        self._ids(TAGS, tags, self.tag_ids, create=True)
        stage_links(self.connection, rows, self.list_ids, self.tag_ids)
        if stored:
            self.report.updated += count_changed(self.connection, columns=self.columns)
        if not self.dry_run:
            apply(self.connection, columns=self.columns, source=self.source)
        clear(self.connection)
        self.report.skipped += len(repeats)
        return unknown + repeats

    def _ids(
        self, table: Table, names: set[str], known: dict[str, int], *, create: bool
    ) -> set[str]:
        """Put the ids of ``names`` in ``known``; returns the names that do not exist.

        Names to create are created, or, in a dry run, given ids below zero that match nothing
        stored: what the import would do, without a write.
        """
        missing = names - known.keys()
        if missing:
            known.update(existing_ids(self.connection, table, missing))
            missing -= known.keys()
        if not missing or not create:
            return missing
        if self.dry_run:
            known.update((name, -len(known) - 1) for name in sorted(missing))
            created = sorted(missing)
        else:
            created = ensure_named(self.connection, table, missing, known)
        if table is LISTS:
            self.report.new_lists += created
        return set()

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


def _names_any(item: _Item, lists: set[str]) -> bool:
    return bool(lists) and any(name in lists for name, _ in item[0].lists)


def _unknown_list(item: _Item, missing: set[str]) -> Problem:
    row, text = item
    names = ", ".join(sorted({name for name, _ in row.lists if name in missing}))
    return Problem(
        row.line,
        f"no list is named '{names}': the row is not imported (create the list first, "
        "or let the import create the lists it names)",
        text.rstrip("\r\n"),
        code="csv.unknown_list",
        params={"names": names},
    )


def _repeat(item: _Item, first_line: int) -> Problem:
    row, text = item
    return Problem(
        row.line,
        f"{row.email} repeats line {first_line}: the first row of an address wins",
        text.rstrip("\r\n"),
        code="csv.repeat",
        params={"address": row.email, "first": first_line},
    )


def import_subscribers(
    connection: Connection,
    path: Path,
    *,
    list_name: str | None = None,
    create_lists: bool = False,
    dry_run: bool = False,
    on_problem: Callable[[Problem], None],
    on_progress: Callable[[int], None] = lambda done: None,
) -> ImportReport:
    """Import the CSV file at ``path``, committing every :data:`CHUNK_ROWS` rows.

    ``list_name`` subscribes every row to that list too. Lists that do not exist (that one, or
    those the file names) are created with ``create_lists``; otherwise ``list_name`` missing is
    an error and a row naming a missing list is reported. A dry run reads, checks and counts
    everything, writing nothing. ``on_problem`` gets the problems in line order, ``on_progress``
    the bytes read so far, after each chunk.
    """
    extra_lists: tuple[tuple[str, SubscriptionStatus], ...] = ()
    if list_name:
        extra_lists = ((check_label("list", list_name, LIST_NAME_MAX), SubscriptionStatus.ACTIVE),)
        if not create_lists and not existing_ids(connection, LISTS, [extra_lists[0][0]]):
            raise UnknownList(
                f"no list is named '{shorten(list_name)}'",
                code="list.unknown",
                name=shorten(list_name),
            )
    encoding = detect_encoding(path)
    lines = read_lines(path, encoding)
    header = next(lines, None)
    if header is None:
        raise ImportFailed(f"{path.name} is empty", code="csv.empty", file=path.name)
    try:
        if header.error is not None:
            raise RowError(str(header.error), code=header.error.code, **header.error.params)
        columns = map_columns(split_line(header.text))
    except RowError as error:
        raise ImportFailed(
            f"{path.name}, line 1 (the header): {error.message}",
            code="csv.header",
            file=path.name,
            problem=error,
        ) from None
    report = ImportReport(encoding=encoding, attribute_columns=columns.attribute_keys)
    job = _Import(
        connection, columns.columns, f"import {path.name}", dry_run, create_lists, report
    )
    analyzed = 1  # rows when the statistics were last refreshed
    try:
        with bulk_writing(connection), staging(connection, SEEN):
            chunks = parse_chunks(path, encoding, lines, columns, extra_lists, start=header.read)
            for chunk in chunks:
                not_written = job.write(chunk.rows) if chunk.rows else []
                if (read := report.imported + report.updated + report.skipped) >= 2 * analyzed:
                    # Sizes doubled: plan with the new ones (a few times in a whole import).
                    refresh_statistics(connection, SEEN, stored=not dry_run)
                    analyzed = read
                connection.commit()
                report.errors += len(chunk.problems)
                for problem in sorted(chunk.problems + not_written, key=lambda p: p.line):
                    on_problem(problem)
                on_progress(chunk.read)
        if not dry_run:
            refresh_statistics(connection)
        connection.commit()
    except BaseException:
        connection.invalidate()  # its temporary tables go with it
        raise
    return report
