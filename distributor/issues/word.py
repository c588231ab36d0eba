"""Word and WPS documents (.docx) → the text importer's lines, with what their formatting says.

Each paragraph (in tables, text boxes and content controls too, in reading order) becomes one
line for :func:`~distributor.issues.plaintext.parse_lines`, so masthead, bylines, lunar date and
every other rule are the text import's; a list item keeps the label Word shows for it. The
formatting adds roles, read from styles *and* from direct formatting, since offices use both:

* a headline: styled 标题 1 / Heading 1 / Title (or outline level 1), or set at least 1.3 times
  the body text's size (:mod:`~distributor.issues.layout`);
* a heading or subtitle: styled 标题 2–9 / Heading 2–9 / Subtitle, or bold or centred;
* consecutive headline-sized lines are one title (:func:`~distributor.issues.layout.merge_titles`);
* a table in an article is one paragraph per row, its cells separated by " | " (a table that
  holds masthead fields, or is one cell wide, lays text out: it is read paragraph by paragraph);
* a picture (JPEG or PNG) is an image block; its caption is the paragraph's own short text, a
  caption-styled (题注) or short centred paragraph right after it, or else its alt text.

Soft line breaks inside a paragraph are joined without a gap between CJK characters, as the
text importer joins page-break splits. Places are "paragraph N", counted through the document.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from docx import Document as open_document
from docx.document import Document, _Body
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.oxml.ns import qn
from docx.oxml.xmlchemy import BaseOxmlElement
from docx.styles.style import ParagraphStyle
from docx.table import Table, _Cell, _Row
from docx.text.paragraph import Paragraph
from docx.text.run import Run

from distributor.errors import ImportFailed, Notice
from distributor.issues.document import ImportReport
from distributor.issues.files import open_zip
from distributor.issues.images import ImageCollector
from distributor.issues.layout import (
    MAX_ROLE_CHARS,
    Setting,
    join_lines,
    merge_titles,
    role_of,
    running_size,
)
from distributor.issues.plaintext import Role, SourceLine, is_masthead_line, parse_lines

DEFAULT_SIZE_PT = 10.5  # Word's Chinese default (五号) when the document names none

_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)
_TITLE_STYLES = {"title", "标题"}
_SUBTITLE_STYLES = {"subtitle", "副标题"}
_CAPTION_STYLES = {"caption", "题注"}
_VML_IMAGE = "{urn:schemas-microsoft-com:vml}imagedata"
_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_RUN_PATHS = (
    "w:r",
    "w:hyperlink/w:r",
    "w:ins/w:r",
    "w:moveTo/w:r",
    "w:smartTag/w:r",
    "w:fldSimple/w:r",
    "w:sdt/w:sdtContent/w:r",
)
_TEXT_BOX = qn("w:txbxContent")
_CHINESE_DIGITS = "零一二三四五六七八九"
_CHINESE_FORMATS = {
    "chineseCounting",
    "chineseCountingThousand",
    "chineseLegalSimplified",
    "japaneseCounting",
    "taiwaneseCounting",
    "ideographDigital",
}


@dataclass
class _Paragraph:
    """A paragraph's text and the formatting that matters here."""

    number: int
    text: str
    size: float | None  # the largest font size of its text, in points
    bold: bool  # all of its text
    centred: bool
    level: int | None  # 0 for a title or heading 1 style, 1 for heading 2 …
    caption: bool  # styled as a caption
    pictures: list[bytes] = field(default_factory=list)
    alt: str = ""
    row: bool = False  # a table's row, read as one paragraph

    @property
    def place(self) -> str:
        return Notice(f"paragraph {self.number}", code="place.paragraph", paragraph=self.number)


def read_docx(data: bytes, *, source: str) -> ImportReport:
    """The issue in a .docx: refused if damaged or a zip bomb, before python-docx reads it."""
    open_zip(data, source).close()
    try:
        document = open_document(io.BytesIO(data))
        paragraphs = list(_paragraphs(document))
    except ImportFailed:
        raise
    except Exception as error:  # python-docx and lxml raise many kinds on a broken part
        raise ImportFailed(
            f"{source}: the .docx is damaged ({type(error).__name__}); open it in Word or WPS and "
            "save it again",
            code="issue.damaged",
            file=source,
        ) from None
    images = ImageCollector(source)
    body_size = running_size(
        ((p.text, p.size) for p in paragraphs if p.size is not None), DEFAULT_SIZE_PT
    )
    lines = merge_titles(_source_lines(paragraphs, body_size, images))
    report = parse_lines(lines, source=source, format="docx")
    used = {block.image for a in report.document.articles for block in a.blocks}
    report.document.images = {name: image for name, image in images.images.items() if name in used}
    report.warnings[:0] = images.warnings
    return report


# --- reading the document -------------------------------------------------------------------


def _paragraphs(document: Document) -> Iterator[_Paragraph]:
    """Each paragraph in reading order; a table in an article as one paragraph per row."""
    default = _default_size(document)
    numbering = _Numbering(document)
    counter = itertools.count(1)

    def read(paragraph: Paragraph) -> _Paragraph:
        found = _read_paragraph(paragraph, next(counter), default)
        label = numbering.label(paragraph)
        if label and found.text:
            gap = " " if label[-1:].isascii() or label == "•" else ""  # "一、" takes none
            found.text = f"{label}{gap}{found.text}"
        return found

    for item in _blocks(document._body):
        if isinstance(item, Table) and not _is_layout_table(item):
            for row in item.rows:
                cells = [[read(p) for p in _in_reading_order(cell)] for cell in _row_cells(row)]
                yield _row(cells)
        else:
            yield from map(read, _in_reading_order(item))


def _in_reading_order(item: Paragraph | Table | _Cell) -> Iterator[Paragraph]:
    """The paragraphs of ``item``: a table's cells row by row (a merged cell once), and the
    paragraphs of a text box before the paragraph that anchors it."""
    if isinstance(item, Table):
        for row in item.rows:
            for cell in _row_cells(row):
                yield from _in_reading_order(cell)
        return
    if isinstance(item, _Cell):
        for inner in _blocks(item):
            yield from _in_reading_order(inner)
        return
    for box in item._p.iter(_TEXT_BOX):
        if next(box.iterancestors(_FALLBACK), None) is None:
            yield from (Paragraph(p, item._parent) for p in box.iter(qn("w:p")))
    yield item


def _blocks(container: _Body | _Cell) -> Iterator[Paragraph | Table]:
    """The paragraphs and tables of the body or a cell in order, those inside content controls
    (w:sdt, which WPS and templates use for title blocks) too."""

    def walk(element: BaseOxmlElement) -> Iterator[Paragraph | Table]:
        for child in element.iterchildren():
            if child.tag == qn("w:p"):
                yield Paragraph(child, container)
            elif child.tag == qn("w:tbl"):
                yield Table(child, container)
            elif child.tag == qn("w:sdt"):
                for content in child.iterchildren(qn("w:sdtContent")):
                    yield from walk(content)

    yield from walk(container._element)


def _row_cells(row: _Row) -> list[_Cell]:
    """The row's cells, a cell merged across columns once."""
    return list({id(cell._tc): cell for cell in row.cells}.values())


def _is_layout_table(table: Table) -> bool:
    """A table that lays text out rather than tabulating it, read paragraph by paragraph: one
    that holds the masthead's fields, or one cell wide (a box around a title or a note)."""
    if all(len(_row_cells(row)) <= 1 for row in table.rows):
        return True
    return any(is_masthead_line(p.text.strip()) for p in _in_reading_order(table))


def _row(cells: list[list[_Paragraph]]) -> _Paragraph:
    """A table row as one paragraph: each cell's text, " | " between cells."""
    found = [paragraph for cell in cells for paragraph in cell]
    texts = [" ".join(p.text for p in cell if p.text) for cell in cells]
    return _Paragraph(
        number=found[0].number if found else 0,
        text=" | ".join(text for text in texts if text),
        size=None,
        bold=False,
        centred=False,
        level=None,
        caption=False,
        pictures=[picture for paragraph in found for picture in paragraph.pictures],
        row=True,
    )


def _read_paragraph(paragraph: Paragraph, number: int, default: float) -> _Paragraph:
    styles = list(_style_chain(paragraph.style))
    runs = [Run(r, paragraph) for r in paragraph._p.xpath(" | ".join(_RUN_PATHS))]  # in order
    text = join_lines("".join(run.text for run in runs).replace("\t", " ").split("\n"))
    visible = [run for run in runs if run.text.strip()]
    style_size = next((s.font.size.pt for s in styles if s.font.size is not None), default)
    sizes = [run.font.size.pt if run.font.size is not None else style_size for run in visible]
    style_bold = next((s.font.bold for s in styles if s.font.bold is not None), False)
    bold = bool(visible) and all(
        run.font.bold if run.font.bold is not None else style_bold for run in visible
    )
    alignment = paragraph.paragraph_format.alignment
    if alignment is None:
        alignment = next(
            (s.paragraph_format.alignment for s in styles if s.paragraph_format.alignment), None
        )
    names = {_style_name(style) for style in styles[:1]}
    return _Paragraph(
        number=number,
        text=text,
        size=max(sizes) if sizes else None,
        bold=bold,
        centred=alignment == WD_ALIGN_PARAGRAPH.CENTER,
        level=_outline_level(paragraph, styles),
        caption=bool(names & _CAPTION_STYLES),
        pictures=_pictures(paragraph),
        alt=" ".join(
            descr for doc_pr in paragraph._p.iter(qn("wp:docPr")) if (descr := doc_pr.get("descr"))
        ),
    )


def _style_chain(style: ParagraphStyle | None) -> Iterator[ParagraphStyle]:
    seen = 0
    while style is not None and seen < 20:
        yield style
        style, seen = style.base_style, seen + 1


def _style_name(style: ParagraphStyle) -> str:
    return " ".join((style.name or "").lower().split())


def _outline_level(paragraph: Paragraph, styles: list[ParagraphStyle]) -> int | None:
    """0 for a headline style, 1 and up for headings and subtitles; None for body text."""
    if styles:
        name = _style_name(styles[0])
        heading = _HEADING_STYLE.match(name)
        if heading:
            return int(heading[1]) - 1
        if name in _TITLE_STYLES:
            return 0
        if name in _SUBTITLE_STYLES:
            return 1
    for element in (paragraph._p, *(style.element for style in styles)):
        level = element.find(f"{qn('w:pPr')}/{qn('w:outlineLvl')}")
        if level is not None and (value := level.get(qn("w:val"), "")).isdigit():
            return int(value) if int(value) < 9 else None  # 9 is Word's "body text"
    return None


def _pictures(paragraph: Paragraph) -> list[bytes]:
    """The bytes of each picture in the paragraph, once each (a drawing and its VML fallback
    name the same part)."""
    own = [
        element
        for tag in (qn("a:blip"), _VML_IMAGE)
        for element in paragraph._p.iter(tag)
        if _outside_text_boxes(element, paragraph._p)
    ]
    ids = [element.get(qn("r:embed")) or element.get(qn("r:id")) for element in own]
    related = paragraph.part.related_parts
    return [related[rid].blob for rid in dict.fromkeys(ids) if rid and rid in related]


def _outside_text_boxes(element: BaseOxmlElement, paragraph: BaseOxmlElement) -> bool:
    """Not in a text box inside ``paragraph`` (its paragraphs are read on their own)."""
    for ancestor in element.iterancestors():
        if ancestor is paragraph:
            return True
        if ancestor.tag == _TEXT_BOX:
            return False
    return True


def _default_size(document: Document) -> float:
    found = document.styles.element.find(
        f"{qn('w:docDefaults')}/{qn('w:rPrDefault')}/{qn('w:rPr')}/{qn('w:sz')}"
    )
    value = found.get(qn("w:val"), "") if found is not None else ""
    return int(value) / 2 if value.isdigit() else DEFAULT_SIZE_PT


# --- to lines -------------------------------------------------------------------------------


def _source_lines(
    paragraphs: list[_Paragraph], body_size: float, images: ImageCollector
) -> list[tuple[SourceLine, float]]:
    """The lines with their roles, each with its size (to order a title's parts)."""
    lines: list[tuple[SourceLine, float]] = []
    index = 0
    while index < len(paragraphs):
        paragraph = paragraphs[index]
        index += 1
        size = paragraph.size or body_size
        if not paragraph.pictures:
            if paragraph.text:
                line = SourceLine(
                    paragraph.number,
                    paragraph.text,
                    paragraph.place,
                    _role(paragraph, body_size),
                )
                lines.append((line, size))
            continue
        caption, text = paragraph.alt, paragraph.text
        if text and len(text) <= MAX_ROLE_CHARS:
            caption, text = text, ""
        elif not text and index < len(paragraphs) and _is_caption(paragraphs[index], body_size):
            caption = paragraphs[index].text
            index += 1
        for picture in paragraph.pictures:
            name = images.add(picture, paragraph.place)
            if name is not None:
                line = SourceLine(paragraph.number, caption, paragraph.place, "image", name)
                lines.append((line, body_size))
        if text:
            lines.append((SourceLine(paragraph.number, text, paragraph.place), size))
    return lines


def _role(paragraph: _Paragraph, body_size: float) -> Role | None:
    """A style says it; else the size, weight and alignment do."""
    if paragraph.row:
        return "paragraph"
    if len(paragraph.text) > MAX_ROLE_CHARS:
        return None
    if paragraph.level is not None:
        return "title" if paragraph.level == 0 else "heading"
    setting = Setting(paragraph.size or body_size, paragraph.bold, paragraph.centred)
    return role_of(paragraph.text, setting, body_size)


def _is_caption(paragraph: _Paragraph, body_size: float) -> bool:
    if paragraph.pictures or not paragraph.text or len(paragraph.text) > MAX_ROLE_CHARS:
        return False
    return paragraph.caption or (paragraph.centred and _role(paragraph, body_size) != "title")


class _Numbering:
    """Word's automatic list labels ("1.", "一、", "（1）", "•"): not in the text of a paragraph
    but in its list definition, so counted here as Word counts them, per list and level."""

    def __init__(self, document: Document) -> None:
        self._levels: dict[tuple[str, int], tuple[str, str, int]] = {}
        self._counts: dict[str, list[int | None]] = {}
        try:
            numbering = document.part.numbering_part.element
        except (KeyError, NotImplementedError):
            return
        abstracts = {
            element.get(qn("w:abstractNumId")): element
            for element in numbering.iter(qn("w:abstractNum"))
        }
        for num in numbering.iter(qn("w:num")):
            reference = num.find(qn("w:abstractNumId"))
            abstract = abstracts.get(reference.get(qn("w:val")) if reference is not None else None)
            if abstract is None:
                continue
            for level in abstract.iter(qn("w:lvl")):
                self._levels[num.get(qn("w:numId"), ""), int(level.get(qn("w:ilvl"), "0"))] = (
                    _value(level, "w:numFmt", "decimal"),
                    _value(level, "w:lvlText", ""),
                    int(_value(level, "w:start", "1")),
                )

    def label(self, paragraph: Paragraph) -> str:
        found = _numbering_of(paragraph)
        if found is None or found not in self._levels:
            return ""
        num_id, level = found
        counts = self._counts.setdefault(num_id, [None] * 9)
        counts[level] = (counts[level] or self._levels[found][2] - 1) + 1
        counts[level + 1 :] = [None] * (8 - level)
        fmt, text, _ = self._levels[found]
        if fmt == "bullet":
            return "•"
        for depth in range(level + 1):
            value = counts[depth] or self._levels.get((num_id, depth), ("", "", 1))[2]
            depth_fmt = self._levels.get((num_id, depth), ("decimal", "", 1))[0]
            text = text.replace(f"%{depth + 1}", _formatted(value, depth_fmt))
        return text.strip()


def _numbering_of(paragraph: Paragraph) -> tuple[str, int] | None:
    """The list (numId) and level of a numbered paragraph, from it or its style."""
    elements = [paragraph._p, *(style.element for style in _style_chain(paragraph.style))]
    for element in elements:
        num_pr = element.find(f"{qn('w:pPr')}/{qn('w:numPr')}")
        if num_pr is not None:
            num_id = _value(num_pr, "w:numId", "0")
            level = _value(num_pr, "w:ilvl", "0")
            return None if num_id == "0" else (num_id, min(int(level), 8))
    return None


def _value(element: object, tag: str, default: str) -> str:
    child = element.find(qn(tag))  # type: ignore[attr-defined]
    return str(child.get(qn("w:val"), default)) if child is not None else default


def _formatted(value: int, fmt: str) -> str:
    if fmt in _CHINESE_FORMATS and 0 < value < 100:
        tens, ones = divmod(value, 10)
        head = "" if tens == 0 else ("十" if tens == 1 else _CHINESE_DIGITS[tens] + "十")
        return head + (_CHINESE_DIGITS[ones] if ones or not head else "")
    if fmt in ("lowerLetter", "upperLetter") and 0 < value <= 26:
        letter = chr(ord("a") + value - 1)
        return letter.upper() if fmt == "upperLetter" else letter
    if fmt == "decimalEnclosedCircle" and 0 < value <= 20:
        return chr(0x245F + value)
    return str(value)
