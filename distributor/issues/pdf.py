"""PDF for the printer → the text importer's lines: reading order recovered, paragraphs rebuilt.

pdfminer.six's layout analysis gives the text lines of each page with their position and font.
From them:

* running heads and page numbers are dropped: lines in the top or bottom band of the page that
  recur on other pages (digits aside), read like a page number, or (after the first page) name
  the issue or page ("第471期", "第2版");
* on a page with two columns, lines are read band by band: the left column, then the right one,
  and a line across both (the masthead, a wide headline) closes a band;
* a paragraph ends where its last line stops short of the column's edge, the next line is
  indented, centred, set in another size, or further down than the line spacing; so a paragraph
  that goes on at the top of the next column or page (not indented) is joined, and the join is
  reported like the text importer's page-break repairs;
* the lines of a paragraph are joined without a gap between CJK characters
  (:func:`~distributor.issues.layout.join_lines`); roles come from sizes and weights as for .docx.

A JPEG photo becomes an image line where it stands. A PDF without a text layer (a scan) has no
lines at all: that is said, not guessed at. Memory stays bounded: every compressed stream is
inflated a megabyte at a time and counted before pdfminer inflates it whole, and pages are read
one at a time (at most :data:`MAX_PDF_PAGES`).
"""

from __future__ import annotations

import io
import re
import unicodedata
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from pdfminer.high_level import extract_pages
from pdfminer.layout import (
    LAParams,
    LTAnno,
    LTChar,
    LTFigure,
    LTImage,
    LTPage,
    LTTextBox,
    LTTextLine,
)
from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError, PDFPasswordIncorrect
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import LITERALS_DCT_DECODE

from distributor.errors import ImportFailed, Notice
from distributor.issues.document import ImportReport, Repair
from distributor.issues.images import ImageCollector
from distributor.issues.layout import (
    MAX_ROLE_CHARS,
    TITLE_SIZE_RATIO,
    Setting,
    join_lines,
    merge_titles,
    role_of,
    running_size,
)
from distributor.issues.plaintext import SourceLine, parse_lines

MAX_PDF_PAGES = 200
MAX_INFLATED_BYTES = 200 * 1024 * 1024
"""Most bytes a PDF's compressed streams may inflate to in all (200 MiB): a bomb is refused."""
DEFAULT_SIZE_PT = 10.0
MIN_SPACE_EM = 0.2
"""A gap between CJK characters this wide (in ems) or wider is a space; narrower, justification."""
MARGIN_BAND = 0.07
"""The top and bottom 7% of a page, where running heads and page numbers are."""
_LAYOUT = LAParams(char_margin=1.0, line_margin=0.3, boxes_flow=None)
_PAGE_NUMBER = re.compile(
    r"^[-—–·\s]*(?:page\s*|第\s*)?\d{1,4}\s*页?\s*(?:(?:/|of|共)\s*\d{1,4}\s*页?)?[-—–·\s]*$",
    re.IGNORECASE,
)
_RUNNING_HEAD = re.compile(r"第\s*\d+\s*[期版]")
"""Names the issue or the page: in a page's margin band after the first, a running head."""
_UNMAPPED = re.compile(r"\(cid:\d+\)")
"""What pdfminer prints for a glyph whose font does not say which character it is."""
_STREAM = re.compile(rb"stream\r?\n")
_BOLD = re.compile(r"bold|heavy|black|黑体|hei", re.IGNORECASE)


@dataclass
class _Line:
    page: int
    text: str
    x0: float
    x1: float
    top: float  # distance from the top of the page
    bottom: float
    size: float
    bold: bool
    indented: bool = False  # starts with spaces ("　　", as Chinese text is often indented)
    picture: bytes | None = None  # a picture's bytes (its text is "")
    column: int = 0  # 0 left or only, 1 right, -1 across both


@dataclass
class _Page:
    number: int
    width: float
    height: float
    lines: list[_Line]
    two_columns: bool = False


@dataclass
class _Paragraph:
    lines: list[_Line] = field(default_factory=list)
    joins: list[tuple[_Line, _Line]] = field(default_factory=list)  # across a column or page

    @property
    def text(self) -> str:
        return join_lines(line.text for line in self.lines)


def read_pdf(data: bytes, *, source: str) -> ImportReport:
    """The issue in a text PDF; a clear error for an encrypted, damaged, scanned or bomb one."""
    _check_openable(data, source)
    _check_inflated_size(data, source)
    pages = _read_pages(data, source)
    if not any(line.text for page in pages for line in page.lines):
        raise ImportFailed(
            f"{source}: the PDF has no text layer (a scan?); export it from the layout program "
            "as a text PDF, or import the .docx",
            code="issue.pdf_no_text",
            file=source,
        )
    _check_characters(pages, source)
    _drop_page_furniture(pages)
    ordered = [line for page in pages for line in _reading_order(page)]
    edges = _column_edges(ordered, pages)
    paragraphs = _paragraphs(ordered, edges)
    body = running_size(((p.text, p.lines[0].size) for p in paragraphs), DEFAULT_SIZE_PT)
    images = ImageCollector(source)
    sourced: list[tuple[SourceLine, float]] = []
    captions: set[int] = set()  # paragraphs read as a picture's caption
    for number, paragraph in enumerate(paragraphs, start=1):
        first = paragraph.lines[0]
        where = Notice(
            f"page {first.page}, paragraph {number}",
            code="place.page_paragraph",
            page=first.page,
            paragraph=number,
        )
        if number in captions:
            continue
        if first.picture is not None:
            name = images.add(first.picture, where)
            following = paragraphs[number] if number < len(paragraphs) else None
            caption = ""
            if following is not None and _is_caption(following, edges, body):
                caption = following.text
                captions.add(number + 1)
            if name is not None:
                sourced.append((SourceLine(number, caption, where, "image", name), body))
            continue
        setting = _setting(paragraph, edges)
        role = role_of(paragraph.text, setting, body)
        sourced.append((SourceLine(number, paragraph.text, where, role), setting.size))
    report = parse_lines(merge_titles(sourced), source=source, format="pdf")
    used = {block.image for article in report.document.articles for block in article.blocks}
    report.document.images = {n: image for n, image in images.images.items() if n in used}
    report.warnings[:0] = images.warnings
    report.repairs[:0] = [
        Repair(0, before.text, after.text, f"page {after.page}")
        for paragraph in paragraphs
        for before, after in paragraph.joins
    ]
    return report


# --- opening --------------------------------------------------------------------------------


def _check_openable(data: bytes, source: str) -> None:
    try:
        document = PDFDocument(PDFParser(io.BytesIO(data)))
    except (PDFPasswordIncorrect, PDFEncryptionError):
        raise ImportFailed(
            f"{source}: the PDF is encrypted (it needs a password); export it again without one",
            code="issue.pdf_password",
            file=source,
        ) from None
    except Exception as error:  # pdfminer raises many kinds on a broken file
        raise ImportFailed(
            f"{source}: the PDF is damaged ({type(error).__name__}); export it again",
            code="issue.pdf_damaged",
            file=source,
        ) from None
    if document.encryption is not None and not document.is_extractable:
        raise ImportFailed(
            f"{source}: the PDF is encrypted and forbids copying its text; export it again "
            "without protection",
            code="issue.pdf_no_copy",
            file=source,
        )


def _check_inflated_size(data: bytes, source: str) -> None:
    """Inflate every compressed stream, bounded, before pdfminer inflates them whole."""
    budget = MAX_INFLATED_BYTES
    for match in _STREAM.finditer(data):
        end = data.find(b"endstream", match.end())
        inflater, pending = zlib.decompressobj(), data[match.end() : end]
        try:
            while pending and budget >= 0:  # a megabyte at a time, each thrown away
                budget -= len(inflater.decompress(pending, 2**20))
                pending = inflater.unconsumed_tail
        except zlib.error:
            continue  # not Flate, or not compressed at all
        if budget < 0:
            raise ImportFailed(
                f"{source}: the PDF's contents inflate to more than "
                f"{MAX_INFLATED_BYTES / 2**20:.0f} MiB: refused as a compression bomb",
                code="issue.pdf_bomb",
                file=source,
                most=round(MAX_INFLATED_BYTES / 2**20),
            )


def _check_characters(pages: list[_Page], source: str) -> None:
    """Text whose font has no character map reads as "(cid:123)": refused, not imported so."""
    lines = [line for page in pages for line in page.lines]
    unmapped = [line for line in lines if _UNMAPPED.search(line.text)]
    if len(unmapped) * 10 > len(lines):
        raise ImportFailed(
            f"{source}, page {unmapped[0].page}: the PDF's fonts do not say which characters they "
            "show, so its text cannot be read; export it again with the fonts embedded "
            "(Word: Save As → PDF → Options → ISO 19005-1 / PDF/A), or import the .docx",
            code="issue.pdf_fonts",
            file=source,
            page=unmapped[0].page,
        )


def _read_pages(data: bytes, source: str) -> list[_Page]:
    pages: list[_Page] = []
    try:
        for number, page in enumerate(extract_pages(io.BytesIO(data), laparams=_LAYOUT), 1):
            if number > MAX_PDF_PAGES:
                raise ImportFailed(
                    f"{source}: the PDF has more than {MAX_PDF_PAGES} pages; an issue has fewer",
                    code="issue.pdf_pages",
                    file=source,
                    most=MAX_PDF_PAGES,
                )
            pages.append(_Page(number, page.width, page.height, list(_page_lines(page, number))))
    except ImportFailed:
        raise
    except Exception as error:
        raise ImportFailed(
            f"{source}, page {len(pages) + 1}: the PDF is damaged ({type(error).__name__}); "
            "export it again",
            code="issue.pdf_page_damaged",
            file=source,
            page=len(pages) + 1,
        ) from None
    return pages


def _page_lines(page: LTPage, number: int) -> Iterator[_Line]:
    for box in page:
        if isinstance(box, LTFigure | LTImage):
            yield from _pictures(box, page, number)
        if not isinstance(box, LTTextBox):
            continue
        for line in box:
            if not isinstance(line, LTTextLine):
                continue
            chars = [char for char in line if isinstance(char, LTChar)]
            raw = _line_text(list(line))
            text = raw.strip()
            if not chars or not text:
                continue
            sizes = [round(char.size, 1) for char in chars if not char.get_text().isspace()]
            yield _Line(
                page=number,
                text=text,
                x0=line.x0,
                x1=line.x1,
                top=page.height - line.y1,
                bottom=page.height - line.y0,
                size=Counter(sizes).most_common(1)[0][0] if sizes else round(chars[0].size, 1),
                bold=all(_BOLD.search(char.fontname) for char in chars),
                indented=raw[:1].isspace(),
            )


def _pictures(item: LTFigure | LTImage, page: LTPage, number: int) -> Iterator[_Line]:
    """A picture as a line without text, where it stands on the page: its bytes as the PDF
    keeps them (a JPEG is kept whole; other encodings are left out with a warning)."""
    for image in item if isinstance(item, LTFigure) else [item]:
        if isinstance(image, LTFigure):
            yield from _pictures(image, page, number)
        elif isinstance(image, LTImage):
            yield _Line(
                page=number,
                text="",
                x0=image.x0,
                x1=image.x1,
                top=page.height - image.y1,
                bottom=page.height - image.y0,
                size=DEFAULT_SIZE_PT,
                bold=False,
                picture=_jpeg(image),
            )


def _jpeg(image: LTImage) -> bytes:
    """A JPEG's bytes (the PDF keeps them whole); nothing for another encoding, which is never
    inflated (a page-sized bitmap would take hundreds of megabytes) and is left out."""
    filters = image.stream.get_filters()
    return image.stream.get_data() if filters and filters[-1][0] in LITERALS_DCT_DECODE else b""


def _line_text(items: list[LTChar | LTAnno]) -> str:
    """The characters of a line. Where the PDF draws no space but leaves a gap, pdfminer infers
    one: kept between Latin words, and between CJK characters only when the gap is as wide as a
    typed space (narrower ones are justification)."""
    text = ""
    previous: LTChar | None = None
    for index, item in enumerate(items):
        char = item.get_text()
        if char != " ":
            if isinstance(item, LTChar):
                text, previous = text + char, item
            continue
        following = next((i for i in items[index + 1 :] if isinstance(i, LTChar)), None)
        after = following.get_text()[:1] if following is not None else ""
        if isinstance(item, LTChar):
            text += "" if _is_cjk_gap(text[-1:], after) else " "
        elif text[-1:].isascii() and text[-1:].isalnum() and after.isascii():
            text += " "
        elif previous is not None and following is not None and not _is_cjk_gap(text[-1:], after):
            gap = following.x0 - previous.x1
            text += " " if gap >= MIN_SPACE_EM * max(previous.size, 1.0) else ""
    return text


def _is_cjk_gap(before: str, after: str) -> bool:
    """A space beside CJK punctuation ("“ 红"): set for justification, never typed."""
    wide = before and after and not before.isascii() and not after.isascii()
    return bool(wide) and any(unicodedata.category(c).startswith("P") for c in before + after)


# --- page furniture and reading order -------------------------------------------------------


def _drop_page_furniture(pages: list[_Page]) -> None:
    """Running heads and page numbers: in the top or bottom band, numbered or recurring."""

    def shape(line: _Line) -> str:
        return re.sub(r"\d+", "#", line.text)

    def in_margin(line: _Line, page: _Page) -> bool:
        band = page.height * MARGIN_BAND
        return line.bottom < band or line.top > page.height - band

    recurring = Counter(
        shape(line) for page in pages for line in page.lines if in_margin(line, page)
    )
    for page in pages:
        page.lines = [
            line
            for line in page.lines
            if not (
                in_margin(line, page)
                and (
                    _PAGE_NUMBER.match(line.text)
                    or recurring[shape(line)] > 1
                    or (page.number > 1 and _RUNNING_HEAD.search(line.text))
                )
            )
        ]


def _reading_order(page: _Page) -> list[_Line]:
    """Top to bottom on a page of one column; on a page of two, band by band: the left
    column, then the right, each band closed by a line across both."""
    middle = page.width / 2
    lines = sorted(page.lines, key=lambda line: (round(line.bottom), line.x0))
    right = [line for line in lines if line.x0 >= middle]
    left = [line for line in lines if line.x1 <= middle and line.x1 - line.x0 > page.width / 4]
    across = [line for line in lines if line.x0 < middle < line.x1]
    # a page of one column has most lines across its middle, a page of two has none but a few
    # (its masthead, a wide headline), even where its right column holds a line or two
    wide_right = any(line.x1 - line.x0 > page.width / 4 for line in right)
    page.two_columns = wide_right or len(left) > len(across)
    lines = _pieces_joined(lines, middle if page.two_columns else None)
    if not page.two_columns:
        return lines
    ordered: list[_Line] = []
    band: tuple[list[_Line], list[_Line]] = ([], [])
    for line in lines:
        if line.x0 < middle < line.x1:
            line.column = -1
            ordered += band[0] + band[1] + [line]
            band = ([], [])
        else:
            line.column = 0 if line.x1 <= middle else 1
            band[line.column].append(line)
    return ordered + band[0] + band[1]


def _pieces_joined(lines: list[_Line], gutter: float | None) -> list[_Line]:
    """Pieces of one printed line that pdfminer split at a wide gap ("出版:杭州市总工会" and
    "准印证号:…" set apart on one line) joined by a space: the same baseline and size, less
    than four characters apart, and not on both sides of the gutter between two columns."""
    joined: list[_Line] = []
    for line in lines:
        last = joined[-1] if joined else None
        if (
            last is not None
            and last.text
            and line.text
            and abs(last.bottom - line.bottom) < line.size * 0.3
            and abs(last.size - line.size) < 0.5
            and 0 <= line.x0 - last.x1 < line.size * 4
            and not (gutter is not None and last.x1 <= gutter <= line.x0)
        ):
            last.text = f"{last.text} {line.text}"
            last.x1, last.bold = line.x1, last.bold and line.bold
        else:
            joined.append(line)
    return joined


# --- paragraphs -----------------------------------------------------------------------------


def _paragraphs(lines: list[_Line], edges: Edges) -> list[_Paragraph]:
    body = running_size(((line.text * 3, line.size) for line in lines), DEFAULT_SIZE_PT)
    paragraphs: list[_Paragraph] = []
    previous: _Line | None = None
    for line in lines:
        pictured = line.picture is not None or (previous is not None and previous.picture)
        if previous is not None and not pictured and _continues(previous, line, edges, body):
            paragraph = paragraphs[-1]
            if _breaks_flow(previous, line):
                paragraph.joins.append((previous, line))
            paragraph.lines.append(line)
        else:
            paragraphs.append(_Paragraph([line]))
        previous = line
    return paragraphs


Edges = dict[tuple[int, int], tuple[float, float]]


def _column_edges(lines: list[_Line], pages: list[_Page]) -> Edges:
    """Each column's left and right edge on each page: where most of its lines start, and the
    median end of its long lines (CJK text set ragged ends a character short or long)."""
    edges: Edges = {}
    for page in pages:
        for column in (-1, 0, 1):
            own = [
                line
                for line in lines
                if line.page == page.number and line.column == column and line.picture is None
            ]
            if not own:
                continue
            left = Counter(round(line.x0) for line in own).most_common(1)[0][0]
            widest = max(line.x1 - left for line in own)
            ends = sorted(line.x1 for line in own if line.x1 - left > widest * 0.8)
            edges[page.number, column] = (left, ends[len(ends) // 2])
    return edges


def _continues(previous: _Line, line: _Line, edges: Edges, body: float) -> bool:
    """Whether ``line`` goes on with the paragraph ``previous`` is the last line of so far."""
    if abs(previous.size - line.size) > 0.5 or previous.bold != line.bold:
        return False
    left = edges[line.page, line.column][0]
    previous_right = edges[previous.page, previous.column][1]
    if previous.x1 < previous_right - previous.size * 1.5:  # stopped short: the paragraph ended
        return False
    same_column = not _breaks_flow(previous, line)
    close = same_column and line.top - previous.bottom < line.size * 0.7
    if line.indented:
        return False
    if line.x0 > left + line.size * 0.8:  # indented (a new paragraph), or a centred title's
        return close and line.size >= body * TITLE_SIZE_RATIO  # second line
    return not same_column or line.top - previous.bottom < line.size * 0.9


def _setting(paragraph: _Paragraph, edges: Edges) -> Setting:
    return Setting(
        max(line.size for line in paragraph.lines),
        all(line.bold for line in paragraph.lines),
        _is_centred(paragraph.lines[0], edges),
    )


def _is_caption(paragraph: _Paragraph, edges: Edges, body: float) -> bool:
    """A short centred line right below a picture, not set as a headline."""
    first = paragraph.lines[0]
    if first.picture is not None or len(paragraph.text) > MAX_ROLE_CHARS:
        return False
    setting = _setting(paragraph, edges)
    return setting.centred and role_of(paragraph.text, setting, body) != "title"


def _breaks_flow(previous: _Line, line: _Line) -> bool:
    """Whether reading goes on from ``previous`` to ``line`` at the top of another column or
    page (where vertical distance says nothing)."""
    return previous.page != line.page or (previous.column, line.column) == (0, 1)


def _is_centred(line: _Line, edges: Edges) -> bool:
    """Set off from both edges of its column by about the same amount."""
    if (line.page, line.column) not in edges:
        return False
    left, right = edges[line.page, line.column]
    middle = (line.x0 + line.x1) / 2
    return line.x0 - left > line.size and abs(middle - (left + right) / 2) < line.size * 1.5
