"""Readers who sign up and confirm, as the web's confirm button does it (one transaction each)."""

from __future__ import annotations

from collections.abc import Sequence

from distributor.automations.joins import confirm_and_join
from distributor.db import transaction
from subscribers.models import List
from subscribers.store import request_subscription
from subscribers.tokens import TokenPurpose, TokenSigner
from tests.support.sending import SECRET


def signed_up(url: str, list_name: str, emails: Sequence[str]) -> list[int]:
    """Pending sign-ups for ``list_name`` (made if missing); their subscriber ids."""
    with transaction(url) as session:
        if session.query(List).filter_by(name=list_name).one_or_none() is None:
            session.add(List(name=list_name))
            session.flush()
        return [
            request_subscription(session, email, lists=[list_name], source="test").id
            for email in emails
        ]


def confirm(url: str, subscriber_id: int) -> None:
    """Follow the confirm link of ``subscriber_id`` (what ``POST /confirm/{token}`` does)."""
    token = TokenSigner(SECRET).sign(TokenPurpose.CONFIRM, str(subscriber_id))
    with transaction(url) as session:
        confirm_and_join(session, TokenSigner(SECRET), token)
