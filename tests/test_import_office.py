"""Issue 24: the issue imported from the files the office has, .docx (Word, WPS) and PDF.

Pure tests: no database. The committed documents in tests/fixtures/issues/office/ are the sample
typeset by tests/support/office_files.py; the others are built here, each to show one thing the
readers must handle in documents they have never seen.
"""

from __future__ import annotations

import copy
import io
import random
import zlib
from pathlib import Path

import pytest
from docx import Document
from docx.enum.style import WD_STYLE_TYPE
from docx.oxml import OxmlElement
from docx.shared import Pt
from pdfminer.high_level import extract_pages
from pdfminer.layout import LTTextBox
from pdfminer.pdfpage import PDFPage

from distributor.errors import ImportFailed
from distributor.issues import files, pdf
from distributor.issues.document import Block, IssueDocument
from distributor.issues.files import MAX_DOCUMENT_BYTES
from distributor.issues.importer import read_issue, read_issue_file
from distributor.issues.plaintext import parse_plaintext
from tests.support.office_files import (
    OFFICE_FIXTURES,
    PHOTO_CAPTIONS,
    docx_direct,
    masthead_lines,
    pdf_two_columns,
    photo,
    sample_document,
    saved_docx,
)

TYPESET = ["hzgy-471-styles.docx", "hzgy-471-direct.docx", "hzgy-471-columns.pdf"]


@pytest.fixture(scope="module")
def sample() -> IssueDocument:
    return sample_document()


@pytest.mark.parametrize("name", TYPESET)
def test_the_typeset_sample_imports_equal_to_the_text_import(
    name: str, sample_issue_path: Path
) -> None:
    text_import = parse_plaintext(sample_issue_path.read_text(encoding="utf-8")).document
    report = read_issue_file(OFFICE_FIXTURES / name)
    doc = report.document
    assert report.format == name.rsplit(".", 1)[1]
    assert (doc.title, doc.number, doc.date) == (text_import.title, 471, text_import.date)
    assert doc.masthead == text_import.masthead
    assert [a.headline for a in doc.articles] == [a.headline for a in text_import.articles]
    for got, want in zip(doc.articles, text_import.articles, strict=True):
        assert (got.kicker, got.subtitle, got.byline) == (want.kicker, want.subtitle, want.byline)
        assert got.blocks == want.blocks  # every paragraph and heading, character for character
    assert doc == text_import
    assert report.warnings == []


def test_a_pdf_paragraph_going_on_in_the_next_column_is_joined_and_reported() -> None:
    report = read_issue_file(OFFICE_FIXTURES / "hzgy-471-columns.pdf")
    assert report.repairs, "the sample's long articles run over columns and pages"
    for repair in report.repairs:
        assert repair.describe().startswith("page ")
        assert repair.before + repair.after in "".join(
            block.text for article in report.document.articles for block in article.blocks
        )


def test_a_document_is_known_by_its_bytes_not_its_name(sample: IssueDocument) -> None:
    data = (OFFICE_FIXTURES / "hzgy-471-styles.docx").read_bytes()
    assert read_issue(data, source="issue.txt").document == sample
    with pytest.raises(ImportFailed, match="not a PDF"):
        read_issue(data, source="issue.docx", format="pdf")


# --- the class, not the fixtures ------------------------------------------------------------


def test_styles_named_in_chinese_and_a_masthead_in_a_table(sample: IssueDocument) -> None:
    """WPS names its styles 标题 1, 标题 2; offices often set the masthead in a table."""
    document = Document()
    head, *rest = masthead_lines(sample)
    for name in ("标题 1", "标题 2"):
        document.styles.add_style(name, WD_STYLE_TYPE.PARAGRAPH)
    table = document.add_table(rows=1, cols=2)
    table.cell(0, 0).text = head
    for line in rest:
        table.cell(0, 1).add_paragraph(line)
    for article in sample.articles:
        title = f"{article.kicker} {article.headline}" if article.kicker else article.headline
        document.add_paragraph(title, style="标题 1")
        if article.subtitle:
            document.add_paragraph(article.subtitle, style="标题 2")
        for block in article.blocks:
            style = "标题 2" if block.type == "heading" else None
            document.add_paragraph(block.text, style=style)
        document.add_paragraph(f"({article.byline})")
    assert read_issue(saved_docx(document), source="wps.docx").document == sample


def test_a_headline_set_large_starts_an_article_without_a_byline_before_it(
    sample: IssueDocument,
) -> None:
    """In the text export an article without a byline runs on into the next; set large, the
    next headline is known for what it is."""
    unsigned = copy.deepcopy(sample)
    for article in unsigned.articles[:2]:
        article.byline = None
    report = read_issue(docx_direct(unsigned), source="no-bylines.docx")
    assert report.document == unsigned
    assert report.warnings == [  # the headlines' paragraphs (the second's kicker is 15)
        "paragraph 9: “市总工会召开深入构建新时代和谐劳动关系工…” has no byline; check it",
        "paragraph 16: “中建安装苏杭公司把工会组织建在项目部上” has no byline; check it",
    ]


def test_a_logo_above_the_masthead_is_left_out_and_changes_nothing(sample: IssueDocument) -> None:
    """The newsletter's name under a logo is still no headline to measure the others by."""
    unsigned = copy.deepcopy(sample)
    unsigned.articles[0].byline = None  # only a headline's size can end the first article
    document = Document(io.BytesIO(docx_direct(unsigned)))
    logo = document.paragraphs[0].insert_paragraph_before()
    logo.add_run().add_picture(io.BytesIO(photo((0, 90, 160), size=(60, 60))))
    report = read_issue(saved_docx(document), source="logo.docx")
    assert report.document == unsigned
    assert report.warnings[0] == "paragraph 1: a picture in the masthead is not kept"


def test_a_kicker_set_smaller_than_a_headline_is_still_its_kicker(sample: IssueDocument) -> None:
    """At 12 pt over a 10.5 pt text the kicker is no headline by size: bold and centred above
    the headline, it is its kicker all the same."""
    document = Document(io.BytesIO(docx_direct(sample)))
    kicker = next(p for p in document.paragraphs if p.text == sample.articles[1].kicker)
    kicker.runs[0].font.size = Pt(12)
    assert read_issue(saved_docx(document), source="kicker.docx").document == sample


def test_a_section_heading_set_large_does_not_start_an_article(sample: IssueDocument) -> None:
    """Bold 14 pt over 10.5 pt text is large, but well below the 22 pt headlines."""
    document = Document(io.BytesIO(docx_direct(sample)))
    headings = set(sample.articles[3].headings)
    for paragraph in document.paragraphs:
        if paragraph.text in headings:
            paragraph.runs[0].font.size = Pt(14)
    assert read_issue(saved_docx(document), source="headings.docx").document == sample


def test_paragraphs_inside_content_controls_are_read(sample: IssueDocument) -> None:
    """WPS and many templates put the masthead in a content control (w:sdt)."""
    document = Document(io.BytesIO(docx_direct(sample)))
    masthead = [p._p for p in document.paragraphs[: len(masthead_lines(sample))]]
    control, content = OxmlElement("w:sdt"), OxmlElement("w:sdtContent")
    control.append(content)
    masthead[0].addprevious(control)
    for paragraph in masthead:
        content.append(paragraph)
    assert read_issue(saved_docx(document), source="sdt.docx").document == sample


def test_soft_line_breaks_join_cjk_without_a_gap_and_words_with_a_space(
    sample: IssueDocument,
) -> None:
    document = Document(io.BytesIO(docx_direct(sample)))
    paragraph = next(p for p in document.paragraphs if p.text.startswith("12月21日"))
    first = paragraph.runs[0].text
    paragraph.runs[0].text = first[:10]
    paragraph.runs[0].add_break()
    paragraph.add_run(first[10:]).font.size = Pt(10.5)
    imported = read_issue(saved_docx(document), source="breaks.docx").document
    assert imported.articles[0].blocks[0].text == sample.articles[0].blocks[0].text


def test_automatic_list_numbers_are_kept_as_word_shows_them(sample: IssueDocument) -> None:
    document = Document(io.BytesIO(docx_direct(sample)))
    anchor = next(p for p in document.paragraphs if p.text.startswith("会上,"))
    items = [("List Number", "第一项工作。"), ("List Number", "第二项工作。")]
    items += [("List Bullet", "一项要点。"), ("List Bullet", "另一项要点。")]
    for style, text in items:
        anchor.insert_paragraph_before(text, style=style)
    blocks = read_issue(saved_docx(document), source="lists.docx").document.articles[0].blocks
    assert [b.text for b in blocks[1:5]] == [
        "1. 第一项工作。",
        "2. 第二项工作。",
        "• 一项要点。",
        "• 另一项要点。",
    ]


def test_a_table_in_an_article_is_a_paragraph_per_row(sample: IssueDocument) -> None:
    document = Document(io.BytesIO(docx_direct(sample)))
    anchor = next(p for p in document.paragraphs if p.text.startswith("会上,"))
    table = document.add_table(rows=3, cols=2)
    rows = [("考点", "考场"), ("上城区", "12"), ("滨江区", "9")]
    for row, cells in zip(table.rows, rows, strict=True):
        for cell, text in zip(row.cells, cells, strict=True):
            cell.text = text
    anchor._p.addprevious(table._tbl)
    report = read_issue(saved_docx(document), source="table.docx")
    blocks = report.document.articles[0].blocks
    assert blocks[1:5] == [
        Block("paragraph", "考点 | 考场"),
        Block("paragraph", "上城区 | 12"),
        Block("paragraph", "滨江区 | 9"),
        sample.articles[0].blocks[1],
    ]
    assert report.warnings == [] and report.repairs == []


def test_a_headline_boxed_in_a_one_cell_table_is_still_a_headline(sample: IssueDocument) -> None:
    """WPS layouts often box a title in a table of one cell."""
    document = Document(io.BytesIO(docx_direct(sample)))
    headline = next(p for p in document.paragraphs if p.text == sample.articles[2].headline)
    box = document.add_table(rows=1, cols=1)
    headline._p.addprevious(box._tbl)
    cell = box.cell(0, 0)
    cell._tc.remove(cell.paragraphs[0]._p)
    cell._tc.append(headline._p)
    assert read_issue(saved_docx(document), source="boxed.docx").document == sample


def test_a_one_column_pdf_reads_top_to_bottom(sample: IssueDocument) -> None:
    from reportlab.lib.pagesizes import A5

    data = pdf_two_columns(sample, pagesize=A5, columns=1)
    assert read_issue(data, source="a5.pdf").document == sample


def test_a_pdf_numbered_in_chinese_drops_its_page_numbers(sample: IssueDocument) -> None:
    data = pdf_two_columns(sample, page_label="第 {page} 页 共 4 页")
    assert read_issue(data, source="pages.pdf").document == sample


def test_a_right_column_of_two_lines_is_read_after_the_left(sample: IssueDocument) -> None:
    short = copy.deepcopy(sample)
    short.articles = short.articles[2:3]
    data = pdf_two_columns(short, page_label="", pagesize=(595.0, 690.0))
    [page] = list(extract_pages(io.BytesIO(data)))
    right = [box.get_text() for box in page if isinstance(box, LTTextBox) and box.x0 > 297]
    assert right == ["公布。\n", "(基层工作部)\n"]  # short lines, nothing to tell the column by
    assert read_issue(data, source="short.pdf").document == short


def test_a_running_head_on_one_page_only_is_dropped(sample: IssueDocument) -> None:
    """Two pages: the running head of page 2 recurs nowhere, but it names the issue."""
    short = copy.deepcopy(sample)
    short.articles = short.articles[2:3]
    data = pdf_two_columns(short, page_label="", pagesize=(595.0, 500.0))
    assert sum(1 for _ in PDFPage.get_pages(io.BytesIO(data))) == 2
    assert read_issue(data, source="two-pages.pdf").document == short


def test_pdf_gaps_a_typed_space_wide_are_spaces_and_justification_is_not(
    sample: IssueDocument,
) -> None:
    """Some PDF makers draw no space characters, only gaps; justified CJK lines have gaps too."""
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen.canvas import Canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    out = io.BytesIO()
    canvas = Canvas(out, invariant=1)

    def words(y: float, size: float, *parts: str, spacing: float = 0) -> None:
        x = 72.0
        for part in parts:  # each part drawn on its own, a space's width apart
            text = canvas.beginText(x, y)
            text.setFont("STSong-Light", size)
            text.setCharSpace(spacing)
            text.textOut(part)
            canvas.drawText(text)
            x += pdfmetrics.stringWidth(part, "STSong-Light", size) + len(part) * spacing
            x += size * 2  # a gap as wide as two characters, where the text has a space

    y = 780.0
    for line in masthead_lines(sample):
        words(y, 10, *line.split())
        y -= 20
    article = sample.articles[3]  # 协力促和谐 聚力助共富
    words(y - 10, 18, *article.headline.split())
    words(y - 40, 10, "今年以来,上城区总工会团结企业与职工走出共济共赢新路。", spacing=1.5)
    words(y - 55, 10, "(上城区总工会)")
    canvas.save()
    [read] = read_issue(out.getvalue(), source="gaps.pdf").document.articles
    assert read.headline == "协力促和谐 聚力助共富"
    assert read.blocks == [
        Block("paragraph", "今年以来,上城区总工会团结企业与职工走出共济共赢新路。")
    ]
    assert read.byline == "上城区总工会"


def test_photos_become_image_blocks_with_their_captions() -> None:
    report = read_issue_file(OFFICE_FIXTURES / "hzgy-471-photos.docx")
    doc = report.document
    images = [b for a in doc.articles for b in a.blocks if b.type == "image"]
    assert [b.text for b in images] == list(PHOTO_CAPTIONS)
    assert doc.articles[0].blocks[0] == images[0] and doc.articles[1].blocks[0] == images[1]
    assert sorted(doc.images) == sorted(b.image for b in images)
    for block in images:
        stored = doc.images[str(block.image)]
        assert stored.content_type == "image/jpeg" and stored.data.startswith(b"\xff\xd8\xff")
    without = [b for a in doc.articles for b in a.blocks if b.type != "image"]
    assert without == [b for a in sample_document().articles for b in a.blocks]


def test_photos_in_a_pdf_become_image_blocks_with_their_captions(sample: IssueDocument) -> None:
    photos = (photo((200, 60, 40)), photo((40, 90, 200)))
    report = read_issue(pdf_two_columns(sample, photos=photos), source="photos.pdf")
    doc = report.document
    images = [b for a in doc.articles for b in a.blocks if b.type == "image"]
    assert [b.text for b in images] == list(PHOTO_CAPTIONS)
    assert [doc.images[str(b.image)].data for b in images] == list(photos)
    without = [b for a in doc.articles for b in a.blocks if b.type != "image"]
    assert without == [b for a in sample.articles for b in a.blocks]


def test_an_error_names_the_paragraph_or_the_page(sample: IssueDocument) -> None:
    undated = copy.deepcopy(sample)
    undated.masthead.weekday = "星期八"  # the date line no longer reads as one
    with pytest.raises(ImportFailed) as docx_error:
        read_issue(docx_direct(undated), source="bad.docx")
    assert docx_error.value.message.startswith("bad.docx, paragraph 4: cannot read the date line")
    with pytest.raises(ImportFailed) as pdf_error:
        read_issue(pdf_two_columns(undated), source="bad.pdf")
    assert pdf_error.value.message.startswith("bad.pdf, page 1, paragraph 4: cannot read the date")


# --- hostile files: one clear error each ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("encrypted.pdf", "encrypted.pdf: the PDF is encrypted (it needs a password)"),
        ("scanned.pdf", "scanned.pdf: the PDF has no text layer (a scan?)"),
        ("damaged.docx", "damaged.docx: the .docx is damaged (not a readable zip)"),
        ("zip-bomb.docx", "zip-bomb.docx: the .docx would unpack to more than 100 MiB"),
    ],
)
def test_a_hostile_file_gets_one_clear_error(name: str, message: str) -> None:
    with pytest.raises(ImportFailed) as refused:
        read_issue_file(OFFICE_FIXTURES / name)
    assert refused.value.message.startswith(message)
    assert "\n" not in refused.value.message


def test_a_docx_with_more_markup_than_an_issue_has_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(files, "MAX_XML_BYTES", 50 * 1024)  # the bound lowered for the test
    data = (OFFICE_FIXTURES / "hzgy-471-styles.docx").read_bytes()
    with pytest.raises(ImportFailed, match="holds more than 0 MiB of text and markup"):
        read_issue(data, source="styles.docx")


def test_an_encrypted_docx_and_an_old_doc_are_told_apart() -> None:
    ole = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504)
    encrypted = ole + "EncryptionInfo".encode("utf-16-le") + bytes(100)
    with pytest.raises(ImportFailed, match=r"encrypted \(password-protected\)"):
        read_issue(encrypted, source="locked.docx")
    with pytest.raises(ImportFailed, match=r"Word 97–2003 \(\.doc\)"):
        read_issue(ole, source="old.doc")


def test_an_oversized_document_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.pdf"
    with big.open("wb") as file:
        file.write(b"%PDF-1.7\n")
        file.truncate(MAX_DOCUMENT_BYTES + 1)  # sparse: nothing is written or read
    with pytest.raises(ImportFailed, match=r"big\.pdf: the document is 20\.0 MiB; a \.docx or PDF"):
        read_issue_file(big)


def test_a_pdf_compression_bomb_is_refused_before_pdfminer_inflates_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit = 16 * 2**20  # the bound lowered, so that the test builds a small bomb
    monkeypatch.setattr(pdf, "MAX_INFLATED_BYTES", limit)
    inflater = zlib.compressobj(9)
    chunks = [inflater.compress(bytes(2**20)) for _ in range(limit // 2**20 + 1)]
    stream = b"".join(chunks) + inflater.flush()
    data = (
        b"%PDF-1.4\n1 0 obj <</Type/Catalog/Pages 2 0 R>> endobj\n"
        b"2 0 obj <</Type/Pages/Kids[]/Count 0>> endobj\n"
        + f"3 0 obj <</Length {len(stream)}/Filter/FlateDecode>>\nstream\n".encode()
        + stream
        + b"\nendstream\nendobj\ntrailer <</Root 1 0 R>>\n%%EOF\n"
    )
    with pytest.raises(ImportFailed, match="more than 16 MiB: refused as a compression bomb"):
        read_issue(data, source="bomb.pdf")


def test_a_picture_over_the_limit_is_refused_with_its_place(sample: IssueDocument) -> None:
    big = photo((10, 10, 10), size=(1600, 1200))
    big += random.Random(24).randbytes(2**20)  # after the JPEG's end: still a JPEG, too big
    with pytest.raises(ImportFailed, match=r"paragraph \d+: the picture is 1\.\d MiB"):
        read_issue(docx_direct(sample, photos=(big,)), source="big-photo.docx")
