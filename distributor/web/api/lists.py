"""``/api/v1/lists``: create lists, see them with their counts, open one to sign-ups."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.web.api.access import Editor, Viewer, audit
from distributor.web.api.errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from distributor.web.api.models import ListEdit, ListIn, ListOut, ListsOut
from distributor.web.pages import WebDep
from subscribers.models import List
from subscribers.signup import set_list_public
from subscribers.store import create_list, list_summaries

router = APIRouter(prefix="/api/v1/lists", tags=["lists"], responses=COMMON_ERRORS)


def _lists(session: Session, name: str | None = None) -> list[ListOut]:
    summaries = list_summaries(session, name)
    public = set(session.scalars(select(List.name).where(List.public)))
    return [
        ListOut(
            name=s.name,
            description=s.description,
            public=s.name in public,
            created_at=s.created_at,
            active=s.active,
            pending=s.pending,
            unsubscribed=s.unsubscribed,
        )
        for s in summaries
    ]


@router.get("", response_model=ListsOut, summary="Lists with their counts")
def list_all(web: WebDep, user: Viewer) -> ListsOut:
    with web.transaction() as session:
        return ListsOut(items=_lists(session))


@router.post("", status_code=201, response_model=ListOut, responses=CONFLICT, summary="Create")
def create(body: ListIn, web: WebDep, user: Editor) -> ListOut:
    """`public`: anyone may sign up for it on its web page."""
    with web.transaction() as session:
        created = create_list(session, body.name, body.description)
        if body.public:
            set_list_public(session, created.name, True)
        audit(session, user, "list.create", "list", created.name, body.model_dump())
        (out,) = _lists(session, created.name)
        return out


@router.patch("/{name}", response_model=ListOut, responses=NOT_FOUND, summary="Open or close")
def edit(name: str, body: ListEdit, web: WebDep, user: Editor) -> ListOut:
    """Open the list to sign-ups on its web page (and to its members' preferences), or close it."""
    with web.transaction() as session:
        set_list_public(session, name, body.public)
        audit(session, user, "list.public", "list", name, body.model_dump())
        (out,) = _lists(session, name)
        return out
