"""Importing a CSV file of subscribers: read it line by line, write it chunk by chunk.

Each chunk of up to :data:`CHUNK_ROWS` valid rows is one transaction through
:mod:`subscribers.bulk`; memory stays flat however long the file. A big file is parsed by one
process per core while this one writes; a parser hands over its rows staged, ready to load
(see :class:`subscribers.bulk.Batch`), so that the writing process does nothing per row in
Python. Into PostgreSQL a big file is written by one connection per core, each its share of
the addresses and its own transaction per chunk (see :func:`writer_of`). Bad rows are reported
with their line and never stop the good ones. Within the file the first row of an address
wins; later ones are reported. A list that does not exist is created only when asked: a typo in
a list name must not make a new list. A dry run stages rows in
temporary tables only and never writes to a real one.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from contextlib import ExitStack
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
    Batch,
    apply,
    bulk_writing,
    clear,
    count_changed,
    ensure_named,
    existing_ids,
    refresh_statistics,
    stage,
    staging,
)
from subscribers.csvfile import (
    ColumnMap,
    Line,
    LineSplitter,
    Problem,
    RowParser,
    SubscriberRow,
    check_label,
    describe_encoding,
    detect_encoding,
    map_columns,
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

# Rows per transaction: amortises round trips and, on SQLite, writes a page the chunk's rows
# share (an index's, a count's) once, not once per few thousand rows; memory stays flat.
CHUNK_ROWS = 10_000
PARALLEL_FROM = 16 << 20  # bytes (some 150,000 rows): a file parsed by several processes
PIECE_BYTES = 1 << 20  # of such a file, parsed at a time by one process: some 10,000 rows
PARSERS = len(os.sched_getaffinity(0))  # processes parsing such a file: one per core
# Connections writing such a file into PostgreSQL at once, each its share of the addresses: the
# server's work per row (indexes, foreign-key checks, the count triggers) is most of an import,
# and one backend uses one core. SQLite has one writer.
MOST_WRITERS = 4

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


_T = TypeVar("_T")
_Status = SubscriberStatus


@dataclass(frozen=True)
class Parsing:
    """What a parser needs besides the lines: plain data, sent to each parsing process."""

    columns: ColumnMap
    extra_lists: tuple[tuple[str, SubscriptionStatus], ...]  # every row's, as --list gives
    dialect: str  # the database's, whose form the rows are staged in (see Batch)
    lists: frozenset[str] | None  # the lists there are, when no list is to be created
    writers: int = 1  # connections writing: a chunk has a batch for each (see writer_of)


def writer_of(email_key: str, writers: int) -> int:
    """The writer of an address: always the same one, so that each writer alone sees every row
    of its addresses, in file order ("the first row of an address wins" needs no other). A
    stable hash: Python's own is salted per process, and the parsing processes must agree."""
    return zlib.crc32(email_key.encode()) % writers if writers > 1 else 0


@dataclass(frozen=True)
class Chunk:
    """Up to :data:`CHUNK_ROWS` valid rows (or those of a piece of a big file) staged in a
    :class:`Batch` per writer (see :func:`writer_of`), one row per address, with the problems
    of the lines read for them (a repeated address, a list that does not exist). ``span``:
    where to read its lines' text again."""

    batches: tuple[Batch, ...]
    problems: list[Problem]
    read: int  # bytes of the file read so far
    span: tuple[int, int, int]  # its first byte, the byte after its last, its first line

    @property
    def rows(self) -> int:
        return sum(map(len, self.batches))


def _batches(parsing: Parsing) -> tuple[Batch, ...]:
    return tuple(Batch.for_dialect(parsing.dialect) for _ in range(parsing.writers))


def read_chunks(
    lines: Iterable[Line], parsing: Parsing, *, start: int, first: int, size: int = CHUNK_ROWS
) -> Iterator[Chunk]:
    """Parse ``lines`` (from :func:`read_lines`, from byte ``start`` where line ``first`` is)
    into chunks; blank lines are skipped. In a chunk the first row of an address wins."""
    batches, rows = _batches(parsing), 0
    problems: list[Problem] = []
    lines_of: dict[str, int] = {}  # address key → its first line in the chunk
    parse_row = RowParser(parsing.columns, parsing.extra_lists)
    split_line = LineSplitter()
    read = start
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
            if not any(map(str.strip, cells)):
                continue
            row = parse_row(cells, number)
        except RowError as error:
            problems.append(
                Problem(number, error.message, text.rstrip("\r\n"), error.code, error.params)
            )
            continue
        if parsing.lists is not None and (
            missing := {name for name, _ in row.lists} - parsing.lists
        ):
            problems.append(_unknown_list(row, text, missing))
        elif (earlier := lines_of.setdefault(row.email_key, number)) != number:
            problems.append(_repeat(row.line, row.email, text, earlier))
        else:
            batches[writer_of(row.email_key, parsing.writers)].add(row)
            rows += 1
            if rows == size:
                yield Chunk(_packed(batches), problems, read, (start, read, first))
                batches, rows, problems, lines_of = _batches(parsing), 0, [], {}
                start, first = read, number + 1
    if rows or problems:
        yield Chunk(_packed(batches), problems, read, (start, read, first))


def _packed(batches: tuple[Batch, ...]) -> tuple[Batch, ...]:
    return tuple(batch.packed() for batch in batches)


def parse_chunks(
    path: Path, encoding: str, lines: Iterator[Line], parsing: Parsing, *, start: int
) -> Iterator[Chunk]:
    """The chunks of ``lines`` (the file's from byte ``start``, line 2), each parsed while the
    caller writes the one before.

    Parsing is most of an import's work, and Python: in a thread it holds the GIL the writing
    needs too. So a file of :data:`PARALLEL_FROM` bytes or more is parsed by one process per
    core, a piece of the file each (read by the process itself: nothing per line crosses from
    this one, and the rows come back staged, ready to load), while this one writes; a smaller
    one, in less time than processes take to start, by a thread.
    """
    if PARSERS < 2 or path.stat().st_size < PARALLEL_FROM:
        return read_ahead(read_chunks(lines, parsing, start=start, first=2))
    return _parsed_apart(path, encoding, start, parsing)


def _parsed_apart(path: Path, encoding: str, start: int, parsing: Parsing) -> Iterator[Chunk]:
    """Chunks in order, parsed by :data:`PARSERS` processes, one piece each in hand and one
    more: memory stays flat. The processes come from a fork server, never forked from this
    one, whose threads (a progress bar's) may hold a lock at the moment of the fork."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    pool = ProcessPoolExecutor(PARSERS, mp_context=context)
    pending: deque[Future[Chunk]] = deque()
    try:
        for piece in _pieces(path, start):
            pending.append(pool.submit(_parse, path, encoding, piece, parsing))
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


def _parse(path: Path, encoding: str, piece: tuple[int, int, int], parsing: Parsing) -> Chunk:
    """One piece of the file (from :func:`_pieces`) as one chunk, in a parsing process."""
    start, stop, number = piece
    lines = read_lines(path, encoding, start=start, stop=stop, first=number)
    parsed = list(read_chunks(lines, parsing, start=start, first=number, size=sys.maxsize))
    return parsed[0] if parsed else Chunk(_batches(parsing), [], stop, piece)


def line_texts(
    path: Path, encoding: str, span: tuple[int, int, int], numbers: set[int]
) -> dict[int, str]:
    """The text of the lines ``numbers`` of a chunk (its ``span``), read from the file again:
    a chunk carries no line's text, for the few problems found once it is staged."""
    start, stop, first = span
    return {
        number: text.rstrip("\r\n")
        for number, text, _, _ in read_lines(path, encoding, start=start, stop=stop, first=first)
        if number in numbers
    }


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
class _Written:
    """What one writer did with its share of a chunk."""

    imported: int  # new subscribers
    updated: int
    kept_suppressed: int
    not_written: list[Problem]  # rows repeating an address an earlier chunk gave


@dataclass
class _Import:
    """One file's import: what spans its chunks. ``writers`` share each chunk (see
    :func:`writer_of`); the first of them is the caller's connection, which names lists and
    tags."""

    writers: list[Connection]
    path: Path
    encoding: str
    columns: frozenset[str]
    dry_run: bool
    create_lists: bool
    report: ImportReport
    list_ids: dict[str, int] = field(default_factory=dict)
    tag_ids: dict[str, int] = field(default_factory=dict)

    @property
    def connection(self) -> Connection:
        return self.writers[0]

    def write(self, chunk: Chunk, pool: ThreadPoolExecutor | None) -> list[Problem]:
        """One chunk, each writer its share in the transaction the caller commits (the others
        in ``pool`` while this thread writes the first); returns the rows not written (an
        address an earlier chunk gave)."""
        batches = chunk.batches
        names = {name for batch in batches for lists in batch.list_sets for name, _ in lists}
        tags = {tag for batch in batches for tagged in batch.tag_sets for tag in tagged}
        known = (len(self.list_ids), len(self.tag_ids))
        if missing := self._ids(LISTS, names, self.list_ids, create=self.create_lists):
            # Checked when the import began; gone since.
            gone = shorten(", ".join(sorted(missing)))
            raise UnknownList(f"no list is named '{gone}'", code="list.unknown", name=gone)
        self._ids(TAGS, tags, self.tag_ids, create=True)
        others: list[Future[_Written]] = []
        if pool is not None:
            if not self.dry_run and (len(self.list_ids), len(self.tag_ids)) != known:
                self.connection.commit()  # lists or tags it made: the other writers refer to them
            others = [
                pool.submit(self._write, writer, batch, chunk.span)
                for writer, batch in zip(self.writers[1:], batches[1:], strict=True)
                if len(batch)
            ]
        done: list[_Written] = []
        try:
            if len(batches[0]):
                done.append(self._write(self.connection, batches[0], chunk.span))
        finally:
            wait(others)
        done += [other.result() for other in others]
        for written in done:
            self.report.imported += written.imported
            self.report.updated += written.updated
            self.report.kept_suppressed += written.kept_suppressed
        return [problem for written in done for problem in written.not_written]

    def _write(
        self, connection: Connection, batch: Batch, span: tuple[int, int, int]
    ) -> _Written:
        """One writer's share of a chunk (its lines in ``span``)."""
        stage(connection, batch, self.list_ids, self.tag_ids)
        seen, stored = _known(connection)
        repeats = []
        if seen:
            connection.execute(ROWS.delete().where(ROWS.c.email_key.in_(seen)))
            lines = {line for line, _, _ in seen.values()}
            texts = line_texts(self.path, self.encoding, span, lines)
            repeats = [
                _repeat(line, email, texts.get(line, ""), first)
                for line, email, first in seen.values()
            ]
        connection.execute(
            SEEN.insert().from_select(["email_key", "line"], select(ROWS.c.email_key, ROWS.c.line))
        )
        written = _Written(
            imported=len(batch) - len(seen) - len(stored),
            updated=count_changed(connection, columns=self.columns) if stored else 0,
            kept_suppressed=sum(
                was in SUPPRESSED and now not in SUPPRESSED for was, now in stored.values()
            ),
            not_written=repeats,
        )
        if not self.dry_run:
            apply(connection, columns=self.columns, source=f"import {self.path.name}")
        clear(connection)
        return written

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


def _known(
    connection: Connection,
) -> tuple[dict[str, tuple[int, str, int]], dict[str, tuple[_Status, _Status]]]:
    """Staged addresses an earlier chunk gave (→ the row's line and address, the earlier line),
    and others stored (→ the stored status, the row's).

    One query, whose answer is empty for a file of new addresses.
    """
    rows = ROWS.c
    found = connection.execute(
        select(rows.email_key, rows.line, rows.email, rows.status, SEEN.c.line,
               SUBSCRIBERS.c.status)
        .select_from(ROWS)
        .outerjoin(SEEN, SEEN.c.email_key == rows.email_key)
        .outerjoin(SUBSCRIBERS, SUBSCRIBERS.c.email_key == rows.email_key)
        .where(or_(SEEN.c.line.is_not(None), SUBSCRIBERS.c.status.is_not(None)))
    ).all()
    seen = {key: (line, email, first) for key, line, email, _, first, _ in found if first}
    stored = {
        key: (SubscriberStatus(was), SubscriberStatus(now))
        for key, _, _, now, first, was in found
        if first is None
    }
    return seen, stored


def _writers(connection: Connection, path: Path) -> list[Connection]:
    """The connections writing the file at ``path``: ``connection``, and on PostgreSQL, for a
    file big enough to be parsed by several processes, one more per core (up to
    :data:`MOST_WRITERS`). Each commits its share of a chunk; a failed import leaves some
    chunks written, as one writer does, and importing the file again finishes it."""
    if connection.dialect.name != "postgresql" or path.stat().st_size < PARALLEL_FROM:
        return [connection]
    more = min(PARSERS, MOST_WRITERS) - 1
    return [connection, *(connection.engine.connect() for _ in range(more))]


def _unknown_list(row: SubscriberRow, text: str, missing: set[str]) -> Problem:
    names = ", ".join(sorted(missing))
    return Problem(
        row.line,
        f"no list is named '{names}': the row is not imported (create the list first, "
        "or let the import create the lists it names)",
        text.rstrip("\r\n"),
        code="csv.unknown_list",
        params={"names": names},
    )


def _repeat(line: int, email: str, text: str, first_line: int) -> Problem:
    return Problem(
        line,
        f"{email} repeats line {first_line}: the first row of an address wins",
        text.rstrip("\r\n"),
        code="csv.repeat",
        params={"address": email, "first": first_line},
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
    # Without --create-list a row naming a list that does not exist is reported: the parsers
    # know the lists there are.
    lists = None if create_lists else frozenset(connection.scalars(select(LISTS.c.name)))
    writers = _writers(connection, path)
    parsing = Parsing(columns, extra_lists, connection.dialect.name, lists, len(writers))
    job = _Import(writers, path, encoding, columns.columns, dry_run, create_lists, report)
    analyzed = 1  # rows when the statistics were last refreshed
    try:
        with ExitStack() as stack:
            stack.enter_context(bulk_writing(connection))
            for writer in writers:
                stack.enter_context(staging(writer, SEEN))
            pool = (
                stack.enter_context(ThreadPoolExecutor(len(writers) - 1))
                if len(writers) > 1 else None
            )
            chunks = parse_chunks(path, encoding, lines, parsing, start=header.read)
            for chunk in chunks:
                not_written = job.write(chunk, pool) if chunk.rows else []
                repeats = sum(problem.code == "csv.repeat" for problem in chunk.problems)
                report.skipped += repeats + len(not_written)
                report.errors += len(chunk.problems) - repeats
                if (read := report.imported + report.updated + report.skipped) >= 2 * analyzed:
                    # Sizes doubled: plan with the new ones (a few times in a whole import).
                    for number, writer in enumerate(writers):
                        refresh_statistics(writer, SEEN, stored=not dry_run and number == 0)
                    analyzed = read
                for writer in writers:
                    writer.commit()
                for problem in sorted(chunk.problems + not_written, key=lambda p: p.line):
                    on_problem(problem)
                on_progress(chunk.read)
        if not dry_run:
            refresh_statistics(connection)
        for writer in writers:
            writer.commit()
    except BaseException:
        for writer in writers:
            writer.invalidate()  # its temporary tables go with it
        raise
    finally:
        for writer in writers[1:]:
            writer.close()
    return report
