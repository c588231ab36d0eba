"""An issue as plain data: what the importer produces, the store saves and the renderer reads.

The JSON form (``issue show --json``, the web API, ``--format json`` imports) is
``{"title", "number", "date", "masthead": {...}, "articles": [{"kicker", "headline", "subtitle",
"byline", "blocks": [{"type": "paragraph"|"heading", "text"}]}]}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from typing import Any, Literal

from distributor.errors import IssueFormatError

BlockType = Literal["paragraph", "heading"]
BLOCK_TYPES: tuple[BlockType, ...] = ("paragraph", "heading")


@dataclass(frozen=True)
class Block:
    """A paragraph or a section heading inside an article's body."""

    type: BlockType
    text: str


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
                    "blocks": [{"type": b.type, "text": b.text} for b in article.blocks],
                }
                for article in self.articles
            ],
        }

    @classmethod
    def from_json(cls, data: Any, *, source: str = "") -> IssueDocument:
        """Validate the JSON form; every complaint names the field that is wrong."""

        def fail(message: str) -> IssueFormatError:
            return IssueFormatError(message, source=source)

        if not isinstance(data, dict):
            raise fail("the JSON document must be an object with title, number, date, articles")
        for key in ("title", "number", "date", "articles"):
            if key not in data:
                raise fail(f"field '{key}' is missing")
        title = _text(data["title"], "title", fail)
        number = data["number"]
        if isinstance(number, bool) or not isinstance(number, int) or number < 0:
            raise fail(f"field 'number' must be a whole number, not {number!r}")
        try:
            issue_date = date.fromisoformat(str(data["date"]))
        except ValueError:
            raise fail(
                f"field 'date' must be an ISO date (YYYY-MM-DD), not {data['date']!r}"
            ) from None
        raw_masthead = data.get("masthead") or {}
        if not isinstance(raw_masthead, dict):
            raise fail("field 'masthead' must be an object")
        unknown = sorted(set(raw_masthead) - set(MASTHEAD_FIELDS))
        if unknown:
            raise fail(f"masthead has unknown field(s) {', '.join(unknown)}")
        masthead = Masthead(
            **{k: _optional_text(v, f"masthead.{k}", fail) for k, v in raw_masthead.items()}
        )
        if not isinstance(data["articles"], list) or not data["articles"]:
            raise fail("field 'articles' must be a non-empty list")
        articles = []
        for index, raw in enumerate(data["articles"], start=1):
            where = f"articles[{index}]"
            if not isinstance(raw, dict):
                raise fail(f"{where} must be an object")
            blocks = []
            for block_index, raw_block in enumerate(raw.get("blocks") or [], start=1):
                block_where = f"{where}.blocks[{block_index}]"
                if not isinstance(raw_block, dict) or raw_block.get("type") not in BLOCK_TYPES:
                    raise fail(f"{block_where} must have a type of 'paragraph' or 'heading'")
                text = _text(raw_block.get("text"), f"{block_where}.text", fail)
                blocks.append(Block(raw_block["type"], text))
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


def _optional_text(value: Any, where: str, fail: Callable[[str], IssueFormatError]) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise fail(f"field '{where}' must be text, not {type(value).__name__}")
    return value


def _text(value: Any, where: str, fail: Callable[[str], IssueFormatError]) -> str:
    text = _optional_text(value, where, fail)
    if text is None:
        raise fail(f"field '{where}' is missing or empty")
    return text


@dataclass(frozen=True)
class Repair:
    """A page-break split the importer rejoined: staff check these against the print layout."""

    line: int
    before: str
    after: str

    def describe(self) -> str:
        return f"line {self.line}: joined “…{self.before[-12:]}” + “{self.after[:12]}…”"


@dataclass
class ImportReport:
    """What the importer recognised, what it repaired and what looks wrong but was kept."""

    document: IssueDocument
    format: str
    encoding: str = "UTF-8"
    repairs: list[Repair] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
