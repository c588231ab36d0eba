"""Read and write the plain-text export of the printed newsletter (杭州工运 and papers like it).

The export has one line per printed paragraph and blank lines between them::

    杭州工运                                      title: the first line
    新闻热线:(0571)87160990                       masthead fields, "label:value", ':' or '：'
    2022年12月27日 星期二 农历壬寅年十二月初五 第471期   the date line
    联结企业和职工 联系发展与稳定                  slogan: a couplet right after the masthead
    在基层构建和谐稳定的劳动关系 中建安装…        kicker and headline, one line
    上城区总工会团结企业与职工走出共济共赢新路    subtitle: a second short title line
    聚焦主责主业,扛起…的工会担当                  section heading: short, no final punctuation
    ……进行推广宣传。(王钰哲)                      byline: ends the article

No rule depends on the newsletter's words, only on shape: line length, the punctuation a line
ends with, halves of equal length, the position after a byline. The layout program breaks
paragraphs at page ends; such splits are rejoined and reported as :class:`Repair` so staff can
check them against the print. Lines are stripped (a Word export indents with "　　"), and the
gaps in title and masthead lines, ASCII or full-width, are kept as one ASCII space.

Shapes that cannot be told apart are read one way: a short line right after a headline is its
subtitle, a page break in a paragraph's first 40 characters looks like a section heading, and an
article without a byline runs on into the next one.

The .docx and PDF readers turn a document into the same lines (:class:`SourceLine`, one per
paragraph) and read them here, adding what their formatting says (:data:`Role`): a headline set
large starts an article even without a byline before it, a bold line is a heading, a picture is an
image block. A line without a role is read by its shape, as in the text export.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Literal

from distributor.errors import IssueFormatError, Notice
from distributor.issues.document import (
    MAX_NEWSLETTER_TITLE_CHARS,
    Article,
    Block,
    ImportReport,
    IssueDocument,
    Masthead,
    Repair,
    checked_text,
    issue_number,
)
from distributor.issues.lunar import check_printed_dates

MAX_HEADING_CHARS = 40
"""A section heading or subtitle is at most this many characters; a paragraph is longer."""
MAX_TITLE_CHARS = 64
"""A title line (kicker, space, headline) is at most this many characters."""
MAX_BYLINE_CHARS = 30
"""Longer text in parentheses at an article's end is part of the text, not a byline."""
MIN_KICKER_CHARS = 4
"""Each side of a space must be this long to be kicker + headline, not a word gap."""

_SENTENCE_END = "。!?!?…;;."
_CLOSERS = "”’\"'」』)）]】》〉"
_TITLE_MARKS = "!?!?"
# A line ending in one of these stops mid-sentence: it is never a heading or title.
_OPEN_ENDINGS = ",,、::(（“‘《〈【—"
_END = f"[{re.escape(_SENTENCE_END)}][{re.escape(_CLOSERS)}]*"
_NAME = rf"[^()（）]{{1,{MAX_BYLINE_CHARS}}}"
_BYLINE_ALONE = re.compile(rf"^[(（](?P<name>{_NAME})[)）]$")
_TRAILING_BYLINE = re.compile(rf"^(?P<text>.*{_END})\s*[(（](?P<name>{_NAME})[)）]$")
_UNCLOSED_BYLINE = re.compile(rf"(?:^|{_END})\s*(?P<byline>[(（]{_NAME})$")
# "。(详见第三版)": a remark in parentheses after the full stop still ends the paragraph.
_REMARK_AFTER_END = re.compile(rf"{_END}\s*[(（][^()（）]*[)）]$")

_LABELS = {
    "新闻热线": "hotline",
    "投稿邮箱": "submission",
    "出版": "publisher",
    "准印证号": "permit",
    "社址": "address",
    "邮编": "postcode",
    "责任编辑": "editor",
}
_FIELD_LABELS = {field: label for label, field in _LABELS.items()}
_LABEL = re.compile(rf"(?:^|(?<=\s))(?P<label>{'|'.join(_LABELS)})\s*[:：]\s*")
_DATE_START = re.compile(r"^\d{4}\s*年")
_DATE_LINE = re.compile(
    r"^(?P<year>\d{4})\s*年\s*(?P<month>\d{1,2})\s*月\s*(?P<day>\d{1,2})\s*日"
    r"(?:\s*(?P<weekday>(?:星期|周|礼拜)[一二三四五六日天]))?"
    r"(?:\s*(?:农历)?\s*(?P<lunar>[^\s第]+月[^\s第]+))?"
    r"(?:\s*第\s*(?P<number>\d+)\s*期)?\s*$"
)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_DATE_EXAMPLE = "2022年12月27日 星期二 农历壬寅年十二月初五 第471期"


Role = Literal["title", "heading", "image", "paragraph"]
"""What a document's formatting says a line is: a headline (set large, or styled 标题 1), a
heading or subtitle (bold, or styled 标题 2), a picture (its caption is the text), or a paragraph
of its own whatever its shape (a table's row: never a heading, never joined to the next)."""


@dataclass(frozen=True)
class SourceLine:
    """A non-blank line of the file (a paragraph of a document), stripped, with its 1-based
    number, the place errors name when lines are not the unit, and its formatting's role."""

    number: int
    text: str
    place: str = ""
    role: Role | None = None
    image: str | None = None  # an image line's name in IssueDocument.images

    @property
    def where(self) -> str:
        return self.place or Notice(f"line {self.number}", code="place.line", line=self.number)


_Line = SourceLine


@dataclass(frozen=True)
class _Head:
    title: str
    number: int
    date: date
    date_place: str
    masthead: Masthead


def parse_plaintext(text: str, *, source: str = "") -> ImportReport:
    """Recognise masthead, articles, headings and bylines; rejoin paragraphs split at page ends."""
    return parse_lines(_lines(text), source=source, format="text")


def parse_lines(lines: Sequence[SourceLine], *, source: str, format: str) -> ImportReport:
    """The issue in ``lines`` (a text export's, or a document's paragraphs) as the text import
    reads it; ``format`` names what they came from in the report."""
    lines = list(lines)
    if not lines:
        raise IssueFormatError("the file is empty", source=source, code="issue.nothing")
    head, start, skipped = _read_masthead(lines, source)
    articles: list[Article] = []
    repairs: list[Repair] = []
    dates = check_printed_dates(head.date, head.masthead)
    warnings: list[str] = [warning.at(head.date_place) for warning in dates]
    warnings += [
        Notice("a picture in the masthead is not kept", code="issue.masthead_picture").at(
            line.where
        )
        for line in skipped
    ]
    for segment in _split_articles(lines[start:], source):
        article, article_repairs, article_warnings = _read_article(segment, source)
        if article.byline is None:
            article_warnings.insert(
                0,
                Notice(
                    f"“{_clip(article.headline)}” has no byline; check it",
                    code="issue.no_byline",
                    headline=_clip(article.headline),
                ).at(segment[0].where),
            )
        articles.append(article)
        repairs += article_repairs
        warnings += article_warnings
    document = IssueDocument(
        title=head.title,
        number=head.number,
        date=head.date,
        masthead=head.masthead,
        articles=articles,
    )
    return ImportReport(document=document, format=format, repairs=repairs, warnings=warnings)


def to_plaintext(doc: IssueDocument) -> str:
    """Write ``doc`` in the export's layout, so that parsing it gives ``doc`` back.

    Joined paragraphs come out whole and a byline gets a line of its own; otherwise the text is
    the printed text, character for character, which is what makes the import checkable.
    """
    units = [doc.title, *_masthead_lines(doc)]
    for article in doc.articles:
        units.append(f"{article.kicker} {article.headline}" if article.kicker else article.headline)
        if article.subtitle:
            units.append(article.subtitle)
        units += [block.text for block in article.blocks]
        if article.byline:
            units.append(f"({article.byline})")
    return "\n\n".join(units) + "\n"


def _lines(text: str) -> list[_Line]:
    text = text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    return [
        _Line(number, line.strip())
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]


# --- masthead -------------------------------------------------------------------------------


def _read_masthead(lines: list[_Line], source: str) -> tuple[_Head, int, list[_Line]]:
    """Title, labelled lines and date line, then the slogan; also where the articles start, and
    the pictures among them (a logo), which are not kept."""
    skipped = [line for line in lines if line.role == "image"]
    start = next((i for i, line in enumerate(lines) if line.role != "image"), len(lines))
    if start == len(lines):
        raise IssueFormatError(
            "the document has pictures but no text", source=source, code="issue.pictures_only"
        )
    title = lines[start]
    if is_masthead_line(title.text):
        raise IssueFormatError(
            f"the first line should be the newsletter's title, not '{_clip(title.text)}'",
            source=source,
            line=title.number,
            place=title.place,
            code="issue.first_line",
            text=_clip(title.text),
        )
    fields: dict[str, str | None] = {}
    dated: tuple[int, date, str] | None = None
    index = start + 1
    while index < len(lines) and (
        lines[index].role == "image" or is_masthead_line(lines[index].text)
    ):
        line = lines[index]
        if line.role == "image":
            pass
        elif not _DATE_START.match(line.text):
            _read_labels(line, fields, source)
        elif dated is None:
            dated = (*_read_date_line(line, fields, source), line.where)
        else:
            raise IssueFormatError(
                "a second date line",
                source=source,
                line=line.number,
                place=line.place,
                code="issue.second_date",
            )
        index += 1
    if dated is None:
        at = lines[min(index, len(lines) - 1)]
        raise IssueFormatError(
            f"the masthead has no date line like '{_DATE_EXAMPLE}'",
            source=source,
            line=at.number,
            place=at.place,
            code="issue.no_date_line",
            example=_DATE_EXAMPLE,
        )
    if index < len(lines) and lines[index].role != "image" and _is_couplet(lines[index].text):
        fields["slogan"] = _checked(
            lines[index], " ".join(lines[index].text.split()), "the slogan", source
        )
        index += 1
    while index < len(lines) and lines[index].role == "image":
        index += 1
    if index == len(lines):
        raise IssueFormatError(
            "the masthead is not followed by any article (a headline was expected after it)",
            source=source,
            line=lines[-1].number,
            place=lines[-1].place,
            code="issue.no_article",
        )
    number, issue_date, date_place = dated
    head = _Head(
        title=_checked(
            title,
            " ".join(title.text.split()),
            "the title",
            source,
            limit=MAX_NEWSLETTER_TITLE_CHARS,
        ),
        number=number,
        date=issue_date,
        date_place=date_place,
        masthead=Masthead(**fields),
    )
    return head, index, [line for line in skipped if line.number < lines[index].number]


def is_masthead_line(text: str) -> bool:
    """A labelled masthead field ("新闻热线:…") or the date line."""
    return bool(_LABEL.match(text) or _DATE_START.match(text))


def _read_date_line(line: _Line, fields: dict[str, str | None], source: str) -> tuple[int, date]:
    """The issue number and date; the weekday and lunar date go into ``fields``."""
    match = _DATE_LINE.match(_checked(line, line.text, "the date line", source))
    if match is None:
        raise IssueFormatError(
            f"cannot read the date line '{line.text}'; write it like '{_DATE_EXAMPLE}'",
            source=source,
            line=line.number,
            place=line.place,
            code="issue.date_unreadable",
            text=line.text,
            example=_DATE_EXAMPLE,
        )
    if match["number"] is None:
        raise IssueFormatError(
            f"the date line '{line.text}' has no issue number ('第…期')",
            source=source,
            line=line.number,
            place=line.place,
            code="issue.no_number",
            text=line.text,
        )
    try:
        issue_date = date(int(match["year"]), int(match["month"]), int(match["day"]))
    except ValueError:
        printed = f"{match['year']}年{match['month']}月{match['day']}日"
        raise IssueFormatError(
            f"{printed} is not a date in the calendar",
            source=source,
            line=line.number,
            place=line.place,
            code="issue.no_such_date",
            printed=printed,
        ) from None
    fields["weekday"] = match["weekday"]
    fields["lunar_date"] = match["lunar"]
    number = issue_number(
        match["number"], "the issue number", source=source, line=line.number, place=line.place
    )
    return number, issue_date


def _read_labels(line: _Line, fields: dict[str, str | None], source: str) -> None:
    """Add the line's "label:value" pairs to ``fields``; a line may hold several."""
    matches = list(_LABEL.finditer(line.text))
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(line.text)
        field = _LABELS[match["label"]]
        if field in fields:
            raise IssueFormatError(
                f"'{match['label']}' appears twice in the masthead",
                source=source,
                line=line.number,
                place=line.place,
                code="issue.label_twice",
                label=match["label"],
            )
        value = line.text[match.end() : end].strip()
        fields[field] = _checked(line, value, f"the masthead's {match['label']}", source) or None


def _is_couplet(text: str) -> bool:
    """Two or more halves of equal length, like "联结企业和职工 联系发展与稳定"."""
    halves = text.split()
    return (
        len(halves) >= 2
        and len({len(half) for half in halves}) == 1
        and len(halves[0]) >= 2
        and not _ends_sentence(text)
    )


def _masthead_lines(doc: IssueDocument) -> list[str]:
    masthead = doc.masthead
    date_parts = [
        f"{doc.date.year}年{doc.date.month}月{doc.date.day}日",
        masthead.weekday,
        f"农历{masthead.lunar_date}" if masthead.lunar_date else None,
        f"第{doc.number}期",
    ]
    lines = [
        _labelled(masthead, "hotline"),
        _labelled(masthead, "submission"),
        " ".join(part for part in date_parts if part),
        _labelled(masthead, "publisher", "permit"),
        _labelled(masthead, "address", "postcode"),
        _labelled(masthead, "editor"),
        masthead.slogan,
    ]
    return [line for line in lines if line]


def _labelled(masthead: Masthead, *fields: str) -> str:
    """ "label:value" pairs on one line; a web address is printed after a space."""
    pairs = []
    for field in fields:
        value = getattr(masthead, field)
        if value:
            gap = " " if _URL.match(value) else ""
            pairs.append(f"{_FIELD_LABELS[field]}:{gap}{value}")
    return " ".join(pairs)


# --- articles -------------------------------------------------------------------------------


def _split_articles(lines: list[_Line], source: str) -> list[list[_Line]]:
    """Cut the lines after the masthead into articles: each one ends with its byline, or before
    a line the document's formatting makes a headline."""
    articles: list[list[_Line]] = []
    current: list[_Line] = []
    for index, line in enumerate(lines):
        current.append(line)
        following = lines[index + 1] if index + 1 < len(lines) else None
        if _ends_article(lines, index, source) or (
            len(current) > 1 and following is not None and following.role == "title"
        ):
            articles.append(current)
            current = []
    if current:
        articles.append(current)
    return articles


def _ends_article(lines: list[_Line], index: int, source: str) -> bool:
    """A byline ends an article only where the file ends or a title line follows.

    Elsewhere "(…)" after a full stop is the text's own remark and stays in the paragraph.
    """
    if index + 1 < len(lines) and not _is_title_line(lines[index + 1]):
        return False
    if lines[index].role == "image":
        return False
    text = lines[index].text
    if _BYLINE_ALONE.match(text) or _TRAILING_BYLINE.match(text):
        return True
    unclosed = _UNCLOSED_BYLINE.search(text)
    if unclosed:
        raise IssueFormatError(
            f"byline '{unclosed['byline'].strip()}' has no closing parenthesis",
            source=source,
            line=lines[index].number,
            place=lines[index].place,
            code="issue.byline_open",
            byline=unclosed["byline"].strip(),
        )
    return False


def _read_article(lines: list[_Line], source: str) -> tuple[Article, list[Repair], list[str]]:
    title, *rest = lines
    if not _is_title_line(title):
        raise IssueFormatError(
            f"a headline was expected here, not the paragraph '{_clip(title.text)}'",
            source=source,
            line=title.number,
            place=title.place,
            code="issue.headline_expected",
            text=_clip(title.text),
        )
    kicker, headline = _split_title(title.text)
    if kicker:
        _checked(title, kicker, "the kicker", source)
    _checked(title, headline, "the headline", source)
    byline, body = _take_byline(rest)
    if byline:
        _checked(rest[-1], byline, "the byline", source)
    subtitle = None
    if len(body) > 1 and _is_heading_line(body[0]) and body[0].role != "title":
        line = body.pop(0)
        subtitle = _checked(line, " ".join(line.text.split()), "the subtitle", source)
    if not body:
        raise IssueFormatError(
            f"the headline '{headline}' is not followed by any text",
            source=source,
            line=title.number,
            place=title.place,
            code="issue.headline_alone",
            headline=headline,
        )
    blocks, repairs, warnings = _read_blocks(body, source)
    article = Article(
        headline=headline, kicker=kicker, subtitle=subtitle, byline=byline, blocks=blocks
    )
    return article, repairs, warnings


def _split_title(text: str) -> tuple[str | None, str]:
    """Kicker and headline from "kicker headline"; halves of equal length are one headline."""
    parts = text.split()
    if (
        len(parts) == 2
        and len(parts[0]) != len(parts[1])
        and min(len(parts[0]), len(parts[1])) >= MIN_KICKER_CHARS
        and _is_han(parts[0][-1])
        and _is_han(parts[1][0])
    ):
        return parts[0], parts[1]
    return None, " ".join(parts)


def _take_byline(lines: list[_Line]) -> tuple[str | None, list[_Line]]:
    """The byline at the end of an article, and the lines without it."""
    if not lines or lines[-1].role == "image":
        return None, lines
    last = lines[-1]
    alone = _BYLINE_ALONE.match(last.text)
    if alone:
        return " ".join(alone["name"].split()), lines[:-1]
    trailing = _TRAILING_BYLINE.match(last.text)
    if trailing:
        kept = _Line(last.number, trailing["text"].rstrip(), last.place, last.role)
        return " ".join(trailing["name"].split()), [*lines[:-1], kept]
    return None, lines


def _read_blocks(lines: list[_Line], source: str) -> tuple[list[Block], list[Repair], list[str]]:
    """Paragraphs and headings; a paragraph cut off mid-sentence continues on the next line."""
    blocks: list[Block] = []
    last_lines: list[str] = []
    repairs: list[Repair] = []
    for index, line in enumerate(lines):
        if line.role == "image":
            caption = _checked(line, line.text, "the picture's caption", source)
            blocks.append(Block("image", caption, image=line.image))
            last_lines.append(line.where)
            continue
        heading = index + 1 < len(lines) and _is_heading_line(line)
        what = "the section heading" if heading else "the paragraph"
        _checked(line, line.text, what, source, one_line=heading)
        own = line.role == "paragraph" or (index > 0 and lines[index - 1].role == "paragraph")
        if blocks and _is_cut_off(blocks[-1]) and not heading and not own:
            before = lines[index - 1]
            repairs.append(Repair(before.number, before.text, line.text, before.place))
            blocks[-1] = Block("paragraph", blocks[-1].text + line.text)
            last_lines[-1] = line.where
            continue
        blocks.append(Block("heading" if heading else "paragraph", line.text))
        last_lines.append("" if line.role == "paragraph" else line.where)
    warnings: list[str] = [
        Notice(
            f"paragraph ends without final punctuation (“…{block.text[-12:]}”); "
            "check it against the print layout",
            code="issue.cut_off",
            end=block.text[-12:],
        ).at(where)
        for block, where in zip(blocks, last_lines, strict=True)
        if _is_cut_off(block) and where
    ]
    return blocks, repairs, warnings


# --- shapes ---------------------------------------------------------------------------------


def _is_title_line(line: _Line) -> bool:
    """A headline by its formatting, or else by its shape; a picture or a bold heading is none."""
    if line.role is not None:
        return line.role == "title" or (line.role == "heading" and _is_title(line.text))
    return _is_title(line.text)


def _is_heading_line(line: _Line) -> bool:
    """A heading by its formatting (bold, a heading style), or else by its shape."""
    if line.role is not None:
        return line.role in ("title", "heading")
    return _is_heading(line.text)


def _is_title(text: str) -> bool:
    """Unlike a heading, a headline may exclaim or ask ("喜报!"); it never ends with "。"."""
    return _is_short_unfinished(text.rstrip(_TITLE_MARKS) or text, MAX_TITLE_CHARS)


def _is_heading(text: str) -> bool:
    return _is_short_unfinished(text, MAX_HEADING_CHARS)


def _is_short_unfinished(text: str, limit: int) -> bool:
    """Short, no final punctuation, not stopped mid-sentence, not a byline: a title's shape."""
    return (
        len(text) <= limit
        and not _ends_sentence(text)
        and text[-1] not in _OPEN_ENDINGS
        and not _BYLINE_ALONE.match(text)
    )


def _is_cut_off(block: Block) -> bool:
    return block.type == "paragraph" and not _ends_sentence(block.text)


def _ends_sentence(text: str) -> bool:
    core = text.rstrip(_CLOSERS)
    return (bool(core) and core[-1] in _SENTENCE_END) or bool(_REMARK_AFTER_END.search(text))


def _is_han(char: str) -> bool:
    return "\u3400" <= char <= "\u9fff" or "\uf900" <= char <= "\ufaff" or char >= "\U00020000"


def _checked(
    line: _Line,
    text: str,
    what: str,
    source: str,
    *,
    one_line: bool = True,
    limit: int | None = None,
) -> str:
    """``text``, a field read from ``line``, or IssueFormatError naming the field and line."""
    return checked_text(
        text,
        what,
        source=source,
        line=line.number,
        place=line.place,
        one_line=one_line,
        limit=limit,
    )


def _clip(text: str, limit: int = 20) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
