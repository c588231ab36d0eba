"""The issue importer on the real sample (hzgy-471), hand-written issues and a Windows export.

Pure tests: no database. Fixtures are in tests/fixtures/issues/; the sample is distributor/samples/.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from distributor.errors import ImportFailed
from distributor.issues.document import (
    Article,
    Block,
    ImportReport,
    IssueDocument,
    Masthead,
)
from distributor.issues.importer import read_issue, read_issue_file
from distributor.issues.markdown import parse_markdown, to_markdown
from distributor.issues.plaintext import parse_plaintext, to_plaintext

FIXTURES = Path(__file__).parent / "fixtures" / "issues"
TEXT_FIXTURES = ["hzgy-485.txt", "hzgy-491.txt"]


@pytest.fixture
def sample_text(sample_issue_path: Path) -> str:
    return sample_issue_path.read_text(encoding="utf-8")


@pytest.fixture
def sample(sample_text: str) -> ImportReport:
    return parse_plaintext(sample_text, source="hzgy-471.txt")


def without_breaks(text: str) -> str:
    return text.replace("\n", "")


def paragraph_count(doc: IssueDocument) -> int:
    return sum(len(article.paragraphs) for article in doc.articles)


# --- the sample -----------------------------------------------------------------------------


def test_sample_masthead(sample: ImportReport) -> None:
    doc = sample.document
    assert (doc.title, doc.number, doc.date) == ("杭州工运", 471, date(2022, 12, 27))
    assert doc.masthead == Masthead(
        hotline="(0571)87160990",
        submission="http://www.hzgh.org/tg.htm",
        weekday="星期二",
        lunar_date="壬寅年十二月初五",
        publisher="杭州市总工会",
        permit="浙企准字第A286号",
        address="杭州市上城区东宁路501号",
        postcode="310017",
        editor="侯英帅",
        slogan="联结企业和职工 联系发展与稳定",
    )
    assert sample.format == "text"


def test_sample_titles_and_bylines(sample: ImportReport) -> None:
    titles = [(a.kicker, a.headline, a.subtitle, a.byline) for a in sample.document.articles]
    assert titles == [
        (None, "市总工会召开深入构建新时代和谐劳动关系工作交流会", None, "王钰哲"),
        ("在基层构建和谐稳定的劳动关系", "中建安装苏杭公司把工会组织建在项目部上", None, "臧业扬"),
        (None, "2022年市社会化职业化工会工作者招聘笔试举行", None, "基层工作部"),
        (
            None,
            "协力促和谐 聚力助共富",
            "上城区总工会团结企业与职工走出共济共赢新路",
            "上城区总工会",
        ),
    ]


def test_sample_paragraphs_and_headings(sample: ImportReport) -> None:
    articles = sample.document.articles
    assert [len(a.paragraphs) for a in articles] == [5, 6, 3, 7]
    assert paragraph_count(sample.document) == 21
    assert [a.headings for a in articles[:3]] == [[], [], []]
    assert articles[3].headings == [
        "聚焦主责主业,扛起构建新时代和谐劳动关系的工会担当",
        "聚焦建功立业,凝聚构建新时代和谐劳动关系的各方合力",
        "聚焦共同富裕,放大构建新时代和谐劳动关系的工会优势",
    ]
    # Each heading comes before the text it heads, not glued to a paragraph.
    types = [block.type for block in articles[3].blocks]
    assert "".join(kind[0] for kind in types) == "phphpphppp"


def test_sample_repairs(sample_text: str, sample: ImportReport) -> None:
    lines = sample_text.split("\n")
    assert [repair.line for repair in sample.repairs] == [25, 29, 33, 57, 59, 73, 81, 87]
    for repair in sample.repairs:
        assert repair.before == lines[repair.line - 1]
        assert repair.after == lines[repair.line + 1]
    by_line = {repair.line: repair for repair in sample.repairs}
    assert by_line[25].before.endswith("我们比以往")
    assert by_line[25].after.startswith("任何时候都更加")
    assert by_line[57].before.endswith("基层工")
    assert by_line[57].after.startswith("会改革。")
    assert by_line[33].before.endswith("实现路径、")
    assert by_line[81].before.endswith("杭州六县(市、区)")
    assert by_line[81].after.startswith("签约疗休养")


def test_sample_rejoins_without_adding_or_losing_a_character(
    sample_text: str, sample: ImportReport
) -> None:
    lines = sample_text.split("\n")
    first, third, fourth = (sample.document.articles[i] for i in (0, 2, 3))
    assert first.paragraphs[1] == lines[24] + lines[26]
    assert third.paragraphs[1] == lines[56] + lines[58] + lines[60]
    assert fourth.paragraphs[3] == lines[80] + lines[82]
    assert fourth.paragraphs[4] == lines[86] + lines[88]


def test_sample_is_lossless(sample_text: str, sample: ImportReport) -> None:
    assert without_breaks(to_plaintext(sample.document)) == without_breaks(sample_text)


def test_sample_lunar_date_and_weekday_validate(sample: ImportReport) -> None:
    assert sample.warnings == []


def test_wrong_lunar_date_is_a_warning(sample_text: str) -> None:
    text = sample_text.replace("农历壬寅年十二月初五", "农历壬寅年十二月初六")
    report = parse_plaintext(text, source="hzgy-471.txt")
    assert report.document.masthead.lunar_date == "壬寅年十二月初六"
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("line 10: lunar date '壬寅年十二月初六' does not match")
    assert "壬寅年腊月初五" in report.warnings[0]


def test_wrong_weekday_is_a_warning(sample_text: str) -> None:
    report = parse_plaintext(sample_text.replace("星期二", "星期三"), source="hzgy-471.txt")
    assert report.warnings == [
        "line 10: weekday '星期三' does not match 2022-12-27, which is 星期二"
    ]


# --- a Windows export of the sample ---------------------------------------------------------


def normalised(text: str | None) -> str | None:
    """Full-width parentheses and spaces as ASCII, so two exports' texts compare."""
    if text is None:
        return None
    return text.replace("（", "(").replace("）", ")").replace("\u3000", " ")


def shape(report: ImportReport) -> object:
    doc = report.document
    return (
        (doc.title, doc.number, doc.date, doc.masthead.lunar_date, doc.masthead.slogan),
        [
            (
                a.kicker,
                a.headline,
                a.subtitle,
                a.byline,
                [(b.type, normalised(b.text)) for b in a.blocks],
            )
            for a in doc.articles
        ],
        [(r.line, normalised(r.before), normalised(r.after)) for r in report.repairs],
        report.warnings,
    )


def test_windows_export_imports_to_the_same_structure(sample: ImportReport) -> None:
    path = FIXTURES / "hzgy-471-windows.txt"
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw  # not normalised by git
    text = raw.decode("utf-8-sig")
    assert all(mark in text for mark in ("（王钰哲）", "\u3000", "出版：", "\u3000\u3000"))

    report = read_issue_file(path)

    assert shape(report) == shape(sample)
    assert len(report.repairs) == 8
    assert paragraph_count(report.document) == 21
    assert report.document.masthead.publisher == "杭州市总工会"


def test_parse_plaintext_itself_tolerates_bom_and_crlf(sample_text: str) -> None:
    crlf = "\ufeff" + sample_text.replace("\n", "\r\n")
    assert parse_plaintext(crlf).document == parse_plaintext(sample_text).document


# --- other issues of the same newsletter, written by hand -----------------------------------


def test_issue_485_two_articles_leap_month() -> None:
    report = read_issue_file(FIXTURES / "hzgy-485.txt")
    doc = report.document
    assert (doc.number, doc.date) == (485, date(2023, 4, 4))
    assert doc.masthead.lunar_date == "癸卯年闰二月十四"
    assert doc.masthead.submission is None  # this issue prints no submission line
    assert doc.masthead.editor == "林晓燕"
    assert report.warnings == []
    first, second = doc.articles
    assert (first.kicker, first.headline, first.subtitle, first.byline) == (
        "春风行动再出发",
        "全市工会为一线职工送上就业“大礼包”",
        None,
        "记者 陈思远",
    )
    assert first.paragraphs[2].endswith("心里踏实多了。”")
    assert (second.kicker, second.headline, second.subtitle, second.byline) == (
        None,
        "匠心铸精品 创新促发展",
        "市劳模工匠创新工作室联盟成立一周年",
        "市总工会宣教部",
    )
    assert [b.type for b in second.blocks] == [
        "paragraph",
        "heading",
        "paragraph",
        "heading",
        "paragraph",
        "paragraph",
    ]
    assert second.headings == ["搭建协作平台", "培育技能人才"]
    assert [(r.line, r.before[-5:], r.after[:5]) for r in report.repairs] == [
        (20, "现代物流、", "家政服务、"),  # right after "、"
        (24, "的技能培训", "课程,帮助"),
        (38, "2%提升至", "99.5%"),  # inside a figure
    ]
    assert second.paragraphs[1].endswith("产品合格率由92%提升至99.5%。")


def test_issue_491_six_articles() -> None:
    report = read_issue_file(FIXTURES / "hzgy-491.txt")
    doc = report.document
    assert (doc.number, doc.date, doc.masthead.lunar_date) == (
        491,
        date(2023, 5, 16),
        "癸卯年三月廿七",
    )
    assert report.warnings == []
    assert [(a.kicker, a.headline, a.subtitle) for a in doc.articles] == [
        (None, "市总工会部署开展2023年“安康杯”竞赛活动", None),
        ("聚焦新就业形态劳动者", "全市首个外卖骑手工会联合会在滨江成立", None),
        (None, "我市举办职工心理健康公益讲座", None),
        (None, "建功新时代 奋进新征程", "我市产业工人队伍建设改革取得新进展"),
        (None, "天热了,这份高温权益保障提示请收好!", None),  # a headline may exclaim
        (None, "我市两名职工获评“浙江工匠”", None),
    ]
    assert [a.byline for a in doc.articles] == [
        "周立新",
        "滨江区总工会",
        "林静",
        "市总工会经济技术部",
        "权益保障部",
        "钱晨",
    ]
    assert [len(a.paragraphs) for a in doc.articles] == [2, 3, 2, 4, 2, 2]
    assert doc.articles[3].headings == [
        "思想引领更加有力",
        "技能提升渠道更加畅通",
        "权益保障更加坚实",
    ]
    assert [a.headings for i, a in enumerate(doc.articles) if i != 3] == [[]] * 5
    assert [r.line for r in report.repairs] == [19, 27, 53, 71]
    # A split whose second half carries the byline: joined, then the byline is taken off.
    assert doc.articles[0].paragraphs[1].endswith("生命安全和身体健康。")
    assert doc.articles[5].paragraphs[1].endswith("带出更多高技能人才。")
    # "(详见第三版)" after a full stop, with the article going on, is text, not a byline.
    assert doc.articles[2].paragraphs[0].endswith("进行了讲解。(详见第三版)")


@pytest.mark.parametrize("name", TEXT_FIXTURES)
def test_hand_written_issues_are_lossless(name: str) -> None:
    text = (FIXTURES / name).read_text(encoding="utf-8")
    doc = parse_plaintext(text).document
    assert without_breaks(to_plaintext(doc)) == without_breaks(text)


@pytest.mark.parametrize("name", ["hzgy-485.txt", "hzgy-491.txt", "hzgy-471-windows.txt"])
def test_plaintext_round_trip(name: str) -> None:
    doc = read_issue_file(FIXTURES / name).document
    again = parse_plaintext(to_plaintext(doc))
    assert again.document == doc
    assert again.repairs == []


def test_plaintext_round_trip_of_the_sample(sample: ImportReport) -> None:
    again = parse_plaintext(to_plaintext(sample.document))
    assert again.document == sample.document
    assert (again.repairs, again.warnings) == ([], [])


# --- Markdown and JSON ----------------------------------------------------------------------


def test_markdown_round_trip_of_the_sample(sample: ImportReport) -> None:
    report = parse_markdown(to_markdown(sample.document), source="hzgy-471.md")
    assert report.document == sample.document
    assert (report.format, report.warnings) == ("markdown", [])


@pytest.mark.parametrize("name", TEXT_FIXTURES)
def test_markdown_round_trip_of_hand_written_issues(name: str) -> None:
    doc = read_issue_file(FIXTURES / name).document
    assert parse_markdown(to_markdown(doc)).document == doc


def test_markdown_written_by_hand() -> None:
    report = read_issue_file(FIXTURES / "hzgy-492.md")
    doc = report.document
    assert (report.format, report.warnings) == ("markdown", [])
    assert (doc.title, doc.number, doc.date) == ("杭州工运", 492, date(2023, 5, 23))
    assert doc.masthead.postcode == "010017"  # read as text: the leading zero stays
    assert doc.masthead.hotline is None
    first, second = doc.articles
    assert (first.kicker, first.headline, first.byline) == (
        "书香润心",
        "职工书屋“悦读”季启动",
        "林静",
    )
    assert first.blocks == [
        Block("paragraph", "5月20日,全市职工书屋“悦读”季在市工人文化宫启动,活动将持续到10月底。"),
        Block(
            "paragraph", "The reading season also offers an English corner for international staff."
        ),
        Block("heading", "活动安排"),
        Block("paragraph", "各职工书屋将陆续推出读书分享会、“悦读”打卡等活动。"),
        Block("paragraph", "### 以上为预告"),
    ]
    assert (second.subtitle, second.byline, len(second.paragraphs)) == (
        "首站走进地铁建设工地",
        None,
        1,
    )


def test_markdown_escapes_paragraphs_that_look_like_markup() -> None:
    doc = IssueDocument(
        title="杭州工运",
        number=1,
        date=date(2023, 1, 3),
        articles=[
            Article(
                headline="标题",
                blocks=[
                    Block("paragraph", "Byline: 不是署名"),
                    Block("paragraph", "## 不是标题"),
                    Block("paragraph", "\\ 反斜杠开头"),
                ],
            )
        ],
    )
    assert parse_markdown(to_markdown(doc)).document == doc


def test_json_round_trip_of_the_sample(sample: ImportReport) -> None:
    doc = sample.document
    assert IssueDocument.from_json(doc.to_json()) == doc
    data = json.dumps(doc.to_json(), ensure_ascii=False).encode()
    report = read_issue(data, source="hzgy-471.json")
    assert (report.document, report.format, report.warnings) == (doc, "json", [])


def test_json_import_checks_the_lunar_date(sample: ImportReport) -> None:
    data = sample.document.to_json()
    data["masthead"]["lunar_date"] = "壬寅年十一月初五"
    report = read_issue(json.dumps(data).encode(), source="issue.json")
    assert len(report.warnings) == 1
    assert report.warnings[0].startswith("masthead: lunar date '壬寅年十一月初五' does not match")


# --- format detection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "fmt", "expected"),
    [
        ("hzgy-471.txt", "auto", "text"),
        ("hzgy-471.TXT", "auto", "text"),
        ("hzgy-471.json", "auto", "json"),
        ("hzgy-471.md", "auto", "markdown"),
        ("hzgy-471.markdown", "auto", "markdown"),
        ("upload", "auto", "by content"),
        ("hzgy-471.dat", "auto", "by content"),
        ("upload", "text", "text"),
        ("upload", "markdown", "markdown"),
        ("upload", "json", "json"),
    ],
)
def test_format_detection(sample: ImportReport, source: str, fmt: str, expected: str) -> None:
    doc = sample.document
    forms = {
        "text": to_plaintext(doc),
        "markdown": to_markdown(doc),
        "json": json.dumps(doc.to_json(), ensure_ascii=False, indent=2),
    }
    kinds = list(forms) if expected == "by content" else [expected]
    for kind in kinds:
        report = read_issue(forms[kind].encode(), source=source, format=fmt)
        assert (report.format, report.document) == (kind, doc)


def test_read_issue_file_names_errors_by_file_name(tmp_path: Path, sample_text: str) -> None:
    path = tmp_path / "issue-471.txt"
    path.write_text(sample_text.replace("(王钰哲)", "(王钰哲"), encoding="utf-8")
    with pytest.raises(ImportFailed, match=r"^issue-471\.txt, line 37: byline"):
        read_issue_file(str(path))


def test_repair_describes_where_to_look(sample: ImportReport) -> None:
    assert (
        sample.repairs[0].describe()
        == "line 25: joined “…求的开局之年,我们比以往” + “任何时候都更加需要和谐稳…”"
    )
