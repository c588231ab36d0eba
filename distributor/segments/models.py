"""The saved segments: a name and the expression that says who is in it."""

from __future__ import annotations

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from distributor.db import Base, CreatedAt, Id, UpdatedAt

SEGMENT_NAME_MAX = 100
DESCRIPTION_MAX = 500


class Segment(Base):
    """An audience by its facts (lists, tags, attributes, engagement…), evaluated when used."""

    __tablename__ = "segments"

    id: Mapped[Id]
    name: Mapped[str] = mapped_column(String(SEGMENT_NAME_MAX), unique=True)
    expression: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(String(DESCRIPTION_MAX), default="")
    created_at: Mapped[CreatedAt]
    updated_at: Mapped[UpdatedAt]

    def __repr__(self) -> str:
        return f"<Segment {self.id} {self.name!r}>"
