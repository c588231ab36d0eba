"""Issue 24 through the faces: `distributor issue import FILE.docx|FILE.pdf`, `POST
/api/v1/issues` and the dashboard's upload; a hostile file gets its one error and stores nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from distributor.cli import main
from distributor.db import transaction
from distributor.issues.models import Issue, IssueImage
from distributor.issues.store import load_issue
from distributor.staff.models import Role
from distributor.web.app import create_app
from distributor.web.security import MemoryRateLimiter
from tests.support.api import Api, api_client
from tests.support.audience import make_audience
from tests.support.office_files import OFFICE_FIXTURES, sample_document
from tests.support.sending import started_send
from tests.support.staff import add_staff, sign_in
from tests.support.web import BASE_URL, csrf_of, web_settings

HOSTILE = ["encrypted.pdf", "scanned.pdf", "damaged.docx", "zip-bomb.docx"]


def run(database_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url})


def stored(url: str) -> tuple[int, int]:
    with transaction(url) as session:
        return (
            session.scalar(select(func.count()).select_from(Issue)) or 0,
            session.scalar(select(func.count()).select_from(IssueImage)) or 0,
        )


def test_the_cli_imports_a_docx_with_its_photos_and_says_so_again(database_url: str) -> None:
    path = OFFICE_FIXTURES / "hzgy-471-photos.docx"
    result = run(database_url, "issue", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "Read hzgy-471-photos.docx as DOCX, 2 pictures." in result.output
    assert (
        "Recognised (docx): masthead 10 fields, 4 articles, 21 paragraphs, 3 section headings, "
        "2 pictures"
    ) in result.output
    assert stored(database_url) == (1, 2)
    with transaction(database_url) as session:
        doc = load_issue(session, 1)
    images = [b for b in doc.articles[0].blocks + doc.articles[1].blocks if b.type == "image"]
    assert [b.text for b in images] == ["交流会现场", "项目部职工书屋"]
    assert all(doc.images[str(b.image)].data.startswith(b"\xff\xd8") for b in images)
    again = run(database_url, "issue", "import", str(path))
    assert "(already imported; nothing changed)" in again.output
    shown = run(database_url, "issue", "show", "1")
    assert f"  [图 {images[0].image}] 交流会现场" in shown.output
    assert stored(database_url) == (1, 2)


def test_the_cli_imports_the_pdf(sqlite_url: str) -> None:
    result = run(sqlite_url, "issue", "import", str(OFFICE_FIXTURES / "hzgy-471-columns.pdf"))
    assert result.exit_code == 0, result.output
    assert "Read hzgy-471-columns.pdf as PDF, 0 pictures." in result.output
    with transaction(sqlite_url) as session:
        assert load_issue(session, 1) == sample_document()


@pytest.mark.parametrize("name", HOSTILE)
def test_the_cli_refuses_a_hostile_file_with_one_error_and_stores_nothing(
    sqlite_url: str, name: str
) -> None:
    result = run(sqlite_url, "issue", "import", str(OFFICE_FIXTURES / name))
    assert result.exit_code == 2
    [line] = result.output.splitlines()
    assert line.startswith(f"Error: {name}: ")
    assert stored(sqlite_url) == (0, 0)


@pytest.fixture
def api(sqlite_url: str) -> Iterator[Api]:
    with api_client(web_settings(sqlite_url)) as client:
        yield client


def test_the_api_imports_a_docx_and_refuses_a_hostile_file(api: Api) -> None:
    data = (OFFICE_FIXTURES / "hzgy-471-photos.docx").read_bytes()
    imported = api.client.post(
        "/api/v1/issues", files={"file": ("471.docx", data)}, headers=api.editor
    )
    assert imported.status_code == 201, imported.text
    assert imported.json()["format"] == "docx" and imported.json()["articles"] == 4
    shown = api.client.get("/api/v1/issues/1", headers=api.viewer).json()
    image = shown["articles"][0]["blocks"][0]
    assert image["type"] == "image" and image["text"] == "交流会现场" and image["image"]
    bomb = (OFFICE_FIXTURES / "zip-bomb.docx").read_bytes()
    refused = api.client.post(
        "/api/v1/issues", files={"file": ("bomb.docx", bomb)}, headers=api.editor
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["message"].startswith("bomb.docx: the .docx would unpack")
    assert stored(api.settings.database_url) == (1, 2)


def web_client(url: str) -> TestClient:
    app = create_app(web_settings(url), limiter=MemoryRateLimiter())
    return TestClient(app, base_url=BASE_URL, follow_redirects=False)


def test_the_dashboard_upload_takes_a_pdf_and_shows_a_hostile_files_error(
    sqlite_url: str,
) -> None:
    client = web_client(sqlite_url)
    add_staff(sqlite_url, "editor", Role.EDITOR)
    sign_in(client, "editor")
    csrf = csrf_of(client.get("/staff/issues?lang=en").text)
    pdf = (OFFICE_FIXTURES / "hzgy-471-columns.pdf").read_bytes()
    uploaded = client.post(
        "/staff/issues?lang=en",
        data={"csrf": csrf},
        files={"file": ("471.pdf", pdf, "application/pdf")},
    )
    assert uploaded.status_code == 200 and "Recognised" in uploaded.text
    encrypted = (OFFICE_FIXTURES / "encrypted.pdf").read_bytes()
    refused = client.post(
        "/staff/issues?lang=en",
        data={"csrf": csrf},
        files={"file": ("locked.pdf", encrypted, "application/pdf")},
    )
    assert refused.status_code == 400
    assert "ocked.pdf: the PDF is encrypted (it needs a password)" in refused.text
    assert stored(sqlite_url) == (1, 0)


def test_the_archive_page_shows_the_photos_of_a_sent_issue(sqlite_url: str) -> None:
    client = web_client(sqlite_url)
    run(sqlite_url, "issue", "import", str(OFFICE_FIXTURES / "hzgy-471-photos.docx"))
    with transaction(sqlite_url) as session:
        doc = load_issue(session, 1)
    name = next(iter(doc.images))
    assert client.get(f"/archive/471/images/{name}").status_code == 404  # not sent yet
    make_audience(sqlite_url, "members", 1)
    started_send(sqlite_url, 1, "members")
    page = client.get("/archive/471").text
    sources = re.findall(r'<img[^>]* src="([^"]+)"', page)
    assert sorted(sources) == sorted(f"/archive/471/images/{n}" for n in doc.images)
    picture = client.get(sources[0])
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/jpeg"
    assert picture.content in [image.data for image in doc.images.values()]
    assert "immutable" in picture.headers["cache-control"]
    assert client.get("/archive/471/images/nothing.jpg").status_code == 404
