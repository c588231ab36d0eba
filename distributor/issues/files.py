"""What kind of file an upload is, and whether a document is safe to open, before any parser
sees it: by its first bytes, never by the name or the content type it came with.

A .docx is a zip; an encrypted .docx (and an old .doc) is an OLE compound file instead. A zip's
directory declares each member's size, and Python's zip reader never inflates a member past it,
so checking the declared sizes bounds the memory a zip bomb can take.
"""

from __future__ import annotations

import io
import zipfile
from typing import Literal

from distributor.errors import ImportFailed

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
"""Largest .docx or PDF accepted, in bytes (20 MiB): an issue with its photos, compressed."""
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
"""Largest total a .docx may inflate to (100 MiB), whatever its members declare."""
MAX_XML_BYTES = 20 * 1024 * 1024
"""Largest total of a .docx's XML (20 MiB; an issue's text is well under 1 MiB): parsed, XML
takes several times its size in memory, pictures only their own."""
MAX_ZIP_MEMBERS = 5000
MAX_COMPRESSION_RATIO = 100
"""A member that inflates more than this many times (and past 1 MiB) is a zip bomb: Word's
XML compresses about 10 times, pictures hardly at all."""

FileKind = Literal["docx", "pdf", "text"]

_ZIP = b"PK\x03\x04"
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_PDF = b"%PDF-"
_PDF_SEARCH_BYTES = 1024  # PDF readers accept the header anywhere in the first kilobyte


def file_kind(data: bytes, source: str) -> FileKind:
    """A document by its magic bytes; anything else is read as text (and checked as such)."""
    if data.startswith(_ZIP):
        return "docx"
    if _PDF in data[:_PDF_SEARCH_BYTES]:
        return "pdf"
    if data.startswith(_OLE):
        if b"E\x00n\x00c\x00r\x00y\x00p\x00t\x00i\x00o\x00n\x00I\x00n\x00f\x00o" in data:
            raise ImportFailed(
                f"{source}: the document is encrypted (password-protected); remove the password "
                "in Word (File → Info → Protect Document) and save it again",
                code="issue.encrypted",
                file=source,
            )
        raise ImportFailed(
            f"{source}: an old Word 97–2003 (.doc) or other OLE file; save it as .docx "
            "(Word: File → Save As → Word Document)",
            code="issue.old_word",
            file=source,
        )
    return "text"


def check_document_size(size: int, source: str) -> None:
    if size > MAX_DOCUMENT_BYTES:
        raise ImportFailed(
            f"{source}: the document is {size / 2**20:.1f} MiB; a .docx or PDF may be at most "
            f"{MAX_DOCUMENT_BYTES / 2**20:.0f} MiB (compress its pictures and save it again)",
            code="issue.document_large",
            file=source,
            most=round(MAX_DOCUMENT_BYTES / 2**20),
        )


def open_zip(data: bytes, source: str) -> zipfile.ZipFile:
    """The .docx as a zip whose members may be read: damaged, bomb and huge ones refused."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
        raise ImportFailed(
            f"{source}: the .docx is damaged (not a readable zip); open it in Word or WPS and "
            "save it again",
            code="issue.damaged",
            file=source,
        ) from None
    if len(members) > MAX_ZIP_MEMBERS:
        raise ImportFailed(
            f"{source}: the .docx has {len(members):,} parts; it is not a document",
            code="issue.docx_parts",
            file=source,
            parts=len(members),
        )
    total = xml = 0
    for member in members:
        total += member.file_size
        ratio = member.file_size / max(member.compress_size, 1)
        bomb = member.file_size > 2**20 and ratio > MAX_COMPRESSION_RATIO
        if bomb or total > MAX_UNPACKED_BYTES:
            raise ImportFailed(
                f"{source}: the .docx would unpack to more than "
                f"{MAX_UNPACKED_BYTES / 2**20:.0f} MiB ({member.filename} inflates "
                f"{ratio:,.0f} times): refused as a zip bomb",
                code="issue.docx_bomb",
                file=source,
                most=round(MAX_UNPACKED_BYTES / 2**20),
            )
        if not member.filename.startswith("word/media/"):
            xml += member.file_size
        if xml > MAX_XML_BYTES:
            raise ImportFailed(
                f"{source}: the .docx holds more than {MAX_XML_BYTES / 2**20:.0f} MiB of text and "
                "markup; an issue has far less (is it the right file?)",
                code="issue.docx_text_large",
                file=source,
                most=round(MAX_XML_BYTES / 2**20),
            )
    if "word/document.xml" not in archive.namelist():
        raise ImportFailed(
            f"{source}: a zip, but not a Word document (it has no word/document.xml); "
            "save the issue from Word or WPS as .docx",
            code="issue.not_word",
            file=source,
        )
    return archive
