"""``/staff/issues``: upload an issue file (the importer's report: what it recognised and
repaired, or the error with its line), the list, an issue's page with a preview of each
variant at phone and desktop widths, and a test send to staff addresses."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, UploadFile
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from distributor.db import utcnow
from distributor.errors import DistributorError
from distributor.issues.importer import MAX_UPLOAD_BYTES, read_issue
from distributor.issues.store import list_issues, load_issue, save_issue
from distributor.render.preview import PREVIEW_WIDTHS, variant_html
from distributor.runtime import WorkerRuntime
from distributor.sending.queries import list_deliveries
from distributor.sending.test_sends import create_test_send
from distributor.staff.audit import audit_of, record_audit
from distributor.staff.models import StaffUser
from distributor.vocabulary import EMAIL_VARIANTS, Variant
from distributor.web.pages import WebDep
from distributor.web.staff.common import STAFF_CSP, WriterDep, shown_error, staff_page
from distributor.web.staff_auth import StaffDep

router = APIRouter(include_in_schema=False)

ISSUES = "/staff/issues"
TEST_ADDRESSES_MAX = 20
# The preview page's iframes hold emails, whose styles are inline: their srcdoc documents
# inherit this page's policy, so it allows inline styles (sandbox="" still forbids scripts).
PREVIEW_CSP = STAFF_CSP.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'").replace(
    "img-src 'self' data:", "img-src 'self' data: https:"
)


@router.get(ISSUES)
def issues_page(request: Request, web: WebDep, user: StaffDep) -> HTMLResponse:
    with web.transaction() as session:
        issues = list(reversed(list_issues(session)))
    return staff_page(request, "issues.html", user, issues=issues, report=None)


@router.post(ISSUES)
async def upload_issue(
    request: Request, web: WebDep, user: WriterDep, file: UploadFile
) -> Response:
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    source = file.filename or "upload"
    try:
        report = await run_in_threadpool(read_issue, data, source=source)  # off the event loop
        with web.transaction() as session:
            saved = save_issue(session, report.document, source_format=report.format)
            record_audit(
                session,
                user,
                "issue.import",
                "issue",
                saved.id,
                {"file": source, "new": saved.created, "repairs": len(report.repairs)},
            )
            issues = list(reversed(list_issues(session)))
    except DistributorError as error:
        with web.transaction() as session:
            issues = list(reversed(list_issues(session)))
        return staff_page(
            request,
            "issues.html",
            user,
            status=400,
            issues=issues,
            report=None,
            error=shown_error(request, error),
        )
    return staff_page(request, "issues.html", user, issues=issues, report=report, saved=saved)


def _issue_page(
    request: Request,
    issue_id: int,
    web: WebDep,
    user: StaffUser,
    *,
    status: int = 200,
    results: list[object] | None = None,
    error: str | None = None,
) -> HTMLResponse:
    with web.transaction() as session:
        doc = load_issue(session, issue_id)
        audit = audit_of(session, "issue", issue_id)
    previews = [
        (variant.value, variant_html(doc, variant, web.settings)) for variant in EMAIL_VARIANTS
    ]
    response = staff_page(
        request,
        "issue.html",
        user,
        status=status,
        issue_id=issue_id,
        doc=doc,
        previews=previews,
        widths=PREVIEW_WIDTHS,
        audit=audit,
        results=results,
        error=error,
        variants=[variant.value for variant in EMAIL_VARIANTS],
    )
    response.headers["Content-Security-Policy"] = PREVIEW_CSP
    return response


@router.get(ISSUES + "/{issue_id}")
def issue_page(request: Request, issue_id: int, web: WebDep, user: StaffDep) -> HTMLResponse:
    return _issue_page(request, issue_id, web, user)


@router.post(ISSUES + "/{issue_id}/test")
def test_send(
    request: Request,
    issue_id: int,
    web: WebDep,
    user: WriterDep,
    addresses: Annotated[str, Form(max_length=5000)] = "",
    variant: Annotated[str, Form()] = Variant.FULL.value,
) -> Response:
    """Send now from this process and show each server's answer, as ``send test`` does."""
    wanted = [a.strip() for a in addresses.replace(",", "\n").splitlines() if a.strip()]
    try:
        if not wanted or len(wanted) > TEST_ADDRESSES_MAX:
            raise DistributorError(
                f"give between 1 and {TEST_ADDRESSES_MAX} addresses",
                code="test.addresses",
                most=TEST_ADDRESSES_MAX,
            )
        with web.transaction() as session:
            send = create_test_send(
                session,
                issue_id=issue_id,
                addresses=wanted,
                variant=Variant(variant),
                settings=web.settings,
                now=utcnow(),
            )
            send_id = send.id
            record_audit(
                session,
                user,
                "issue.test_send",
                "issue",
                issue_id,
                {"send": send_id, "to": wanted, "variant": variant},
            )
        runtime = WorkerRuntime.from_settings(web.settings)
        try:
            runtime.send_test(send_id)
        finally:
            runtime.close()
        with web.transaction() as session:
            results: list[object] = list(list_deliveries(session, send_id))
    except (DistributorError, ValueError) as error:
        return _issue_page(
            request, issue_id, web, user, status=400, error=shown_error(request, error)
        )
    return _issue_page(request, issue_id, web, user, results=results)
