"""Tables for newsletters and their issues: an issue owns its articles and pictures, an article
its blocks (an image block names one of its issue's pictures)."""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from distributor.db import Base, BigId, CreatedAt, Id


class SourceFormat(StrEnum):
    """What an issue was imported from."""

    TEXT = "text"  # the plain-text export of the print layout
    MARKDOWN = "markdown"  # Markdown with YAML front matter
    JSON = "json"  # the JSON form of ``issue show --json``
    DOCX = "docx"  # a Word or WPS document
    PDF = "pdf"  # a text PDF, as made for the printer


class BlockKind(StrEnum):
    """What a block of an article's body is."""

    PARAGRAPH = "paragraph"
    HEADING = "heading"
    IMAGE = "image"  # its text is the caption; ``image`` names the picture


class Newsletter(Base):
    """A publication (杭州工运); its issues are numbered within it."""

    __tablename__ = "newsletters"

    id: Mapped[Id]
    title: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[CreatedAt]

    issues: Mapped[list[Issue]] = relationship(back_populates="newsletter")

    def __repr__(self) -> str:
        return f"<Newsletter {self.id} {self.title!r}>"


class Issue(Base):
    __tablename__ = "issues"
    __table_args__ = (UniqueConstraint("newsletter_id", "number"),)

    id: Mapped[Id]
    newsletter_id: Mapped[int] = mapped_column(BigId, ForeignKey("newsletters.id"))
    number: Mapped[int]
    issue_date: Mapped[date]
    masthead: Mapped[dict[str, Any]] = mapped_column(JSON)
    source_format: Mapped[SourceFormat]
    imported_at: Mapped[CreatedAt]

    newsletter: Mapped[Newsletter] = relationship(back_populates="issues")
    articles: Mapped[list[Article]] = relationship(
        back_populates="issue", order_by="Article.position", cascade="all, delete-orphan"
    )
    images: Mapped[list[IssueImage]] = relationship(
        back_populates="issue", order_by="IssueImage.id", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Issue {self.id} no.{self.number} {self.issue_date}>"


class Article(Base):
    __tablename__ = "articles"
    __table_args__ = (UniqueConstraint("issue_id", "position"),)

    id: Mapped[Id]
    issue_id: Mapped[int] = mapped_column(BigId, ForeignKey("issues.id", ondelete="CASCADE"))
    position: Mapped[int]
    kicker: Mapped[str | None] = mapped_column(Text)
    headline: Mapped[str] = mapped_column(Text)
    subtitle: Mapped[str | None] = mapped_column(Text)
    byline: Mapped[str | None] = mapped_column(Text)

    issue: Mapped[Issue] = relationship(back_populates="articles")
    blocks: Mapped[list[ArticleBlock]] = relationship(
        back_populates="article", order_by="ArticleBlock.position", cascade="all, delete-orphan"
    )

    def __repr__(self) -> str:
        return f"<Article {self.id} {self.headline[:20]!r}>"


class ArticleBlock(Base):
    """One paragraph or section heading of an article's body, in reading order."""

    __tablename__ = "article_blocks"
    __table_args__ = (UniqueConstraint("article_id", "position"),)

    id: Mapped[Id]
    article_id: Mapped[int] = mapped_column(BigId, ForeignKey("articles.id", ondelete="CASCADE"))
    position: Mapped[int]
    type: Mapped[BlockKind]
    text: Mapped[str] = mapped_column(Text)
    image: Mapped[str | None] = mapped_column(String(40))  # an IssueImage.name of the issue

    article: Mapped[Article] = relationship(back_populates="blocks")

    def __repr__(self) -> str:
        return f"<ArticleBlock {self.id} {self.type}>"


class IssueImage(Base):
    """A picture kept with its issue (from a .docx): JPEG or PNG, its type sniffed from the
    bytes, each within the bounds of :mod:`distributor.issues.images`."""

    __tablename__ = "issue_images"
    __table_args__ = (UniqueConstraint("issue_id", "name"),)

    id: Mapped[Id]
    issue_id: Mapped[int] = mapped_column(BigId, ForeignKey("issues.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(40))  # digest and extension: "3f9a….jpg"
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int]
    data: Mapped[bytes] = mapped_column(LargeBinary)

    issue: Mapped[Issue] = relationship(back_populates="images")

    def __repr__(self) -> str:
        return f"<IssueImage {self.id} {self.name} {self.size} bytes>"
