"""``/api/v1/issues``: import an issue file, list and show issues, render a variant to look at."""

from __future__ import annotations

import email
import email.policy
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from distributor.issues.document import ImportReport
from distributor.issues.importer import FORMATS, MAX_UPLOAD_BYTES, read_issue
from distributor.issues.store import list_issues, load_issue, save_issue
from distributor.render.personalise import Recipient
from distributor.render.preview import PREVIEW_ADDRESS, PREVIEW_SUBSCRIBER_ID, message_bytes
from distributor.vocabulary import Variant
from distributor.web.api.access import Editor, Viewer, audit
from distributor.web.api.errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from distributor.web.api.models import (
    ArticleOut,
    BlockOut,
    ImportOut,
    IssueList,
    IssueOut,
    IssueSummaryOut,
    ItemId,
    RenderOut,
    RenderVariant,
)
from distributor.web.pages import WebDep

router = APIRouter(prefix="/api/v1/issues", tags=["issues"], responses=COMMON_ERRORS)
ImportFormat = Annotated[str, Form(pattern="^(" + "|".join(FORMATS) + ")$")]


def import_out(report: ImportReport, issue_id: int | None, created: bool) -> ImportOut:
    doc = report.document
    return ImportOut(
        id=issue_id,
        created=created,
        format=report.format,
        encoding=report.encoding,
        title=doc.title,
        number=doc.number,
        date=doc.date,
        articles=len(doc.articles),
        repairs=[repair.describe() for repair in report.repairs],
        warnings=list(report.warnings),
    )


@router.post(
    "",
    response_model=ImportOut,
    responses={**CONFLICT, 201: {"model": ImportOut, "description": "Imported."}},
    summary="Import",
)
async def import_issue(
    web: WebDep,
    user: Editor,
    response: Response,
    file: Annotated[
        UploadFile, File(description=".docx, text PDF, plain-text export, Markdown or JSON.")
    ],
    format: ImportFormat = "auto",
    dry_run: Annotated[bool, Form()] = False,
) -> ImportOut:
    """What the importer recognised, repaired and warns about (201 when stored; 200 for a dry
    run, or the very same issue imported again, which changes nothing); or its error, with the
    line (`error.line`) it is about."""
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    # A 20-page PDF takes a second or two to read: off the event loop, which serves the rest.
    source = file.filename or "upload"
    report = await run_in_threadpool(read_issue, data, source=source, format=format)
    if dry_run:
        return import_out(report, None, created=False)
    with web.transaction() as session:
        saved = save_issue(session, report.document, source_format=report.format)
        if saved.created:
            audit(
                session,
                user,
                "issue.import",
                "issue",
                saved.id,
                {"file": file.filename, "number": report.document.number},
            )
            response.status_code = 201
    return import_out(report, saved.id, saved.created)


@router.get("", response_model=IssueList, summary="Issues, oldest first")
def list_all(web: WebDep, user: Viewer) -> IssueList:
    """Every issue (a few a week: one page)."""
    with web.transaction() as session:
        issues = list_issues(session)
    return IssueList(
        items=[
            IssueSummaryOut(
                id=i.id, title=i.title, number=i.number, date=i.date, articles=i.articles
            )
            for i in issues
        ]
    )


@router.get("/{issue_id}", response_model=IssueOut, responses=NOT_FOUND, summary="Show")
def show(issue_id: ItemId, web: WebDep, user: Viewer) -> IssueOut:
    with web.transaction() as session:
        doc = load_issue(session, issue_id)
    return IssueOut(
        id=issue_id,
        title=doc.title,
        number=doc.number,
        date=doc.date,
        masthead=dict(vars(doc.masthead)),
        articles=[
            ArticleOut(
                headline=a.headline,
                kicker=a.kicker,
                subtitle=a.subtitle,
                byline=a.byline,
                blocks=[BlockOut(type=b.type, text=b.text, image=b.image) for b in a.blocks],
            )
            for a in doc.articles
        ],
    )


@router.get("/{issue_id}/render", response_model=RenderOut, responses=NOT_FOUND, summary="Render")
def render(
    issue_id: ItemId,
    web: WebDep,
    user: Viewer,
    variant: Annotated[RenderVariant, Query()] = RenderVariant.FULL,
) -> RenderOut:
    """Exactly what a reader gets in `variant`, for an anonymous preview reader (links that
    unsubscribe nobody): the email's HTML and text parts, or the WeChat article as JSON."""
    with web.transaction() as session:
        doc = load_issue(session, issue_id)
    reader = Recipient(PREVIEW_SUBSCRIBER_ID, PREVIEW_ADDRESS)
    data = message_bytes(doc, Variant(variant), web.settings, reader)
    if variant is RenderVariant.WECHAT:
        return RenderOut(variant=variant, subject=None, html=None, text=data.decode("utf-8"))
    message = email.message_from_bytes(data, policy=email.policy.default)
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    return RenderOut(
        variant=variant,
        subject=str(message["Subject"]),
        html=str(html.get_content()) if html is not None else None,
        text=str(text.get_content()) if text is not None else None,
    )
