"""What the .docx and PDF readers share: a line's role from how it is set, a title's parts put
together, and lines of one paragraph joined as the text importer joins them.

A document shows its structure by size, weight and alignment whether it uses styles or not: a
headline is set larger than the running text, a heading or subtitle bold or centred. Chinese
newspapers set a title as kicker (引题) above the headline (主题) above the subtitle (副题), the
headline largest; the text export prints kicker and headline on one line.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from distributor.issues.plaintext import Role, SourceLine, is_masthead_line

TITLE_SIZE_RATIO = 1.3
"""A line set at least this many times larger than the running text is a headline."""
HEADLINE_SHARE = 0.75
"""A headline is set at least this share of the largest headline's size."""
MAX_ROLE_CHARS = 64
"""Longer text is a paragraph, however it is set (a bold paragraph stays a paragraph)."""
_SENTENCE_END = ("。", "!", "?", "!", "?", ";", ";", ".")
_CLOSERS = "”’\"')）」』"


@dataclass(frozen=True)
class Setting:
    """How a line or paragraph is set: its largest font size (points), all bold, centred."""

    size: float
    bold: bool = False
    centred: bool = False


def running_size(paragraphs: Iterable[tuple[str, float]], default: float) -> float:
    """The size most running text is set in: by characters, of text longer than a heading."""
    sizes: Counter[float] = Counter()
    for text, size in paragraphs:
        if len(text) > MAX_ROLE_CHARS:
            sizes[round(size, 1)] += len(text)
    return sizes.most_common(1)[0][0] if sizes else default


def role_of(text: str, setting: Setting, body_size: float) -> Role | None:
    """A headline when set large, a heading when bold or centred (and not a sentence); None
    leaves the line to the text importer's shapes."""
    if len(text) > MAX_ROLE_CHARS:
        return None
    if setting.size >= body_size * TITLE_SIZE_RATIO:
        return "title"
    if (setting.bold or setting.centred) and not text.rstrip(_CLOSERS).endswith(_SENTENCE_END):
        return "heading"
    return None


def merge_titles(lines: list[tuple[SourceLine, float]]) -> list[SourceLine]:
    """Consecutive headline lines (each with its size) as one title: the largest is the
    headline, the lines above it its kicker (joined in front, as the text export prints them),
    the lines below it subtitles. A heading set right above a headline is its kicker too (set
    smaller than a headline, it is bold or centred), unless it follows the masthead (the slogan)
    or is in parentheses (a byline). The first line (the newsletter's name) stays on its own."""
    lines = _headlines_only(lines)
    name = _name_index(lines)
    merged: list[SourceLine] = []
    index = 0
    while index < len(lines):
        end = index + 1
        if index > name and lines[index][0].role == "title":
            while end < len(lines) and lines[end][0].role == "title":
                end += 1
            if _is_kicker(lines, index - 1):
                merged.pop()
                index -= 1
        run = lines[index:end]
        top = max(range(len(run)), key=lambda i: (run[i][1], -i))
        head = run[top][0]
        kicker = " ".join(line.text for line, _ in run[:top])
        merged.append(replace(head, text=f"{kicker} {head.text}") if kicker else head)
        merged += [replace(line, role="heading") for line, _ in run[top + 1 :]]
        index = end
    return merged


def _headlines_only(lines: list[tuple[SourceLine, float]]) -> list[tuple[SourceLine, float]]:
    """Large lines set well below the largest headline are headings (a section heading in 四号
    over 五号 text, a kicker, a subtitle): only a headline starts an article on its own."""
    name = _name_index(lines)
    sizes = [size for line, size in lines[name + 1 :] if line.role == "title"]
    floor = max(sizes, default=0.0) * HEADLINE_SHARE
    return [
        (replace(line, role="heading"), size)
        if index > name and line.role == "title" and size < floor
        else (line, size)
        for index, (line, size) in enumerate(lines)
    ]


def _name_index(lines: list[tuple[SourceLine, float]]) -> int:
    """Where the newsletter's name is: the first line that is not a picture (a logo)."""
    return next((i for i, (line, _) in enumerate(lines) if line.role != "image"), 0)


def _is_kicker(lines: list[tuple[SourceLine, float]], index: int) -> bool:
    """Whether the heading at ``index``, right above a headline, is the headline's kicker."""
    line = lines[index][0]
    return (
        index > _name_index(lines) + 1
        and line.role == "heading"
        and not line.text.startswith(("(", "（"))
        and not is_masthead_line(lines[index - 1][0].text)
    )


def join_lines(pieces: Iterable[str]) -> str:
    """Lines of one paragraph joined: nothing between CJK text (no hyphen, no space, as the
    text importer rejoins page-break splits), a space between two words of Latin script."""
    joined = ""
    for raw in pieces:
        piece = raw.strip()
        if not piece:
            continue
        latin = joined[-1:].isascii() and joined[-1:].isalnum() and piece[0].isascii()
        joined += (" " if joined and latin and piece[0].isalnum() else "") + piece
    return joined
