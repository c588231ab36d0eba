"""Issue file → :class:`ImportReport`: refuse what cannot be an issue, then hand it to a parser.

The checks run cheapest first (size, then bytes, then encoding) so a wrong file fails fast with a
message that says what to do. Nothing here touches the database.
"""

from __future__ import annotations

import codecs
import json
import os
from pathlib import Path, PurePath

from distributor.errors import ImportFailed, IssueFormatError
from distributor.issues.document import ImportReport, IssueDocument
from distributor.issues.lunar import check_printed_dates
from distributor.issues.markdown import parse_markdown
from distributor.issues.plaintext import parse_plaintext

MAX_ISSUE_BYTES = 5 * 1024 * 1024
"""Largest issue file accepted, in bytes (5 MiB); a printed issue's text is well under 1 MiB."""
FORMATS = ("auto", "text", "markdown", "json")
_EXTENSIONS = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".json": "json"}
_SNIFF_BYTES = 8192
"""How much of the file the binary check looks at."""
_MAX_CONTROL_SHARE = 0.3
"""A text with more control characters than this share of its bytes is binary."""
_CONTROL_BYTES = frozenset(range(0x20)) - frozenset(b"\t\n\r\f\v") | {0x7F}


def read_issue(data: bytes, *, source: str, format: str = "auto") -> ImportReport:
    """Check and parse an issue's bytes; ``source`` (a file name) is named in every error."""
    if format not in FORMATS:
        raise ImportFailed(f"unknown issue format '{format}'; use one of {', '.join(FORMATS)}")
    _check_size(len(data), source)
    text = _decode(data, source)
    if not text.strip():
        raise ImportFailed(f"{source}: the file is empty")
    chosen = _detect_format(source, text) if format == "auto" else format
    if chosen == "json":
        return _read_json(text, source)
    if chosen == "markdown":
        return parse_markdown(text, source=source)
    return parse_plaintext(text, source=source)


def read_issue_file(path: str | os.PathLike[str], format: str = "auto") -> ImportReport:
    """Read an issue file, refusing one that is too large before reading it."""
    file_path = Path(path)
    source = file_path.name
    try:
        if not file_path.is_file():
            message = "is not a file" if file_path.exists() else "no such file"
            raise ImportFailed(f"{file_path}: {message}")
        _check_size(file_path.stat().st_size, source)
        with file_path.open("rb") as file:
            data = file.read(MAX_ISSUE_BYTES + 1)  # the file may have grown since stat()
    except OSError as error:
        raise ImportFailed(f"{file_path}: cannot be read ({error.strerror})") from None
    return read_issue(data, source=source, format=format)


def _check_size(size: int, source: str) -> None:
    if size > MAX_ISSUE_BYTES:
        raise ImportFailed(
            f"{source}: the file is {size / 2**20:.1f} MiB; an issue file may be at most "
            f"{MAX_ISSUE_BYTES / 2**20:.0f} MiB (is it the right file?)"
        )


def _decode(data: bytes, source: str) -> str:
    """UTF-8 text with the BOM removed and line ends made '\\n'; anything else is refused."""
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFailed(f"{source}: the file is UTF-16; save it as UTF-8")
    _check_not_binary(data, source)
    data = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ImportFailed(
            f"{source}, line {line}: not valid UTF-8{_encoding_guess(data)}; save the file as UTF-8"
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _check_not_binary(data: bytes, source: str) -> None:
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ImportFailed(
            f"{source}, line {line}: the file is binary (it contains NUL bytes), not a text export"
        )
    head = data[:_SNIFF_BYTES]
    controls = sum(byte in _CONTROL_BYTES for byte in head)
    if head and controls / len(head) > _MAX_CONTROL_SHARE:
        raise ImportFailed(
            f"{source}: the file is binary (mostly control characters), not a text export"
        )


def _encoding_guess(data: bytes) -> str:
    """A hint naming GB18030/GBK when the bytes read as Chinese in that encoding."""
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return ""
    wide = [char for char in text if not char.isascii()]
    han = [char for char in wide if "\u4e00" <= char <= "\u9fff"]
    return " (it looks like GB18030/GBK)" if wide and len(han) * 2 > len(wide) else ""


def _detect_format(source: str, text: str) -> str:
    """By extension when it is a known one, else by the first character."""
    suffix = PurePath(source).suffix.lower()
    if suffix in _EXTENSIONS:
        return _EXTENSIONS[suffix]
    start = text.lstrip()
    if start.startswith("{"):
        return "json"
    if start.startswith("---"):
        return "markdown"
    return "text"


def _read_json(text: str, source: str) -> ImportReport:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise IssueFormatError(
            f"not valid JSON: {error.msg} (column {error.colno})", source=source, line=error.lineno
        ) from None
    document = IssueDocument.from_json(data, source=source)
    dates = check_printed_dates(document.date, document.masthead)
    return ImportReport(
        document=document, format="json", warnings=[f"masthead: {w}" for w in dates]
    )
