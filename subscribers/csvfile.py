"""Subscriber CSV files, the half without a database: encodings, columns, rows, cells.

We read our own export, listmonk's (``email,name,attributes,status…``) and Mailchimp's
(``Email Address,First Name,Last Name…``), in UTF-8 with or without BOM or in GB18030 (what Excel
writes on a Chinese Windows). One record per line: a bad line is reported and never takes the next
lines with it, which a multi-line quoted cell would.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, NamedTuple, TextIO, TypeVar

from distributor.errors import ImportFailed, InvalidAddress, InvalidName, RowError
from subscribers.address import normalise_address
from subscribers.models import (
    DEFAULT_LOCALE,
    LIST_NAME_MAX,
    LOCALE_MAX,
    NAME_MAX,
    OPENID_MAX,
    TAG_NAME_MAX,
    Channel,
    Format,
    SubscriberStatus,
    SubscriptionStatus,
)

EXPORT_COLUMNS = (
    "email", "name", "status", "lists", "channel", "format", "openid", "attributes", "created_at",
)
ATTRIBUTES_MAX = 10_000  # characters of JSON per subscriber
NAME_SEPARATORS = "|,"  # between list or tag names in one cell; ours writes "|"
STATUS_SEPARATOR = ":"  # "青年:unsubscribed": a list and the person's standing on it
_SPLIT_NAMES = re.compile(f"[{re.escape(NAME_SEPARATORS)}]")

# Spreadsheets run a cell starting with one of these as a formula (CSV injection); a leading
# apostrophe makes it text. A leading apostrophe of the data itself is escaped the same way, so
# that stripping one on import gives back exactly what was exported.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_ESCAPED = (*FORMULA_TRIGGERS, "'")

# Header spellings (compared casefolded, with _ and - read as spaces) → our field.
COLUMN_ALIASES = {
    **dict.fromkeys(("email", "email address", "e mail", "邮箱", "电子邮箱", "电子邮件"), "email"),
    **dict.fromkeys(("name", "full name", "姓名"), "name"),
    **dict.fromkeys(("first name", "fname", "given name"), "first_name"),
    **dict.fromkeys(("last name", "lname", "surname", "family name"), "last_name"),
    **dict.fromkeys(("status", "状态"), "status"),
    **dict.fromkeys(("lists", "list"), "lists"),
    **dict.fromkeys(("tags", "tag", "标签"), "tags"),
    "channel": "channel",
    "format": "format",
    **dict.fromkeys(("openid", "wechat openid"), "openid"),
    **dict.fromkeys(("locale", "language"), "locale"),
    **dict.fromkeys(("attributes", "attribs"), "attributes"),
    **dict.fromkeys(("created at", "created"), "created_at"),
    "unsub time": "unsub_time",  # Mailchimp's export of unsubscribed members
    "clean time": "clean_time",  # Mailchimp's export of bounced ("cleaned") members
}
# Which stored column each field writes: a file changes only the columns it has.
FIELD_COLUMN = {
    "email": "email", "name": "name", "first_name": "name", "last_name": "name",
    "status": "status", "unsub_time": "status", "clean_time": "status", "lists": "lists",
    "tags": "tags", "channel": "channel", "format": "format", "openid": "openid",
    "locale": "locale", "attributes": "attributes", "created_at": "created_at",
}
STATUS_ALIASES = {
    **{status.value: status for status in SubscriberStatus},
    "enabled": SubscriberStatus.ACTIVE,  # listmonk
    "subscribed": SubscriberStatus.ACTIVE,  # Mailchimp
    "unconfirmed": SubscriberStatus.PENDING,
    "disabled": SubscriberStatus.UNSUBSCRIBED,  # listmonk: never sent to
    "blocklisted": SubscriberStatus.UNSUBSCRIBED,  # listmonk
    "cleaned": SubscriberStatus.BOUNCED,  # Mailchimp
}


_Choice = TypeVar("_Choice", Channel, Format)


@dataclass(frozen=True)
class Problem:
    """One line of the errors file."""

    line: int
    reason: str
    text: str = ""


@dataclass(frozen=True)
class ColumnMap:
    fields: tuple[str | None, ...]  # per cell position: the field it gives, or None (ignored)
    ignored: tuple[str, ...]  # header names we do not know

    @property
    def columns(self) -> frozenset[str]:
        """The stored columns this file speaks for."""
        return frozenset(FIELD_COLUMN[field] for field in self.fields if field is not None)


class SubscriberRow(NamedTuple):
    """One valid row; columns the file lacks hold their defaults (and are not written on update).

    A named tuple rather than a dataclass: an import makes a million of them, and tuples are
    made twice as fast.
    """

    line: int
    email: str
    email_key: str
    name: str
    status: SubscriberStatus
    lists: tuple[tuple[str, SubscriptionStatus], ...]
    tags: tuple[str, ...]
    channel: Channel
    format: Format
    openid: str | None
    locale: str
    attributes: dict[str, Any]
    created_at: datetime | None  # None: now


# --- encodings and lines -------------------------------------------------------------------------

_BLOCK = 1 << 20


def _decodes_as(path: Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as file:
        try:
            while block := file.read(_BLOCK):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` (BOM), ``utf-8`` or ``gb18030``: the first that decodes the whole file."""
    with path.open("rb") as file:
        start = file.read(4)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFailed(
            f"{path.name} is UTF-16 (Excel's 'Unicode text'): save it as 'CSV UTF-8' instead"
        )
    if start.startswith(codecs.BOM_UTF8):
        candidates: tuple[str, ...] = ("utf-8-sig",)
    else:
        candidates = ("utf-8", "gb18030")
    for encoding in candidates:
        if _decodes_as(path, encoding):
            return encoding
    raise ImportFailed(
        f"{path.name} is neither UTF-8 nor GB18030 text: save it from Excel as 'CSV UTF-8'"
    )


def describe_encoding(encoding: str) -> str:
    return {"utf-8-sig": "UTF-8 (with BOM)", "utf-8": "UTF-8", "gb18030": "GB18030"}[encoding]


def read_lines(path: Path, encoding: str) -> Iterator[tuple[int, str, int]]:
    """``(line number, text, bytes read so far)``, one line at a time (never the whole file)."""
    done = 0
    with path.open("rb") as file:
        # GB18030 and UTF-8 never use the byte 0x0A inside a character: splitting on it is safe.
        for number, raw in enumerate(file, start=1):
            done += len(raw)
            yield number, raw.decode(encoding), done


def split_line(text: str) -> list[str]:
    """The cells of one CSV line; :class:`RowError` on broken quoting."""
    if '"' not in text:  # what the csv module would do, without its cost per line
        return text.rstrip("\r\n").split(",") if text.strip() else []
    try:
        return next(csv.reader((text,), strict=True), [])
    except csv.Error as error:
        raise RowError(f"broken quoting ({error})") from None


# --- columns -------------------------------------------------------------------------------------


def header_key(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").casefold().split())


def map_columns(header: Sequence[str]) -> ColumnMap:
    """Which field each column gives; :class:`ImportFailed` when the file cannot be read at all."""
    fields = tuple(COLUMN_ALIASES.get(header_key(name)) for name in header)
    if "email" not in fields:
        raise ImportFailed(
            f"no email column among {', '.join(repr(name) for name in header)}: "
            "name one 'email' (or 'Email Address')"
        )
    for field in set(fields) - {None}:
        names = [name for name, given in zip(header, fields, strict=True) if given == field]
        if len(names) > 1:
            raise ImportFailed(f"columns {' and '.join(map(repr, names))} both give {field}")
    ignored = tuple(
        name for name, field in zip(header, fields, strict=True) if field is None and name.strip()
    )
    return ColumnMap(fields=fields, ignored=ignored)


# --- cells ---------------------------------------------------------------------------------------


def escape_cell(value: str) -> str:
    """Make a cell inert in a spreadsheet: ``=1+1`` → ``'=1+1``."""
    return "'" + value if value.startswith(_ESCAPED) else value


def unescape_cell(value: str) -> str:
    """Undo :func:`escape_cell`; an apostrophe before anything else is data and stays."""
    return value[1:] if value.startswith("'") and value[1:].startswith(_ESCAPED) else value


def split_names(cell: str) -> list[str]:
    """``a|b``, ``a, b`` or Mailchimp's ``"a","b"`` → ``['a', 'b']``."""
    names = (part.strip().strip('"').strip() for part in _SPLIT_NAMES.split(cell))
    return [name for name in names if name]


def check_label(kind: str, name: str, limit: int) -> str:
    """A list or tag name fit to be written in a cell; :class:`InvalidName` saying why not."""
    name = name.strip()
    if not name:
        raise InvalidName(f"a {kind} name cannot be empty")
    if len(name) > limit:
        raise InvalidName(f"{kind} name '{name[:40]}…' is longer than {limit} characters")
    bad = set(name) & set(NAME_SEPARATORS + STATUS_SEPARATOR)
    if bad:
        raise InvalidName(f"{kind} name '{name}' cannot contain {' '.join(sorted(bad))}")
    return name


def format_memberships(memberships: Sequence[tuple[str, SubscriptionStatus]]) -> str:
    """``[('会员快讯', active), ('青年', unsubscribed)]`` → ``会员快讯|青年:unsubscribed``."""
    return "|".join(
        name if status is SubscriptionStatus.ACTIVE else f"{name}{STATUS_SEPARATOR}{status}"
        for name, status in sorted(memberships)
    )


@lru_cache(maxsize=1024)
def parse_memberships(cell: str) -> tuple[tuple[str, SubscriptionStatus], ...]:
    """``会员快讯|青年:unsubscribed`` → the lists and statuses; cached, as cells repeat a lot."""
    memberships = []
    for entry in split_names(cell):
        name, _, status = entry.partition(STATUS_SEPARATOR)
        try:
            parsed = SubscriptionStatus(status.strip().lower() or SubscriptionStatus.ACTIVE)
        except ValueError:
            raise RowError(
                f"list '{entry}': '{status}' is not one of {_choices(SubscriptionStatus)}"
            ) from None
        memberships.append((_label("list", name, LIST_NAME_MAX), parsed))
    return tuple(memberships)


@lru_cache(maxsize=1024)
def parse_tags(cell: str) -> tuple[str, ...]:
    return tuple(_label("tag", tag, TAG_NAME_MAX) for tag in split_names(cell))


def _label(kind: str, name: str, limit: int) -> str:
    try:
        return check_label(kind, name, limit)
    except InvalidName as error:
        raise RowError(error.message) from None


def _choices(enum: Any) -> str:
    return ", ".join(member.value for member in enum)


def _text(field: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise RowError(f"{field} is longer than {limit} characters ({len(value)})")
    return value


@lru_cache(maxsize=256)
def _status(value: str) -> SubscriberStatus:
    key = value.strip().lower()
    if not key:
        return SubscriberStatus.ACTIVE
    try:
        return STATUS_ALIASES[key]
    except KeyError:
        raise RowError(f"status '{value}' is not one of {_choices(SubscriberStatus)}") from None


@lru_cache(maxsize=256)
def _choice(enum: type[_Choice], field: str, value: str, default: _Choice) -> _Choice:
    key = value.strip().lower()
    if not key:
        return default
    try:
        return enum(key)
    except ValueError:
        raise RowError(f"{field} '{value}' is not one of {_choices(enum)}") from None


def _attributes(value: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    _text("attributes", value, ATTRIBUTES_MAX)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise RowError(f"attributes are not JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(parsed, dict):
        raise RowError('attributes must be a JSON object like {"城市": "杭州"}')
    return parsed


def _timestamp(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RowError(f"created_at '{value}' is not an ISO 8601 date and time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def join_name(first: str, last: str) -> str:
    """Mailchimp's two name columns as one: 王 + 钰哲 → 王钰哲, Ada + Lovelace → Ada Lovelace."""
    first, last = first.strip(), last.strip()
    if first and last and not (first + last).isascii():
        return last + first
    return " ".join(part for part in (first, last) if part)


def parse_row(cells: Sequence[str], columns: ColumnMap, line: int) -> SubscriberRow:
    """One CSV row as a subscriber; :class:`RowError` with the first thing wrong with it."""
    if any(cell.strip() for cell in cells[len(columns.fields):]):
        raise RowError(
            f"{len(cells)} cells but the header names {len(columns.fields)} columns "
            "(a value in an unknown column)"
        )
    if "'" in "".join(cells):  # rarely: only then can a cell be escaped
        cells = [unescape_cell(cell) for cell in cells]
    given: dict[str | None, str] = dict(zip(columns.fields, cells, strict=False))
    try:
        address = normalise_address(given.get("email", ""))
    except InvalidAddress as error:
        raise RowError(error.message) from None
    status = _status(given.get("status", ""))
    if given.get("unsub_time", "").strip():
        status = SubscriberStatus.UNSUBSCRIBED
    if given.get("clean_time", "").strip():
        status = SubscriberStatus.BOUNCED
    name = given.get("name", "").strip() or join_name(
        given.get("first_name", ""), given.get("last_name", "")
    )
    return SubscriberRow(
        line=line,
        email=address.email,
        email_key=address.key,
        name=_text("name", name, NAME_MAX),
        status=status,
        lists=parse_memberships(given.get("lists", "")),
        tags=parse_tags(given.get("tags", "")),
        channel=_choice(Channel, "channel", given.get("channel", ""), Channel.EMAIL),
        format=_choice(Format, "format", given.get("format", ""), Format.FULL),
        openid=_text("openid", given.get("openid", "").strip(), OPENID_MAX) or None,
        locale=_text("locale", given.get("locale", "").strip(), LOCALE_MAX) or DEFAULT_LOCALE,
        attributes=_attributes(given.get("attributes", "")),
        created_at=_timestamp(given.get("created_at", "")),
    )


# --- export --------------------------------------------------------------------------------------


def export_cells(
    *,
    email: str,
    name: str,
    status: SubscriberStatus,
    memberships: Sequence[tuple[str, SubscriptionStatus]],
    channel: Channel,
    format: Format,
    openid: str | None,
    attributes: dict[str, Any],
    created_at: datetime,
) -> list[str]:
    """One subscriber as the cells of :data:`EXPORT_COLUMNS`, safe to open in a spreadsheet."""
    cells = [
        email,
        name,
        status.value,
        format_memberships(memberships),
        channel.value,
        format.value,
        openid or "",
        json.dumps(attributes, ensure_ascii=False, sort_keys=True) if attributes else "",
        created_at.isoformat(),
    ]
    return [escape_cell(cell) for cell in cells]


class ProblemLog:
    """Problems into a CSV file (``line,reason,content``), created with the first problem.

    UTF-8 with BOM, so that Excel shows the Chinese in it; cells escaped like an export.
    """

    SHOWN = 5  # problems kept in memory to print on screen

    def __init__(self, path: Path) -> None:
        self.path = path
        self.count = 0
        self.first: list[Problem] = []
        self._file: TextIO | None = None

    def add(self, problem: Problem) -> None:
        if self._file is None:
            self._file = self.path.open("w", encoding="utf-8-sig", newline="")
            csv.writer(self._file).writerow(("line", "reason", "content"))
        csv.writer(self._file).writerow(
            (problem.line, escape_cell(problem.reason), escape_cell(problem.text))
        )
        self.count += 1
        if len(self.first) < self.SHOWN:
            self.first.append(problem)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def __enter__(self) -> ProblemLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
