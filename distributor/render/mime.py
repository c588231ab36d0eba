"""The MIME skeleton of one issue × variant, built once; per recipient only its holes are filled.

Building an ``EmailMessage`` per recipient costs ~25× more than filling bytes, so the headers that
never vary, the part headers and the boundaries are fixed here, and each body part is a run of
literal bytes with named holes (:class:`Slot`) between them. Bodies go out base64 (CJK text as
quoted-printable would double in size, spec R17), which also keeps every body line canonical for
DKIM.
"""

from __future__ import annotations

import base64
import functools
import html
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from distributor.errors import RenderError
from subscribers.address import is_plain_address, is_sender_address

Subtype = Literal["plain", "html"]

# 42 UTF-8 bytes (14 CJK characters) make a 68-character encoded word: with "Subject: " in front
# the line stays within RFC 5322's 78 characters.
_ENCODED_WORD_BYTES = 42
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ATOM_SAFE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]*")


class Slot(StrEnum):
    """A per-recipient value; everything else in a message is fixed per issue × variant."""

    NAME = "NAME"
    UNSUBSCRIBE_URL = "UNSUB"
    PREFERENCES_URL = "PREFS"
    TRACKING_TOKEN = "TRACK"  # only in a tracked send's HTML: whose open or click it is


@dataclass(frozen=True)
class Placeholders:
    """Markers the templates print where a slot goes.

    A random nonce per compile keeps article text from forging one; letters and digits only, so
    neither Jinja, the inliner nor lxml's URL escaping changes them.
    """

    nonce: str

    @classmethod
    def fresh(cls) -> Placeholders:
        return cls(secrets.token_hex(8))

    def marker(self, slot: Slot) -> str:
        return f"ZZ{self.nonce}{slot.value}ZZ"

    def markers(self) -> dict[str, str]:
        return {slot.name.lower(): self.marker(slot) for slot in Slot}

    def split(self, text: str) -> tuple[list[str], list[Slot]]:
        """``text`` cut at every marker: n + 1 literal runs around n slots."""
        alternatives = "|".join(slot.value for slot in Slot)
        pieces = re.split(f"ZZ{self.nonce}({alternatives})ZZ", text)
        return pieces[0::2], [Slot(value) for value in pieces[1::2]]


@dataclass(frozen=True)
class BodyPart:
    """One text/* part: literal UTF-8 runs (CRLF line ends) with slots between them."""

    subtype: Subtype
    literals: tuple[bytes, ...]
    slots: tuple[Slot, ...]

    @classmethod
    def parse(cls, subtype: Subtype, text: str, placeholders: Placeholders) -> BodyPart:
        crlf = "\r\n".join(text.replace("\r\n", "\n").split("\n"))
        literals, slots = placeholders.split(crlf)
        return cls(subtype, tuple(run.encode("utf-8") for run in literals), tuple(slots))

    @property
    def content_headers(self) -> list[tuple[str, str]]:
        return [
            ("Content-Type", f'text/{self.subtype}; charset="utf-8"'),
            ("Content-Transfer-Encoding", "base64"),
        ]

    def decoded(self, values: Mapping[Slot, str]) -> bytes:
        """The part's content for one recipient; values are HTML-escaped in an HTML part."""
        escape = self.subtype == "html"
        filled = [self.literals[0]]
        for slot, literal in zip(self.slots, self.literals[1:], strict=True):
            value = values[slot]
            filled.append((html.escape(value) if escape else value).encode("utf-8"))
            filled.append(literal)
        return b"".join(filled)

    def encoded(self, values: Mapping[Slot, str]) -> bytes:
        """The part's base64 for one recipient. The literal runs were encoded once
        (:class:`EncodedRuns`); only each slot's value, with the at most four bytes around it
        that complete its base64 groups, is encoded here."""
        runs = self.encoded_runs
        if runs is None:
            return base64_lines(self.decoded(values))
        escape = self.subtype == "html"
        chunks = [runs.first]
        carry = runs.first_tail
        for slot, run in zip(self.slots, runs.rest, strict=True):
            value = values[slot]
            group = carry + (html.escape(value) if escape else value).encode("utf-8")
            taken = -len(group) % 3  # bytes of the next run that complete the last group
            chunks += (base64_lines(group + run.head[taken]), run.lines[taken])
            carry = run.tail[taken]
        if carry:
            chunks.append(base64_lines(carry))
        return b"".join(chunks)

    @functools.cached_property
    def encoded_runs(self) -> EncodedRuns | None:
        return EncodedRuns.of(self.literals)


@dataclass(frozen=True)
class EncodedRun:
    """A literal run after a slot, encoded once for each number (0, 1, 2) of its leading bytes
    that the group before it takes: ``head[k]`` those bytes, ``lines[k]`` the base64 lines of
    the whole groups that follow, ``tail[k]`` the one to two bytes left over."""

    head: tuple[bytes, ...]
    lines: tuple[bytes, ...]
    tail: tuple[bytes, ...]

    @classmethod
    def of(cls, run: bytes) -> EncodedRun:
        cuts = [(taken, len(run) - (len(run) - taken) % 3) for taken in range(3)]
        return cls(
            head=(b"", run[:1], run[:2]),
            lines=tuple(base64_lines(run[start:end]) for start, end in cuts),
            tail=tuple(run[end:] for _, end in cuts),
        )


@dataclass(frozen=True)
class EncodedRuns:
    """A part's literal runs, base64-encoded once per compile.

    Base64 maps every 3 bytes to 4 characters on their own, and RFC 2045 lines may be shorter than
    76 characters: so the part is a run of whole lines per literal, with each slot's value (and
    the bytes that complete its groups) encoded per recipient in lines of its own. Every line
    holds whole 4-character groups and only the part's last line may end in padding; a decoder
    reads it exactly as one uniform encoding of the same bytes.
    """

    first: bytes
    first_tail: bytes
    rest: tuple[EncodedRun, ...]

    @classmethod
    def of(cls, literals: tuple[bytes, ...]) -> EncodedRuns | None:
        """None when a run after a slot is shorter than 2 bytes (two slots side by side): too
        short to complete a group, so such a part is encoded whole per recipient."""
        first, rest = literals[0], literals[1:]
        if any(len(run) < 2 for run in rest):
            return None
        whole = len(first) - len(first) % 3
        return cls(base64_lines(first[:whole]), first[whole:], tuple(map(EncodedRun.of, rest)))


def base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines (RFC 2045), ending with CRLF. Per message this sees
    only slot values (a line or three), so one C call to encode and a slice per line."""
    encoded = base64.b64encode(data)
    if not encoded:
        return b""
    return b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)]) + b"\r\n"


@dataclass(frozen=True)
class InlineImage:
    """A picture the HTML shows by ``cid:`` (RFC 2392): the same bytes in every message."""

    content_id: str  # without the angle brackets: "3f9a….jpg@example.org"
    content_type: str
    filename: str
    data: bytes

    @property
    def src(self) -> str:
        return f"cid:{self.content_id}"

    @functools.cached_property
    def part(self) -> bytes:
        """The part's headers and base64 body, encoded once per compile."""
        headers = [
            ("Content-Type", self.content_type),
            ("Content-Transfer-Encoding", "base64"),
            ("Content-ID", f"<{self.content_id}>"),
            ("Content-Disposition", f'inline; filename="{self.filename}"'),
        ]
        return header_block(headers) + base64_lines(self.data)


@dataclass(frozen=True)
class Skeleton:
    """Fixed headers plus one text part, or a multipart/alternative of text then HTML (R14).

    With pictures, the HTML part is a multipart/related of the HTML and the pictures it shows
    (RFC 2387), so that a client that shows only text never fetches them.
    """

    headers: tuple[tuple[str, str], ...]
    parts: tuple[BodyPart, ...]
    boundary: str
    images: tuple[InlineImage, ...] = ()

    @classmethod
    def build(
        cls,
        fixed_headers: list[tuple[str, str]],
        parts: list[BodyPart],
        images: tuple[InlineImage, ...] = (),
    ) -> Skeleton:
        # "=_" never occurs in base64 text, so the boundary cannot collide with a body line.
        boundary = f"=_dst{secrets.token_hex(12)}"
        if len(parts) == 1:
            content = parts[0].content_headers
        else:
            content = [("Content-Type", f'multipart/alternative; boundary="{boundary}"')]
        headers = [*fixed_headers, ("MIME-Version", "1.0"), *content]
        return cls(tuple(headers), tuple(parts), boundary, images if len(parts) > 1 else ())

    def body(self, values: Mapping[Slot, str]) -> bytes:
        if len(self.parts) == 1:
            return self.parts[0].encoded(values)
        chunks: list[bytes] = []
        for head, part in zip(self._part_heads, self.parts, strict=True):
            chunks += (head, part.encoded(values))
        chunks.append(self._tail)
        return b"".join(chunks)

    @property
    def _related(self) -> str:
        return f"{self.boundary}.rel"

    @functools.cached_property
    def _part_heads(self) -> tuple[bytes, ...]:
        """Each part's delimiter and headers: the same bytes in every message."""
        delimiter = f"--{self.boundary}\r\n".encode("ascii")
        heads = [delimiter + header_block(part.content_headers) for part in self.parts]
        if self.images:
            related = [
                ("Content-Type", f'multipart/related; boundary="{self._related}"; type="text/html"')
            ]
            inner = f"--{self._related}\r\n".encode("ascii")
            heads[-1] = delimiter + header_block(related) + inner + heads[-1][len(delimiter) :]
        return tuple(heads)

    @functools.cached_property
    def _tail(self) -> bytes:
        """The pictures after the HTML, and the closing delimiters."""
        tail = b""
        if self.images:
            inner = f"--{self._related}\r\n".encode("ascii")
            tail = b"".join(inner + image.part for image in self.images)
            tail += f"--{self._related}--\r\n".encode("ascii")
        return tail + f"--{self.boundary}--\r\n".encode("ascii")


def header_block(headers: Iterable[tuple[str, str]]) -> bytes:
    """Header lines and the blank line that ends them; values must already be ASCII (R15)."""
    return "".join(f"{name}: {value}\r\n" for name, value in headers).encode("ascii") + b"\r\n"


def check_header_text(text: str, what: str) -> str:
    """``text`` unchanged; RenderError if a control character could split the header."""
    match = _CONTROL.search(text)
    if match:
        raise RenderError(
            f"{what} {text[:60]!r} contains the control character {match.group()!r} "
            f"at position {match.start()}: a line break there would inject mail headers; "
            "remove it from the source",
            code="render.header_control",
            what=what,
            text=text[:60],
            at=match.start(),
        )
    return text


def clean_name(name: str | None, *, limit: int = 64) -> str | None:
    """A subscriber's name made safe for a header: control characters become spaces.

    Names come from sign-up forms, so a hostile one must not fail the whole delivery.
    """
    if name is None:
        return None
    cleaned = " ".join(_CONTROL.sub(" ", name).split())[:limit]
    return cleaned or None


def check_address(address: str, what: str, *, sender: bool = False) -> str:
    """An ASCII addr-spec, or RenderError: anything else in a header could inject or bounce.

    The subscriber store's rule, so that every address it accepts passes here; a ``sender`` may
    also be at localhost.
    """
    if not (is_sender_address(address) if sender else is_plain_address(address)):
        raise RenderError(
            f"{what} {address[:80]!r} is not a plain ASCII email address like name@example.org",
            code="render.address",
            what=what,
            address=address[:80],
        )
    return address


def encode_text(text: str) -> str:
    """An unstructured header value: ASCII as is, anything else as RFC 2047 encoded words (R15)."""
    if text.isascii() and text.isprintable() and "=?" not in text and len(text) <= 68:
        return text
    return _encoded_words(text)


def mailbox(name: str | None, address: str) -> str:
    """``name <address>`` with the name quoted or encoded; the address must already be checked.

    A name that contains ``=?`` is encoded even when it is plain ASCII: written raw, a reader's
    mail program would decode it as an encoded word and show whatever it hides."""
    if not name:
        return address
    if "=?" in name:
        phrase = _encoded_words(name)
    elif _ATOM_SAFE.fullmatch(name) and len(name) <= 60:
        phrase = name
    elif name.isascii() and name.isprintable() and len(name) <= 60:
        phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        phrase = _encoded_words(name)
    return f"{phrase} <{address}>"


def _encoded_words(text: str) -> str:
    words: list[bytes] = [b""]
    for char in text:
        raw = char.encode("utf-8")
        if len(words[-1]) + len(raw) > _ENCODED_WORD_BYTES:
            words.append(b"")
        words[-1] += raw
    return "\r\n ".join(f"=?utf-8?b?{base64.b64encode(word).decode('ascii')}?=" for word in words)
