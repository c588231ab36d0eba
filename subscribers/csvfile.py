"""Subscriber CSV files, the half without a database: encodings, columns, rows, cells.

We read our own export, listmonk's (``email,name,attributes,status…``) and Mailchimp's
(``Email Address,First Name,Last Name…``), in UTF-8 with or without BOM or in GB18030 (what Excel
writes on a Chinese Windows); a column we do not know (单位, 手机) is kept as an attribute. One
record per line: a bad line is reported and never takes the next lines with it, which a
multi-line quoted cell would; so no value we write holds a line break (see
:func:`subscribers.text.one_line`), and a line in another encoding than the file's is reported,
never decoded as the file's.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import json
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple, TextIO, TypeVar

from distributor.errors import ImportFailed, InvalidAddress, InvalidName, Notice, RowError
from distributor.vocabulary import EMAIL_VARIANTS, Variant
from subscribers.address import normalise_address
from subscribers.models import (
    DEFAULT_LOCALE,
    LIST_NAME_MAX,
    LOCALE_MAX,
    NAME_MAX,
    OPENID_MAX,
    TAG_NAME_MAX,
    ChannelPreference,
    SubscriberStatus,
    SubscriptionStatus,
)
from subscribers.text import CONTROLS, SPACES, has_control, one_line, shorten

EXPORT_COLUMNS = (
    "email", "name", "status", "lists", "channel", "format", "openid", "attributes", "created_at",
)
ATTRIBUTES_MAX = 10_000  # characters of JSON per subscriber
ROW_ECHO_MAX = 300  # characters of a rejected line written back in the errors file
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


_Choice = TypeVar("_Choice", ChannelPreference, Variant)
_CHANNELS = tuple(ChannelPreference)


@dataclass(frozen=True)
class Problem:
    """One line of the errors file."""

    line: int
    reason: str  # in English, as the errors file and the CLI give it
    text: str = ""
    code: str | None = None  # the reason's code and values, which a page words in its language
    params: Mapping[str, object] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class ColumnMap:
    fields: tuple[str | None, ...]  # per cell position: the field it gives, or None
    # (cell position, attribute key) of each column we do not know: kept as an attribute.
    extra: tuple[tuple[int, str], ...] = ()
    unnamed: tuple[int, ...] = ()  # positions of columns with an empty header: never a value

    @property
    def columns(self) -> frozenset[str]:
        """The stored columns this file speaks for."""
        known = {FIELD_COLUMN[field] for field in self.fields if field is not None}
        return frozenset(known | {"attributes"} if self.extra else known)

    @property
    def attribute_keys(self) -> tuple[str, ...]:
        return tuple(key for _, key in self.extra)


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
    channel: ChannelPreference
    format: Variant
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


def _line_encoding(raw: bytes) -> str | None:
    """What one line is written in: ``ascii``, ``utf-8``, ``gb18030``, ``either`` or None.

    GB18030 Chinese is valid UTF-8 now and then (钱 is C7 AE, the UTF-8 for Ǯ), but only as
    two-byte sequences, while Chinese in UTF-8 takes three: a line that decodes both ways with
    no character from U+0800 up could be either, and is read in the file's encoding.
    """
    if raw.isascii():
        return "ascii"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    try:
        raw.decode("gb18030")
    except UnicodeDecodeError:
        return "utf-8" if text is not None else None
    if text is None:
        return "gb18030"
    return "utf-8" if max(text) >= "\u0800" else "either"


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` (BOM), ``utf-8`` or ``gb18030``.

    UTF-8 when the whole file decodes as UTF-8 (read in blocks: the common case costs little).
    Otherwise the encoding most of its lines are plainly in: a file Excel saved in GB18030 and
    someone then added to in a UTF-8 editor is GB18030, and :func:`read_lines` reports the UTF-8
    lines in it.
    """
    with path.open("rb") as file:
        start = file.read(4)
    if start.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFailed(
            f"{path.name} is UTF-16 (Excel's 'Unicode text'): save it as 'CSV UTF-8' instead",
            code="csv.utf16",
            file=path.name,
        )
    if start.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if _decodes_as(path, "utf-8"):
        return "utf-8"
    with path.open("rb") as file:
        found = Counter(_line_encoding(raw) for raw in file)
    if found["gb18030"] and found["gb18030"] >= found["utf-8"]:
        return "gb18030"
    if found["utf-8"]:
        return "utf-8"
    raise ImportFailed(
        f"{path.name} is neither UTF-8 nor GB18030 text: save it from Excel as 'CSV UTF-8'",
        code="csv.encoding",
        file=path.name,
    )


def describe_encoding(encoding: str) -> str:
    return {"utf-8-sig": "UTF-8 (with BOM)", "utf-8": "UTF-8", "gb18030": "GB18030"}[encoding]


class Line(NamedTuple):
    number: int
    text: str  # decoded; when ``error`` is set, as much as could be read, for the errors file
    read: int  # bytes of the file read so far
    error: Notice | None = None  # why the line cannot be read as the file's encoding


def read_lines(
    path: Path, encoding: str, *, start: int = 0, stop: int | None = None, first: int = 1
) -> Iterator[Line]:
    """The file's lines, one at a time (never the whole file); or those from byte ``start``
    (where line ``first`` begins) to byte ``stop`` (where one ends).

    A line that does not decode as ``encoding``, or (in a GB18030 file) that is plainly UTF-8,
    is given with an error, never turned into mojibake: GB18030 decodes almost any bytes, so
    UTF-8 Chinese read as GB18030 would corrupt a name without a sign.
    """
    label = describe_encoding(encoding)
    done = start
    with path.open("rb") as file:
        file.seek(start)
        # GB18030 and UTF-8 never use the byte 0x0A inside a character: splitting on it is safe.
        for number, raw in enumerate(file, start=first):
            if stop is not None and done >= stop:
                return
            done += len(raw)
            try:
                text = raw.decode(encoding)
            except UnicodeDecodeError:
                found = _line_encoding(raw)
                yield Line(number, raw.decode(encoding, "replace"), done, _other_encoding(
                    label, "GB18030" if found == "gb18030" else "neither UTF-8 nor GB18030"
                ))
                continue
            if encoding == "gb18030" and not raw.isascii() and _line_encoding(raw) == "utf-8":
                yield Line(number, raw.decode("utf-8"), done, _other_encoding(label, "UTF-8"))
                continue
            yield Line(number, text, done)


def _other_encoding(file_encoding: str, line_encoding: str) -> Notice:
    return Notice(
        f"this line is {line_encoding} but the file is {file_encoding}: "
        "save the whole file in one encoding ('CSV UTF-8') and import the line again",
        code="csv.line_encoding",
        line_encoding=line_encoding,
        file_encoding=file_encoding,
    )


def split_line(text: str) -> list[str]:
    """The cells of one CSV line; :class:`RowError` on broken quoting."""
    return LineSplitter()(text)


class LineSplitter:
    """:func:`split_line` for the lines of one file: one csv reader for them all, fed a line at
    a time, since making a reader costs more than the line's parsing. One per thread."""

    def __init__(self) -> None:
        self._line: str | None = None
        self._reader = csv.reader(self, strict=True)

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        """The line to split, once: a quote left open ends the data there, as in a file."""
        line, self._line = self._line, None
        if line is None:
            raise StopIteration
        return line

    def __call__(self, text: str) -> list[str]:
        if '"' not in text:  # what the csv module would do, without its cost per line
            return text.rstrip("\r\n").split(",") if text.strip() else []
        self._line = text
        try:
            return next(self._reader, [])
        except csv.Error as error:
            raise RowError(f"broken quoting ({error})", code="csv.quoting") from None


# --- columns -------------------------------------------------------------------------------------


def header_key(name: str) -> str:
    return " ".join(name.replace("_", " ").replace("-", " ").casefold().split())


def map_columns(header: Sequence[str]) -> ColumnMap:
    """Which field each column gives, and which attribute each other named column keeps;
    :class:`ImportFailed` when the file cannot be read at all."""
    fields = tuple(COLUMN_ALIASES.get(header_key(name)) for name in header)
    if "email" not in fields:
        raise ImportFailed(
            f"no email column among {', '.join(repr(shorten(name)) for name in header)}: "
            "name one 'email' (or 'Email Address')",
            code="csv.no_email",
            columns=", ".join(shorten(name) for name in header),
        )
    for field in set(fields) - {None}:
        names = [name for name, given in zip(header, fields, strict=True) if given == field]
        if len(names) > 1:
            raise ImportFailed(
                f"columns {' and '.join(map(repr, names))} both give {field}",
                code="csv.columns_clash",
                columns=", ".join(names),
            )
    extra = tuple(
        (position, _attribute_key(name))
        for position, (name, field) in enumerate(zip(header, fields, strict=True))
        if field is None and name.strip()
    )
    keys = [key for _, key in extra]
    for key in {key for key in keys if keys.count(key) > 1}:
        raise ImportFailed(
            f"two columns are named '{key}': name each column once",
            code="csv.column_twice",
            name=key,
        )
    unnamed = tuple(
        position
        for position, (name, field) in enumerate(zip(header, fields, strict=True))
        if field is None and not name.strip()
    )
    return ColumnMap(fields=fields, extra=extra, unnamed=unnamed)


def _attribute_key(name: str) -> str:
    key = name.strip()
    if len(key) > TAG_NAME_MAX or has_control(key):
        raise ImportFailed(
            f"column '{shorten(one_line(key))}' cannot name an attribute",
            code="csv.column_name",
            name=shorten(one_line(key)),
        )
    return key


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


def label_pattern() -> str:
    """What :func:`check_label` keeps as given, as a contract states it: no control character
    or separator, and no space at either end."""
    unfit = CONTROLS + NAME_SEPARATORS + STATUS_SEPARATOR
    return rf"^[^{unfit}{SPACES}](?:[^{unfit}]*[^{unfit}{SPACES}])?$"


def check_label(kind: str, name: str, limit: int) -> str:
    """A list or tag name fit to be written in a cell; :class:`InvalidName` saying why not."""
    name = name.strip()
    if not name:
        raise InvalidName(f"a {kind} name cannot be empty", code="name.empty")
    if len(name) > limit:
        raise InvalidName(
            f"{kind} name '{shorten(name)}' is longer than {limit} characters",
            code="name.long",
            name=shorten(name),
            most=limit,
        )
    if has_control(name):
        raise InvalidName(
            f"{kind} name '{shorten(one_line(name))}' cannot contain a line break or a "
            "control character",
            code="name.control",
            name=shorten(one_line(name)),
        )
    bad = set(name) & set(NAME_SEPARATORS + STATUS_SEPARATOR)
    if bad:
        raise InvalidName(
            f"{kind} name '{shorten(name)}' cannot contain {' '.join(sorted(bad))}",
            code="name.separator",
            name=shorten(name),
            characters=" ".join(sorted(bad)),
        )
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
                f"list '{shorten(entry)}': '{shorten(status)}' is not one of "
                f"{_choices(SubscriptionStatus)}",
                code="csv.list_status",
                list=shorten(entry),
                status=shorten(status),
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
        raise RowError(error.message, code=error.code, **error.params) from None


def _choices(enum: Any) -> str:
    return ", ".join(member.value for member in enum)


def _text(field: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise RowError(
            f"{field} is longer than {limit} characters ({len(value)})",
            code="csv.too_long",
            field=field,
            most=limit,
        )
    return value


@lru_cache(maxsize=256)
def _status(value: str) -> SubscriberStatus:
    key = value.strip().lower()
    if not key:
        return SubscriberStatus.ACTIVE
    try:
        return STATUS_ALIASES[key]
    except KeyError:
        raise RowError(
            f"status '{shorten(value)}' is not one of {_choices(SubscriberStatus)}",
            code="csv.status",
            value=shorten(value),
        ) from None


@lru_cache(maxsize=256)
def _choice(choices: tuple[_Choice, ...], field: str, value: str, default: _Choice) -> _Choice:
    key = value.strip().lower()
    if not key:
        return default
    for choice in choices:
        if choice.value == key:
            return choice
    raise RowError(
        f"{field} '{shorten(value)}' is not one of {_choices(choices)}",
        code="csv.choice",
        field=field,
        value=shorten(value),
        choices=_choices(choices),
    )


def _attributes(value: str) -> dict[str, Any]:
    if not value.strip():
        return {}
    _text("attributes", value, ATTRIBUTES_MAX)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as error:
        raise RowError(
            f"attributes are not JSON ({error.msg} at column {error.colno})",
            code="csv.attributes_json",
            column=error.colno,
        ) from None
    if not isinstance(parsed, dict):
        raise RowError(
            'attributes must be a JSON object like {"城市": "杭州"}', code="csv.attributes_object"
        )
    return parsed


def _timestamp(value: str) -> datetime | None:
    if not value or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RowError(
            f"created_at '{shorten(value)}' is not an ISO 8601 date and time",
            code="csv.created_at",
            value=shorten(value),
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def join_name(first: str, last: str) -> str:
    """Mailchimp's two name columns as one: 王 + 钰哲 → 王钰哲, Ada + Lovelace → Ada Lovelace."""
    first, last = one_line(first), one_line(last)
    if first and last and not (first + last).isascii():
        return last + first
    return " ".join(part for part in (first, last) if part)


def parse_row(
    cells: Sequence[str],
    columns: ColumnMap,
    line: int,
    extra_lists: tuple[tuple[str, SubscriptionStatus], ...] = (),
) -> SubscriberRow:
    """One CSV row as a subscriber, on ``extra_lists`` too; :class:`RowError` with the first
    thing wrong with it. For many rows of one file, :class:`RowParser` is quicker."""
    return RowParser(columns, extra_lists)(cells, line)


_FIELDS = (
    "email", "name", "first_name", "last_name", "status", "unsub_time", "clean_time", "lists",
    "tags", "channel", "format", "openid", "locale", "attributes", "created_at",
)


class RowParser:
    """:func:`parse_row` for the rows of one file, a million times: where each field is, worked
    out once; the cells that repeat (lists, tags, channel, format) parsed once each.

    Each test is skipped when it cannot fail, and the tests go in the order that makes the
    first thing wrong with a row the one reported.
    """

    REMEMBERED = 1024  # distinct cells of a kind kept parsed; then forgotten, and begun again

    def __init__(
        self, columns: ColumnMap, extra_lists: tuple[tuple[str, SubscriptionStatus], ...] = ()
    ) -> None:
        self.columns = columns
        self.extra_lists = extra_lists
        self.width = len(columns.fields)
        # A field the file lacks reads the blank cell put after the last column; the cells of
        # all fields are taken in one call.
        where = {field: at for at, field in enumerate(columns.fields) if field is not None}
        self._fields = itemgetter(*(where.get(field, self.width) for field in _FIELDS))
        # Per repeating kind of cell: each cell seen, parsed.
        self._parsed: dict[str, dict[str, Any]] = {
            "lists": {}, "tags": {}, "channel": {}, "format": {}
        }

    def _cell(self, kind: str, cell: str) -> Any:
        """The parsed ``cell`` of a repeating ``kind``, the first time it is seen (then kept)."""
        if kind == "lists":
            parsed: Any = parse_memberships(cell) + self.extra_lists
        elif kind == "tags":
            parsed = parse_tags(cell)
        elif kind == "channel":
            parsed = _choice(_CHANNELS, "channel", cell, ChannelPreference.EMAIL)
        else:
            parsed = _choice(EMAIL_VARIANTS, "format", cell, Variant.FULL)
        seen = self._parsed[kind]
        if len(seen) >= self.REMEMBERED:
            seen.clear()
        seen[cell] = parsed
        return parsed

    def __call__(self, cells: Sequence[str], line: int) -> SubscriberRow:
        columns, width = self.columns, self.width
        if len(cells) > width and any(cell.strip() for cell in cells[width:]):
            raise RowError(
                f"{len(cells)} cells but the header names {width} columns "
                "(a value beyond the last column)",
                code="csv.extra_cells",
                cells=len(cells),
                columns=width,
            )
        if columns.unnamed and any(
            cells[position].strip() for position in columns.unnamed if position < len(cells)
        ):
            raise RowError(
                "a value in a column without a header: name the column", code="csv.unnamed_value"
            )
        if "'" in "".join(cells):  # rarely: only then can a cell be escaped
            cells = [unescape_cell(cell) for cell in cells]
        if len(cells) >= width:
            cells = [*cells[:width], ""]
        else:
            cells = [*cells, *[""] * (width + 1 - len(cells))]
        (
            email, name, first_name, last_name, status_cell, unsub_time, clean_time, lists_cell,
            tags_cell, channel_cell, format_cell, openid, locale, attributes_cell, created_at,
        ) = self._fields(cells)
        try:
            address = normalise_address(email)
        except InvalidAddress as error:
            raise RowError(error.message, code=error.code, **error.params) from None
        status = _status(status_cell)
        # An empty cell (most, and every field the file lacks) is tested without a call.
        if unsub_time and unsub_time.strip():
            status = SubscriberStatus.UNSUBSCRIBED
        if clean_time and clean_time.strip():
            status = SubscriberStatus.BOUNCED
        name = one_line(name) or join_name(first_name, last_name)
        attributes = _attributes(attributes_cell) if attributes_cell else {}
        if columns.extra:
            attributes.update(_extra_attributes(cells, columns.extra))
        openid = openid.strip()
        if not openid.isprintable() and has_control(openid):  # a control is never printable
            raise RowError("openid contains a control character", code="csv.openid")
        if len(name) > NAME_MAX:
            _text("name", name, NAME_MAX)
        parsed = self._parsed
        if (lists := parsed["lists"].get(lists_cell)) is None:
            lists = self._cell("lists", lists_cell)
        if (tags := parsed["tags"].get(tags_cell)) is None:
            tags = self._cell("tags", tags_cell)
        if (channel := parsed["channel"].get(channel_cell)) is None:
            channel = self._cell("channel", channel_cell)
        if (format_ := parsed["format"].get(format_cell)) is None:
            format_ = self._cell("format", format_cell)
        if len(openid) > OPENID_MAX:
            _text("openid", openid, OPENID_MAX)
        locale = locale.strip()
        if len(locale) > LOCALE_MAX:
            _text("locale", locale, LOCALE_MAX)
        return SubscriberRow(
            line,
            address.email,
            address.key,
            name,
            status,
            lists,
            tags,
            channel,
            format_,
            openid or None,
            locale or DEFAULT_LOCALE,
            attributes,
            _timestamp(created_at) if created_at else None,
        )


def _extra_attributes(cells: Sequence[str], extra: Sequence[tuple[int, str]]) -> dict[str, str]:
    """The non-empty cells of the columns we do not know, by header: an empty cell gives none,
    so a file without a value leaves the stored one alone."""
    found = {
        key: cells[position].strip()
        for position, key in extra
        if position < len(cells) and cells[position].strip()
    }
    _text("attributes", "".join(found.values()), ATTRIBUTES_MAX)
    return found


# --- export --------------------------------------------------------------------------------------


def export_cells(
    *,
    email: str,
    name: str,
    status: SubscriberStatus,
    memberships: Sequence[tuple[str, SubscriptionStatus]],
    channel: ChannelPreference,
    format: Variant,
    openid: str | None,
    attributes: dict[str, Any],
    created_at: datetime,
) -> list[str]:
    """One subscriber as the cells of :data:`EXPORT_COLUMNS`, safe to open in a spreadsheet."""
    cells = [
        email,
        one_line(name),  # stored before names were kept to one line: still one record per line
        status.value,
        one_line(format_memberships(memberships)),
        channel.value,
        format.value,
        one_line(openid or ""),
        json.dumps(attributes, ensure_ascii=False, sort_keys=True) if attributes else "",
        created_at.isoformat(),
    ]
    return [escape_cell(cell) for cell in cells]


class ProblemLog:
    """Problems into a CSV file (``line,reason,content``), created with the first problem.

    UTF-8 with BOM, so that Excel shows the Chinese in it; cells escaped like an export; a
    line's content cut to :data:`ROW_ECHO_MAX` characters, as a 10 MB line would hide the rest.
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
            (
                problem.line,
                escape_cell(problem.reason),
                escape_cell(shorten(problem.text, ROW_ECHO_MAX)),
            )
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
