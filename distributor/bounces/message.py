"""Reading a message from outside within fixed bounds: bytes, parts, nesting, text.

Anyone can mail the bounce mailbox, so every read here is capped and nothing raises on malformed
input: a report's fields come before any returned copy of the original, so the first
:data:`~distributor.bounces.MAX_MESSAGE_BYTES` are enough to classify, and the rest is never parsed.
"""

from __future__ import annotations

import codecs
import html
import re
from collections.abc import Iterator
from email import policy
from email.errors import HeaderParseError
from email.header import Header, decode_header
from email.message import Message
from email.parser import BytesParser, HeaderParser

from distributor.bounces import MAX_MESSAGE_BYTES

MAX_PARTS = 64
MAX_DEPTH = 6
MAX_TEXT_CHARS = 64 * 1024  # of one decoded text part
MAX_HEADER_CHARS = 2000  # of one decoded header value
LINE_CHARS = 500  # of a diagnostic or reason kept for a person

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e]")
_SPACE = re.compile(r"\s+")
_TAG = re.compile(r"<[^<>]{0,2000}>")
_BLOCK_TAG = re.compile(r"<(?:br|/p|/div|/tr|/li|/h\d|hr)\b[^<>]{0,200}>", re.IGNORECASE)
_SCRIPT_OR_STYLE = re.compile(r"<(style|script)\b.{0,20000}?</\1\s*>", re.IGNORECASE | re.DOTALL)
# GB2312 and GBK labels are subsets in practice: mail clients write GBK text under either name.
_CHARSET_ALIASES = {"gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030"}


def parse(raw: bytes) -> Message:
    """The message, parsed from its first :data:`MAX_MESSAGE_BYTES` only."""
    return BytesParser(policy=policy.compat32).parsebytes(raw[:MAX_MESSAGE_BYTES])


def parse_headers(text: str) -> Message:
    """A header block (text/rfc822-headers, or a report block given as text)."""
    return HeaderParser(policy=policy.compat32).parsestr(text[:MAX_TEXT_CHARS])


def parts(message: Message) -> Iterator[tuple[Message, bool]]:
    """Every part under ``message`` with whether it is inside a returned message (message/rfc822
    and text/rfc822-headers are the original we sent, not the report), depth-first, bounded."""
    stack: list[tuple[Message, int, bool]] = [(message, 0, False)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, depth, returned = stack.pop()
        seen += 1
        yield part, returned
        payload = part.get_payload()
        kind = part.get_content_type()
        # A report part's payload is a list of field blocks, not of parts: it is read as a report.
        descend = part.get_content_maintype() == "multipart" or kind == "message/rfc822"
        if depth >= MAX_DEPTH or not descend or not isinstance(payload, list):
            continue
        inside = returned or kind == "message/rfc822"
        children = [child for child in payload if isinstance(child, Message)]
        stack.extend((child, depth + 1, inside) for child in reversed(children))


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Text in a charset named by a stranger: unknown or lying labels fall back, never raise."""
    name = (charset or "").strip().lower()
    name = _CHARSET_ALIASES.get(name, name)
    if name and name != "unknown-8bit":
        try:
            codecs.lookup(name)
        except LookupError:
            name = ""
        else:
            return data.decode(name, "replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("gb18030", "replace")


def part_text(part: Message) -> str:
    """A text/* part's decoded body, capped; HTML reduced to its words."""
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    text = decode_bytes(payload[: MAX_TEXT_CHARS * 4], part.get_content_charset())
    if part.get_content_subtype() == "html":
        text = html_text(text)
    return text[:MAX_TEXT_CHARS].replace("\r\n", "\n")


def html_text(markup: str) -> str:
    markup = _SCRIPT_OR_STYLE.sub(" ", markup)
    return html.unescape(_TAG.sub("", _BLOCK_TAG.sub("\n", markup)))


def header_text(message: Message, name: str) -> str:
    """A header's value, RFC 2047 words decoded (raw 8-bit bytes read as UTF-8 or GB18030)."""
    value: str | Header | None = message.get(name)
    if value is None:
        return ""
    try:
        chunks = decode_header(value)
    except (HeaderParseError, ValueError, LookupError):
        return str(value)[:MAX_HEADER_CHARS]
    text = "".join(
        chunk if isinstance(chunk, str) else decode_bytes(chunk, charset)
        for chunk, charset in chunks
    )
    return text[:MAX_HEADER_CHARS]


def raw_headers(message: Message, name: str) -> list[str]:
    """Every value of a header as written (addresses are never encoded words)."""
    return [str(value)[:MAX_HEADER_CHARS] for value in message.get_all(name, [])]


def one_line(text: str, limit: int = LINE_CHARS) -> str:
    """``text`` safe to store and show: no control characters, no line breaks, bounded."""
    line = _SPACE.sub(" ", _CONTROL.sub(" ", text)).strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"
