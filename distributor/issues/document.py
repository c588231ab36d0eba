"""An issue as plain data: what the importer produces, the store saves and the renderer reads.

The JSON form (``issue show --json``, the web API, ``--format json`` imports) is
``{"title", "number", "date", "masthead": {...}, "articles": [{"kicker", "headline", "subtitle",
"byline", "blocks": [{"type": "paragraph"|"heading", "text"}]}]}``. An image block
(``{"type": "image", "text": caption, "image": name}``) comes only from a .docx or PDF import: its
bytes are in :attr:`IssueDocument.images`, not in the JSON form.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from typing import Any, Literal

from distributor.errors import IssueFormatError, Notice

BlockType = Literal["paragraph", "heading", "image"]
BLOCK_TYPES: tuple[BlockType, ...] = ("paragraph", "heading", "image")
TEXT_BLOCK_TYPES: tuple[BlockType, ...] = ("paragraph", "heading")
"""What a JSON import may hold: an image's bytes travel only inside a .docx or PDF."""
MAX_ISSUE_NUMBER = 2**31 - 1
"""The largest issue number: the database keeps it in a 32-bit INTEGER column."""
MAX_NEWSLETTER_TITLE_CHARS = 200
"""The longest newsletter title: its column is VARCHAR(200)."""

# A title, headline, kicker, masthead field… ends up in a mail header or a one-line display: no
# control character and no line break at all. A paragraph may hold tabs and newlines. Unpaired
# surrogates (only JSON escapes make them) cannot be stored or sent as UTF-8.
_NOT_IN_A_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_NOT_IN_A_PARAGRAPH = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_LINE_BREAKS = {
    "\n": "a line break",
    "\v": "a line break",
    "\f": "a page break",
    "\r": "a carriage return",
    "\x85": "a line break",
    "\u2028": "a line separator",
    "\u2029": "a paragraph separator",
}
_CONTROL_NAMES = {"\x00": "NUL", "\t": "TAB", "\x1b": "ESC", "\x7f": "DEL", "\x9b": "CSI"}


@dataclass(frozen=True)
class Block:
    """A paragraph, a section heading or an image inside an article's body.

    An image block's ``text`` is its caption (the alt text), and ``image`` the name of its bytes
    in :attr:`IssueDocument.images`.
    """

    type: BlockType
    text: str
    image: str | None = None


@dataclass(frozen=True)
class IssueImage:
    """A picture kept with the issue: ``content_type`` is sniffed from ``data``, never taken
    from the file that brought it."""

    name: str
    content_type: str
    data: bytes

    @property
    def extension(self) -> str:
        return self.content_type.removeprefix("image/").replace("jpeg", "jpg")


@dataclass
class Article:
    headline: str
    kicker: str | None = None
    subtitle: str | None = None
    byline: str | None = None
    blocks: list[Block] = field(default_factory=list)

    @property
    def paragraphs(self) -> list[str]:
        return [block.text for block in self.blocks if block.type == "paragraph"]

    @property
    def headings(self) -> list[str]:
        return [block.text for block in self.blocks if block.type == "heading"]


@dataclass
class Masthead:
    """The fixed head of the printed newsletter. Every field is the text as printed, or None."""

    hotline: str | None = None
    submission: str | None = None
    weekday: str | None = None
    lunar_date: str | None = None
    publisher: str | None = None
    permit: str | None = None
    address: str | None = None
    postcode: str | None = None
    editor: str | None = None
    slogan: str | None = None


MASTHEAD_FIELDS = tuple(f.name for f in fields(Masthead))


@dataclass
class IssueDocument:
    title: str
    number: int
    date: date
    masthead: Masthead = field(default_factory=Masthead)
    articles: list[Article] = field(default_factory=list)
    images: dict[str, IssueImage] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "number": self.number,
            "date": self.date.isoformat(),
            "masthead": asdict(self.masthead),
            "articles": [
                {
                    "kicker": article.kicker,
                    "headline": article.headline,
                    "subtitle": article.subtitle,
                    "byline": article.byline,
                    "blocks": [_block_json(b) for b in article.blocks],
                }
                for article in self.articles
            ],
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str = "") -> IssueDocument:
        """Validate the JSON form; every complaint names the field that is wrong."""

        def fail(message: str, *, code: str, **params: Any) -> IssueFormatError:
            return IssueFormatError(message, source=source, code=code, **params)

        if not isinstance(data, dict):
            raise fail(
                "the JSON document must be an object with title, number, date, articles",
                code="issue.json_shape",
            )
        for key in ("title", "number", "date", "articles"):
            if key not in data:
                raise fail(f"field '{key}' is missing", code="issue.json_missing", field=key)
        title = _text(data["title"], "title", fail, limit=MAX_NEWSLETTER_TITLE_CHARS)
        number = data["number"]
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise fail(
                f"field 'number' must be a whole number, not {number!r}",
                code="issue.json_number",
                value=repr(number)[:40],
            )
        issue_number(number, "field 'number'", source=source)
        try:
            issue_date = date.fromisoformat(str(data["date"]))
        except ValueError:
            raise fail(
                f"field 'date' must be an ISO date (YYYY-MM-DD), not {data['date']!r}",
                code="issue.json_date",
                value=repr(data["date"])[:40],
            ) from None
        raw_masthead = data.get("masthead") or {}
        if not isinstance(raw_masthead, dict):
            raise fail("field 'masthead' must be an object", code="issue.json_masthead")
        unknown = sorted(set(raw_masthead) - set(MASTHEAD_FIELDS))
        if unknown:
            shown = ", ".join(ascii(key)[1:-1] for key in unknown)
            raise fail(
                f"masthead has unknown field(s) {shown}",
                code="issue.json_masthead_unknown",
                fields=shown,
            )
        masthead = Masthead(
            **{k: _optional_text(v, f"masthead.{k}", fail) for k, v in raw_masthead.items()}
        )
        if not isinstance(data["articles"], list) or not data["articles"]:
            raise fail("field 'articles' must be a non-empty list", code="issue.json_articles")
        articles = []
        for index, raw in enumerate(data["articles"], start=1):
            where = f"articles[{index}]"
            if not isinstance(raw, dict):
                raise fail(f"{where} must be an object", code="issue.json_object", field=where)
            raw_blocks = raw.get("blocks") or []
            if not isinstance(raw_blocks, list):
                raise fail(
                    f"field '{where}.blocks' must be a list",
                    code="issue.json_list",
                    field=f"{where}.blocks",
                )
            blocks = []
            for block_index, raw_block in enumerate(raw_blocks, start=1):
                block_where = f"{where}.blocks[{block_index}]"
                if not isinstance(raw_block, dict) or raw_block.get("type") not in TEXT_BLOCK_TYPES:
                    raise fail(
                        f"{block_where} must have a type of 'paragraph' or 'heading'",
                        code="issue.json_block_type",
                        field=block_where,
                    )
                block_type = raw_block["type"]
                text = _text(
                    raw_block.get("text"),
                    f"{block_where}.text",
                    fail,
                    one_line=block_type == "heading",
                )
                blocks.append(Block(block_type, text))
            articles.append(
                Article(
                    headline=_text(raw.get("headline"), f"{where}.headline", fail),
                    kicker=_optional_text(raw.get("kicker"), f"{where}.kicker", fail),
                    subtitle=_optional_text(raw.get("subtitle"), f"{where}.subtitle", fail),
                    byline=_optional_text(raw.get("byline"), f"{where}.byline", fail),
                    blocks=blocks,
                )
            )
        return cls(
            title=title, number=number, date=issue_date, masthead=masthead, articles=articles
        )


def _block_json(block: Block) -> dict[str, str]:
    shown = {"type": block.type, "text": block.text}
    return {**shown, "image": block.image} if block.image else shown


def _optional_text(
    value: Any,
    where: str,
    fail: Callable[..., IssueFormatError],
    *,
    one_line: bool = True,
    limit: int | None = None,
) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise fail(
            f"field '{where}' must be text, not {type(value).__name__}",
            code="issue.json_text",
            field=where,
        )
    problem = text_problem(value, one_line=one_line, limit=limit)
    if problem:
        raise fail(
            f"field '{where}' {problem}", code="issue.json_unfit", field=where, problem=problem
        )
    return value


def _text(
    value: Any,
    where: str,
    fail: Callable[..., IssueFormatError],
    *,
    one_line: bool = True,
    limit: int | None = None,
) -> str:
    text = _optional_text(value, where, fail, one_line=one_line, limit=limit)
    if text is None:
        raise fail(f"field '{where}' is missing or empty", code="issue.json_empty", field=where)
    return text


def text_problem(text: str, *, one_line: bool = True, limit: int | None = None) -> Notice | None:
    """What makes ``text`` unfit for an issue, said after the field's name; None if it is fit.

    Caught at import, such text would otherwise be stored and then fail every delivery, or
    reach a staff terminal as escape sequences.
    """
    unfit = (_NOT_IN_A_LINE if one_line else _NOT_IN_A_PARAGRAPH).search(text)
    if unfit:
        char, at = unfit.group(), unfit.start() + 1
        return Notice(
            f"contains {_describe(char)} at character {at}; remove it",
            code="issue.unfit_char",
            char=f"U+{ord(char):04X}",
            at=at,
        )
    if limit is not None and len(text) > limit:
        return Notice(
            f"is {len(text):,} characters long; it may be at most {limit}",
            code="issue.text_long",
            length=len(text),
            most=limit,
        )
    return None


def checked_text(
    text: str,
    what: str,
    *,
    source: str,
    line: int | None = None,
    place: str | None = None,
    one_line: bool = True,
    limit: int | None = None,
) -> str:
    """``text`` unchanged, or IssueFormatError naming ``what`` (e.g. "the headline") and line."""
    problem = text_problem(text, one_line=one_line, limit=limit)
    if problem:
        raise IssueFormatError(
            f"{what} {problem}",
            source=source,
            line=line,
            place=place,
            code="issue.text_unfit",
            what=what,
            problem=problem,
        )
    return text


def issue_number(
    value: int | str, what: str, *, source: str, line: int | None = None, place: str | None = None
) -> int:
    """``value`` (a number, or its digits as printed) as an issue number the database can hold.

    Digits are counted before int() reads them: it refuses more than 4,300 of them.
    """
    fits = len(value) <= len(str(MAX_ISSUE_NUMBER)) if isinstance(value, str) else True
    if fits and int(value) <= MAX_ISSUE_NUMBER:
        return int(value)
    digits = str(value)
    shown = digits if len(digits) <= 20 else f"a {len(digits):,}-digit number"
    raise IssueFormatError(
        f"{what} is too large ({shown}); an issue number is at most {MAX_ISSUE_NUMBER:,}",
        source=source,
        line=line,
        place=place,
        code="issue.number_large",
        what=what,
        shown=shown,
        most=MAX_ISSUE_NUMBER,
    )


def _describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    if "\ud800" <= char <= "\udfff":
        return f"an unpaired surrogate ({code})"
    if char in _LINE_BREAKS:
        return f"{_LINE_BREAKS[char]} ({code})"
    name = _CONTROL_NAMES.get(char)
    return f"the control character {name} ({code})" if name else f"the control character {code}"


@dataclass(frozen=True)
class Repair:
    """A page-break split the importer rejoined: staff check these against the print layout."""

    line: int
    before: str
    after: str
    place: str = ""  # where lines are not the unit: "paragraph 12", "page 3, line 7"

    def describe(self) -> str:
        where = self.place or f"line {self.line}"
        return f"{where}: joined “…{self.before[-12:]}” + “{self.after[:12]}…”"


@dataclass
class ImportReport:
    """What the importer recognised, what it repaired and what looks wrong but was kept."""

    document: IssueDocument
    format: str
    encoding: str = "UTF-8"
    repairs: list[Repair] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
