"""Issue file → :class:`ImportReport`: refuse what cannot be an issue, then hand it to a parser.

The checks run cheapest first (size, then bytes, then encoding) so a wrong file fails fast with a
message that says what to do. Text is UTF-8 or GB18030 (GBK), as for the subscriber CSV import.
A .docx or PDF is known by its first bytes, whatever its name, and read by its own module
(:mod:`~distributor.issues.word`, :mod:`~distributor.issues.pdf`) into the text importer's lines.
Nothing here touches the database.
"""

from __future__ import annotations

import codecs
import json
import os
from dataclasses import replace
from pathlib import Path, PurePath

from distributor.errors import ImportFailed, IssueFormatError, Notice
from distributor.issues.document import ImportReport, IssueDocument
from distributor.issues.files import MAX_DOCUMENT_BYTES, check_document_size, file_kind
from distributor.issues.lunar import check_printed_dates
from distributor.issues.markdown import parse_markdown
from distributor.issues.plaintext import parse_plaintext

MAX_ISSUE_BYTES = 5 * 1024 * 1024
"""Largest issue file accepted, in bytes (5 MiB); a printed issue's text is well under 1 MiB."""
MAX_UPLOAD_BYTES = MAX_DOCUMENT_BYTES
"""Most bytes read from an upload or file: the largest document; text is checked after."""
FORMATS = ("auto", "text", "markdown", "json", "docx", "pdf")
MASTHEAD = Notice("masthead", code="place.masthead")  # where a JSON issue's printed dates are
_EXTENSIONS = {".txt": "text", ".md": "markdown", ".markdown": "markdown", ".json": "json"}
_DOCUMENT_EXTENSIONS = (".docx", ".pdf")
_SNIFF_BYTES = 8192
"""How much of the file the binary check looks at."""
_MAX_CONTROL_SHARE = 0.3
"""A text with more control characters than this share of its bytes is binary."""
_CONTROL_BYTES = frozenset(range(0x20)) - frozenset(b"\t\n\r\f\v") | {0x7F}


def read_issue(data: bytes, *, source: str, format: str = "auto") -> ImportReport:
    """Check and parse an issue's bytes; ``source`` (a file name) is named in every error."""
    if format not in FORMATS:
        raise ImportFailed(
            f"unknown issue format '{format}'; use one of {', '.join(FORMATS)}",
            code="issue.unknown_format",
            format=format,
            formats=", ".join(FORMATS),
        )
    kind = file_kind(data, source)
    if format in ("docx", "pdf") and kind != format:
        raise ImportFailed(
            f"{source}: the file is not a {format.upper()} (by its first bytes)",
            code="issue.not_format",
            file=source,
            format=format.upper(),
        )
    if kind != "text":
        check_document_size(len(data), source)
        if kind == "docx":
            from distributor.issues.word import read_docx  # python-docx: only when needed

            return read_docx(data, source=source)
        from distributor.issues.pdf import read_pdf  # pdfminer: only when needed

        return read_pdf(data, source=source)
    _check_size(len(data), source)
    text, encoding = _decode(data, source)
    if not text.strip():
        raise ImportFailed(f"{source}: the file is empty", code="issue.empty", file=source)
    chosen = _detect_format(source, text) if format == "auto" else format
    if chosen == "json":
        report = _read_json(text, source)
    elif chosen == "markdown":
        report = parse_markdown(text, source=source)
    else:
        report = parse_plaintext(text, source=source)
    return replace(report, encoding=encoding)


def read_issue_file(path: str | os.PathLike[str], format: str = "auto") -> ImportReport:
    """Read an issue file, refusing one that is too large before reading it."""
    file_path = Path(path)
    source = file_path.name
    try:
        if not file_path.is_file():
            message = "is not a file" if file_path.exists() else "no such file"
            raise ImportFailed(
                f"{file_path}: {message}",
                code="issue.not_a_file" if file_path.exists() else "issue.no_file",
                file=str(file_path),
            )
        size = file_path.stat().st_size
        if size > MAX_UPLOAD_BYTES:  # refused unopened; the limit named is its kind's by name
            if PurePath(source).suffix.lower() in _DOCUMENT_EXTENSIONS:
                check_document_size(size, source)
            _check_size(size, source)
        with file_path.open("rb") as file:
            if size > MAX_ISSUE_BYTES and file_kind(file.read(_SNIFF_BYTES), source) == "text":
                _check_size(size, source)
            file.seek(0)
            data = file.read(MAX_UPLOAD_BYTES + 1)  # the file may have grown since stat()
    except OSError as error:
        raise ImportFailed(
            f"{file_path}: cannot be read ({error.strerror})",
            code="issue.unreadable",
            file=str(file_path),
            reason=error.strerror,
        ) from None
    return read_issue(data, source=source, format=format)


def _check_size(size: int, source: str) -> None:
    if size > MAX_ISSUE_BYTES:
        raise ImportFailed(
            f"{source}: the file is {size / 2**20:.1f} MiB; an issue file may be at most "
            f"{MAX_ISSUE_BYTES / 2**20:.0f} MiB (is it the right file?)",
            code="issue.too_large",
            file=source,
            most=round(MAX_ISSUE_BYTES / 2**20),
        )


def _decode(data: bytes, source: str) -> tuple[str, str]:
    """The text, line ends made '\\n', and the name of the encoding it was read in.

    UTF-8 (with or without BOM), or GB18030, the superset of GBK that Windows offices export.
    A file that is partly one and partly the other is refused: read either way, some of its
    lines would come out as mojibake.
    """
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ImportFailed(
            f"{source}: the file is UTF-16; save it as UTF-8", code="issue.utf16", file=source
        )
    _check_not_binary(data, source)
    bom = data.startswith(codecs.BOM_UTF8)
    body = data.removeprefix(codecs.BOM_UTF8)
    try:
        text, encoding = body.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError as error:
        bad_line = body.count(b"\n", 0, error.start) + 1
        if bom:
            raise ImportFailed(
                f"{source}, line {bad_line}: not valid UTF-8, though the file starts with a UTF-8 "
                "byte order mark; save the file as UTF-8",
                code="issue.bad_utf8",
                file=source,
                line=bad_line,
            ) from None
        text, encoding = _decode_gb18030(data, source, bad_line), "GB18030"
    return text.replace("\r\n", "\n").replace("\r", "\n"), encoding


def _decode_gb18030(data: bytes, source: str, bad_line: int) -> str:
    """``data`` read as GB18030; ``bad_line`` is the first line that is not UTF-8."""
    lines = data.split(b"\n")

    def neither(line: int) -> ImportFailed:
        return ImportFailed(
            f"{source}, line {line}: neither UTF-8 nor GB18030/GBK text; save the file as UTF-8",
            code="issue.unknown_encoding",
            file=source,
            line=line,
        )

    try:
        text = lines[bad_line - 1].decode("gb18030")
    except UnicodeDecodeError:
        raise neither(bad_line) from None
    if not _reads_as_chinese(text):
        raise neither(bad_line)
    utf8_line = next(
        (n for n, line in enumerate(lines, start=1) if not line.isascii() and _is_utf8(line)),
        None,
    )
    if utf8_line is not None:
        raise ImportFailed(
            f"{source}, line {bad_line}: the file mixes encodings (line {utf8_line} is UTF-8, "
            f"line {bad_line} is GB18030/GBK); save the whole file as UTF-8",
            code="issue.mixed_encodings",
            file=source,
            line=bad_line,
            utf8_line=utf8_line,
        )
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError as error:
        raise neither(data.count(b"\n", 0, error.start) + 1) from None
    if not _reads_as_chinese(text):
        raise neither(bad_line)
    return text


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _check_not_binary(data: bytes, source: str) -> None:
    nul = data.find(b"\0")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ImportFailed(
            f"{source}, line {line}: the file is binary (it contains NUL bytes), not a text export",
            code="issue.binary",
            file=source,
        )
    head = data[:_SNIFF_BYTES]
    controls = sum(byte in _CONTROL_BYTES for byte in head)
    if head and controls / len(head) > _MAX_CONTROL_SHARE:
        raise ImportFailed(
            f"{source}: the file is binary (mostly control characters), not a text export",
            code="issue.binary",
            file=source,
        )


def _reads_as_chinese(text: str) -> bool:
    """Most non-ASCII characters are Han: bytes of another encoding read as GB18030 are not."""
    wide = [char for char in text if not char.isascii()]
    han = [char for char in wide if "\u4e00" <= char <= "\u9fff"]
    return bool(wide) and len(han) * 2 > len(wide)


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
            f"not valid JSON: {error.msg} (column {error.colno})",
            source=source,
            line=error.lineno,
            code="issue.json_invalid",
            problem=error.msg,
            column=error.colno,
        ) from None
    except ValueError:  # a number of more than 4,300 digits
        raise IssueFormatError(
            "not valid JSON: a number is far too long", source=source, code="issue.json_long_number"
        ) from None
    except RecursionError:
        raise IssueFormatError(
            "not valid JSON for an issue: lists or objects are nested too deeply",
            source=source,
            code="issue.json_deep",
        ) from None
    document = IssueDocument.from_json(data, source=source)
    dates = check_printed_dates(document.date, document.masthead)
    return ImportReport(
        document=document, format="json", warnings=[warning.at(MASTHEAD) for warning in dates]
    )
