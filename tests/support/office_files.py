"""The sample issue typeset as an office has it: .docx with styles, .docx with direct formatting
only, a two-column PDF with running heads and page numbers; a .docx with two photos; and the
hostile files (encrypted, damaged, zip bomb, scanned).

The committed files in tests/fixtures/issues/office/ come from here:
``.venv/bin/python -m tests.support.office_files`` writes them again. Everything is built from
the text import of the sample, so the acceptance test compares like with like.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

from docx import Document
from docx.enum.text import WD_ALIGN_PARAGRAPH
from docx.shared import Pt
from docx.text.paragraph import Paragraph

from distributor.issues.document import Article, IssueDocument
from distributor.issues.plaintext import parse_plaintext, to_plaintext

SAMPLE = Path(__file__).resolve().parents[2] / "distributor" / "samples" / "hzgy-471.txt"
OFFICE_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "issues" / "office"
PHOTO_CAPTIONS = ("交流会现场", "项目部职工书屋")


def sample_document() -> IssueDocument:
    return parse_plaintext(SAMPLE.read_text(encoding="utf-8"), source=SAMPLE.name).document


def masthead_lines(doc: IssueDocument) -> list[str]:
    """The masthead as the text export prints it, title first."""
    units = to_plaintext(doc).split("\n\n")
    article_units = sum(1 + bool(a.subtitle) + len(a.blocks) + bool(a.byline) for a in doc.articles)
    return [unit.strip() for unit in units[: len(units) - article_units]]


# --- .docx ----------------------------------------------------------------------------------


def docx_with_styles(doc: IssueDocument, photos: tuple[bytes, ...] = ()) -> bytes:
    """Title style, 标题 1 (Heading 1) headlines with their kicker, Heading 2 subtitles, Heading
    3 section headings, Normal paragraphs; the byline at the end of the last paragraph."""
    document = Document()
    head, *rest = masthead_lines(doc)
    document.add_paragraph(head, style="Title")
    for line in rest:
        document.add_paragraph(line).alignment = WD_ALIGN_PARAGRAPH.CENTER
    pictures = iter(photos)
    for article in doc.articles:
        title = f"{article.kicker} {article.headline}" if article.kicker else article.headline
        document.add_heading(title, level=1)
        if article.subtitle:
            document.add_heading(article.subtitle, level=2)
        _add_photo(document, pictures, caption_style=True)
        for index, block in enumerate(article.blocks):
            if block.type == "heading":
                document.add_heading(block.text, level=3)
                continue
            last = index == len(article.blocks) - 1
            text = f"{block.text}({article.byline})" if last and article.byline else block.text
            document.add_paragraph(text).paragraph_format.first_line_indent = Pt(21)
    return saved_docx(document)


def docx_direct(doc: IssueDocument, photos: tuple[bytes, ...] = ()) -> bytes:
    """No styles but Normal: the kicker bold 14 pt, the headline bold 22 pt, the subtitle 16 pt,
    all centred; section headings bold at the body size; the byline right-aligned on its own."""
    document = Document()
    head, *rest = masthead_lines(doc)
    _direct(document, head, 36, bold=True, centred=True)
    for line in rest:
        _direct(document, line, 10.5, centred=True)
    pictures = iter(photos)
    for article in doc.articles:
        if article.kicker:
            _direct(document, article.kicker, 14, bold=True, centred=True)
        _direct(document, article.headline, 22, bold=True, centred=True)
        if article.subtitle:
            _direct(document, article.subtitle, 16, centred=True)
        _add_photo(document, pictures, caption_style=False)
        for block in article.blocks:
            _direct(document, block.text, 10.5, bold=block.type == "heading")
        if article.byline:
            byline = _direct(document, f"({article.byline})", 10.5)
            byline.alignment = WD_ALIGN_PARAGRAPH.RIGHT
    return saved_docx(document)


def docx_with_photos(photos: tuple[bytes, bytes]) -> bytes:
    """The styled sample with a captioned photo under each of the first two headlines."""
    return docx_with_styles(sample_document(), photos)


def _direct(
    document: object, text: str, size: float, *, bold: bool = False, centred: bool = False
) -> Paragraph:
    paragraph: Paragraph = document.add_paragraph()  # type: ignore[attr-defined]
    run = paragraph.add_run(text)
    run.font.size = Pt(size)
    run.font.bold = bold or None
    if centred:
        paragraph.alignment = WD_ALIGN_PARAGRAPH.CENTER
    return paragraph


def _add_photo(document: object, pictures: Iterator[bytes], *, caption_style: bool) -> None:
    photo = next(pictures, None)
    if photo is None:
        return
    number = sum(1 for _ in document.inline_shapes)  # type: ignore[attr-defined]
    document.add_picture(io.BytesIO(photo), width=Pt(200))  # type: ignore[attr-defined]
    caption = PHOTO_CAPTIONS[number]
    if caption_style:
        document.add_paragraph(caption, style="Caption")  # type: ignore[attr-defined]
    else:
        _direct(document, caption, 9, centred=True)


def saved_docx(document: object) -> bytes:
    """The .docx, its zip dated the issue's day, so that the same document gives the same bytes."""
    out = io.BytesIO()
    document.save(out)  # type: ignore[attr-defined]
    fixed = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(out.getvalue())) as source,
        zipfile.ZipFile(fixed, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for member in source.infolist():
            dated = zipfile.ZipInfo(member.filename, date_time=(2022, 12, 27, 0, 0, 0))
            target.writestr(dated, source.read(member), zipfile.ZIP_DEFLATED)
    return fixed.getvalue()


def photo(colour: tuple[int, int, int], size: tuple[int, int] = (160, 100)) -> bytes:
    """A small JPEG photo: a gradient, so it is a real picture and not one flat colour."""
    from PIL import Image

    image = Image.new("RGB", size, colour)
    pixels = image.load()
    assert pixels is not None
    for x in range(size[0]):
        for y in range(size[1]):
            r, g, b = colour
            pixels[x, y] = ((r + x) % 256, (g + y) % 256, b)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=80)
    return out.getvalue()


# --- PDF ------------------------------------------------------------------------------------


def pdf_two_columns(
    doc: IssueDocument,
    *,
    copies: int = 1,
    pagesize: tuple[float, float] | None = None,
    columns: int = 2,
    page_label: str = "- {page} -",
    photos: tuple[bytes, ...] = (),
) -> bytes:
    """The issue on A4 in two columns (masthead across the top of page 1), STSong-Light, a
    running head and a page number on every page; ``copies`` repeats the articles (for a long
    issue to time); ``page_label`` is the page number's form; ``photos`` go under the first
    headlines, each with its caption (PHOTO_CAPTIONS) centred below it."""
    from reportlab.lib.enums import TA_CENTER, TA_RIGHT
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import (
        BaseDocTemplate,
        Frame,
        FrameBreak,
        NextPageTemplate,
        PageTemplate,
    )
    from reportlab.platypus import Image as Picture
    from reportlab.platypus import Paragraph as Para

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    font = "STSong-Light"

    def style(name: str, size: float, **more: object) -> ParagraphStyle:
        return ParagraphStyle(
            name, fontName=font, fontSize=size, leading=size * 1.5, wordWrap="CJK", **more
        )

    body = style("body", 10, firstLineIndent=20, spaceAfter=2)
    heading = style("heading", 10, spaceBefore=4, spaceAfter=2)
    centred = style("masthead", 10, alignment=TA_CENTER, spaceAfter=4)
    kicker = style("kicker", 14, alignment=TA_CENTER, spaceBefore=8)
    headline = style("headline", 18, alignment=TA_CENTER, spaceAfter=4)
    subtitle = style("subtitle", 14, alignment=TA_CENTER, spaceAfter=4)
    byline = style("byline", 10, alignment=TA_RIGHT, spaceAfter=6)
    caption = style("caption", 9, alignment=TA_CENTER, spaceAfter=6)
    name = style("name", 36, alignment=TA_CENTER, spaceAfter=8)

    width, height = pagesize or A4
    margin, gap = 42.0, 24.0
    column = (width - 2 * margin - gap * (columns - 1)) / columns
    top = 240.0 if columns > 1 else 0.0  # the masthead's height on page 1
    first_frames = [
        Frame(margin + i * (column + gap), margin, column, height - 2 * margin - top, id=f"c{i}")
        for i in range(columns)
    ]
    frames = [
        Frame(margin + i * (column + gap), margin, column, height - 2 * margin, id=f"d{i}")
        for i in range(columns)
    ]
    masthead = Frame(margin, height - margin - top, width - 2 * margin, top, id="masthead")
    day = doc.date
    running_head = f"{doc.title}  第{doc.number}期  {day.year}年{day.month}月{day.day}日"

    def furniture(canvas: object, template: object) -> None:
        page = canvas.getPageNumber()  # type: ignore[attr-defined]
        canvas.setFont(font, 8)  # type: ignore[attr-defined]
        if page > 1:
            canvas.drawCentredString(width / 2, height - 28, running_head)  # type: ignore[attr-defined]
        label = page_label.format(page=page)
        canvas.drawCentredString(width / 2, 22, label)  # type: ignore[attr-defined]

    out = io.BytesIO()
    template = BaseDocTemplate(
        out, pagesize=(width, height), title=doc.title, author="distributor tests", invariant=1
    )
    first = [masthead, *first_frames] if columns > 1 else frames
    template.addPageTemplates(
        [
            PageTemplate("first", first, onPage=furniture),
            PageTemplate("later", frames, onPage=furniture),
        ]
    )
    head, *rest = masthead_lines(doc)
    story: list[object] = [NextPageTemplate("later"), Para(head, name)]
    story += [Para(_escaped(line), centred) for line in rest]
    if columns > 1:
        story.append(FrameBreak())
    pictures = iter(zip(photos, PHOTO_CAPTIONS, strict=False))
    for _ in range(copies):
        for article in doc.articles:
            flow = _pdf_article(article, Para, body, heading, kicker, headline, subtitle, byline)
            picture = next(pictures, None)
            if picture is not None:
                at = 1 + bool(article.kicker) + bool(article.subtitle)
                flow[at:at] = [Picture(io.BytesIO(picture[0]), 160, 100), Para(picture[1], caption)]
            story += flow
    template.build(story)
    return out.getvalue()


def _pdf_article(article: Article, para: type, *styles: object) -> list[object]:
    body, heading, kicker, headline, subtitle, byline = styles
    flow = []
    if article.kicker:
        flow.append(para(_escaped(article.kicker), kicker))
    flow.append(para(_escaped(article.headline), headline))
    if article.subtitle:
        flow.append(para(_escaped(article.subtitle), subtitle))
    for block in article.blocks:
        if block.type == "heading":
            flow.append(para(_escaped(block.text), heading))
        else:
            flow.append(para(_escaped(block.text), body))
    if article.byline:
        flow.append(para(_escaped(f"({article.byline})"), byline))
    return flow


def _escaped(text: str) -> str:
    """Text as reportlab markup; STSong-Light has no middle dot, Helvetica sets it."""
    escaped = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return escaped.replace("·", '<font name="Helvetica">·</font>')


# --- hostile files --------------------------------------------------------------------------


def encrypted_pdf() -> bytes:
    from reportlab.lib import pdfencrypt
    from reportlab.pdfgen.canvas import Canvas

    out = io.BytesIO()
    canvas = Canvas(out, encrypt=pdfencrypt.StandardEncryption("secret", canPrint=0), invariant=1)
    canvas.drawString(72, 720, "Hangzhou Gongyun 471")
    canvas.save()
    return out.getvalue()


def scanned_pdf(picture: bytes) -> bytes:
    """A page that is only a picture, as a scanner makes it: no text layer."""
    from reportlab.lib.utils import ImageReader
    from reportlab.pdfgen.canvas import Canvas

    out = io.BytesIO()
    canvas = Canvas(out, invariant=1)
    canvas.drawImage(ImageReader(io.BytesIO(picture)), 72, 400, width=400, height=250)
    canvas.showPage()
    canvas.save()
    return out.getvalue()


def damaged_docx(good: bytes) -> bytes:
    """A .docx cut off in the middle, as an interrupted download leaves it."""
    return good[: len(good) // 2]


def zip_bomb() -> bytes:
    """A .docx whose document.xml inflates from ~200 KiB to 200 MiB."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        day = (2022, 12, 27, 0, 0, 0)
        archive.writestr(zipfile.ZipInfo("[Content_Types].xml", day), "<Types/>")
        document = zipfile.ZipInfo("word/document.xml", day)
        document.compress_type = zipfile.ZIP_DEFLATED
        with archive.open(document, "w", force_zip64=True) as member:
            chunk = b" " * 2**20
            for _ in range(200):
                member.write(chunk)
    return out.getvalue()


def build_all(directory: Path = OFFICE_FIXTURES) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    doc = sample_document()
    photos = (photo((200, 60, 40)), photo((40, 90, 200)))
    files = {
        "hzgy-471-styles.docx": docx_with_styles(doc),
        "hzgy-471-direct.docx": docx_direct(doc),
        "hzgy-471-columns.pdf": pdf_two_columns(doc),
        "hzgy-471-photos.docx": docx_with_photos(photos),
        "encrypted.pdf": encrypted_pdf(),
        "scanned.pdf": scanned_pdf(photos[0]),
        "zip-bomb.docx": zip_bomb(),
    }
    files["damaged.docx"] = damaged_docx(files["hzgy-471-styles.docx"])
    for name, data in files.items():
        (directory / name).write_bytes(data)


if __name__ == "__main__":
    build_all()
