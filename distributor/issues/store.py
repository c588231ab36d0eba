"""Saving and loading issues: the only code that turns an IssueDocument into rows and back."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date
from typing import cast

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from distributor.errors import DuplicateIssue, NotFound
from distributor.issues.document import (
    Article,
    Block,
    BlockType,
    IssueDocument,
    IssueImage,
    Masthead,
)
from distributor.issues.models import Article as ArticleRow
from distributor.issues.models import ArticleBlock, BlockKind, Issue, Newsletter, SourceFormat
from distributor.issues.models import IssueImage as ImageRow


@dataclass(frozen=True)
class SavedIssue:
    id: int
    created: bool  # False when the very same issue was already imported


@dataclass(frozen=True)
class IssueSummary:
    id: int
    title: str
    number: int
    date: date
    articles: int

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "title": self.title,
            "number": self.number,
            "date": self.date.isoformat(),
        }


def save_issue(session: Session, doc: IssueDocument, *, source_format: str) -> SavedIssue:
    """Store ``doc``; importing the same issue twice is harmless, a different one is refused."""
    newsletter = session.scalar(select(Newsletter).where(Newsletter.title == doc.title))
    if newsletter is None:
        newsletter = Newsletter(title=doc.title)
        session.add(newsletter)
        session.flush()
    existing_id = session.scalar(
        select(Issue.id).where(Issue.newsletter_id == newsletter.id, Issue.number == doc.number)
    )
    if existing_id is not None:
        if load_issue(session, existing_id) == doc:
            return SavedIssue(existing_id, created=False)
        raise DuplicateIssue(
            f"issue {doc.number} of {doc.title} is already imported as ID {existing_id} "
            "with different content; fix the issue number or remove the old one first",
            code="issue.duplicate",
            number=doc.number,
            title=doc.title,
            id=existing_id,
        )
    issue = Issue(
        newsletter=newsletter,
        number=doc.number,
        issue_date=doc.date,
        masthead=asdict(doc.masthead),
        source_format=SourceFormat(source_format),
        articles=[
            ArticleRow(
                position=position,
                kicker=article.kicker,
                headline=article.headline,
                subtitle=article.subtitle,
                byline=article.byline,
                blocks=[
                    ArticleBlock(
                        position=index,
                        type=BlockKind(block.type),
                        text=block.text,
                        image=block.image,
                    )
                    for index, block in enumerate(article.blocks)
                ],
            )
            for position, article in enumerate(doc.articles)
        ],
        images=[
            ImageRow(
                name=image.name,
                content_type=image.content_type,
                size=len(image.data),
                data=image.data,
            )
            for image in doc.images.values()
        ],
    )
    session.add(issue)
    session.flush()
    return SavedIssue(issue.id, created=True)


def load_issue(session: Session, issue_id: int) -> IssueDocument:
    issue = session.scalar(
        select(Issue)
        .where(Issue.id == issue_id)
        .options(
            selectinload(Issue.newsletter),
            selectinload(Issue.articles).selectinload(ArticleRow.blocks),
            selectinload(Issue.images),
        )
    )
    if issue is None:
        raise NotFound(
            f"there is no issue with ID {issue_id}", code="issue.missing", issue=issue_id
        )
    return IssueDocument(
        title=issue.newsletter.title,
        number=issue.number,
        date=issue.issue_date,
        masthead=Masthead(**issue.masthead),
        articles=[
            Article(
                headline=row.headline,
                kicker=row.kicker,
                subtitle=row.subtitle,
                byline=row.byline,
                blocks=[Block(cast(BlockType, b.type), b.text, b.image) for b in row.blocks],
            )
            for row in issue.articles
        ],
        images={
            row.name: IssueImage(row.name, row.content_type, row.data) for row in issue.images
        },
    )


def list_issues(session: Session) -> list[IssueSummary]:
    """Every issue, oldest first (by date, then number)."""

    article_count = (
        select(func.count(ArticleRow.id)).where(ArticleRow.issue_id == Issue.id).scalar_subquery()
    )
    rows = session.execute(
        select(Issue.id, Newsletter.title, Issue.number, Issue.issue_date, article_count)
        .join(Newsletter)
        .order_by(Issue.issue_date, Issue.number, Issue.id)
    )
    return [IssueSummary(*row) for row in rows]
