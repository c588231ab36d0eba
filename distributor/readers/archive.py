"""The public archive: every issue that went out, for the web pages and each message's
"view in browser" link (``/archive/<number>``). An issue nobody was sent stays unpublished."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from distributor.errors import NotFound
from distributor.issues.document import IssueDocument
from distributor.issues.models import Article, Issue, Newsletter
from distributor.issues.store import load_issue
from distributor.sending.models import Send

PAGE_SIZE = 20


@dataclass(frozen=True)
class ArchiveEntry:
    number: int
    title: str
    date: date
    headline: str


@dataclass(frozen=True)
class ArchivePage:
    entries: tuple[ArchiveEntry, ...]
    page: int  # from 1
    pages: int  # at least 1, even when nothing was sent yet


def sent_issue_ids(session: Session) -> set[int]:
    """Issues of every send that started, alone or in a digest; staff test sends do not count."""
    ids: set[int] = set()
    for issue_id, issue_ids in session.execute(
        select(Send.issue_id, Send.issue_ids).where(
            Send.started_at.is_not(None), Send.is_test.is_(False)
        )
    ):
        ids.add(issue_id)
        ids.update(issue_ids or ())
    return ids


def archive_page(session: Session, page: int, page_size: int = PAGE_SIZE) -> ArchivePage:
    """One page of the sent issues, newest first."""
    ids = sent_issue_ids(session)
    pages = max(1, -(-len(ids) // page_size))
    if not 1 <= page <= pages:
        raise NotFound(
            f"the archive has {pages} pages, not {page}",
            code="archive.page",
            pages=pages,
            page=page,
        )
    lead = (
        select(Article.headline)
        .where(Article.issue_id == Issue.id, Article.position == 0)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Issue.number, Newsletter.title, Issue.issue_date, func.coalesce(lead, ""))
        .join(Newsletter)
        .where(Issue.id.in_(ids))
        .order_by(Issue.issue_date.desc(), Issue.number.desc(), Issue.id.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return ArchivePage(tuple(ArchiveEntry(*row) for row in rows), page, pages)


def archived_issue(session: Session, number: int) -> IssueDocument:
    """The sent issue printed with ``number`` (the newest, should two newsletters share it)."""
    issue_id = session.scalar(
        select(Issue.id)
        .where(Issue.number == number, Issue.id.in_(sent_issue_ids(session)))
        .order_by(Issue.issue_date.desc(), Issue.id.desc())
        .limit(1)
    )
    if issue_id is None:
        raise NotFound(
            f"issue {number} is not in the archive", code="archive.no_issue", number=number
        )
    return load_issue(session, issue_id)
