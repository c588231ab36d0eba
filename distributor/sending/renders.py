"""A send's messages, rendered once when it starts and before its first message goes.

Every variant the audience needs is compiled (and its DKIM alignment checked) up front, as a careful
peer does (listmonk compiles a campaign's template before the campaign starts): a template or
content error then pauses the send with its reason instead of failing recipients one by one, and
personalisation is the only work left per recipient. The renders are stored, so every worker on
every machine personalises the same bytes.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from distributor.config import Settings
from distributor.db import insert_ignoring_duplicates
from distributor.errors import NotFound
from distributor.issues.store import load_issue
from distributor.render.dkim import DkimSigner
from distributor.render.email import CompiledMessage, compile_digest, compile_issue
from distributor.render.personalise import check_alignment
from distributor.sending.models import ARM_B, Send, SendRender
from distributor.sending.planner import planned_readers
from distributor.vocabulary import EMAIL_VARIANTS, Variant
from subscribers.models import Subscriber


def needed_variants(session: Session, send: Send) -> list[Variant]:
    """The variant of the send, or for a send by preference those its audience chose."""
    if send.variant is not None:
        return [send.variant]
    readers = planned_readers(send)  # by email, WeChat readers included: never one too few
    first = select(Subscriber.id).where(*readers).limit(1)
    return [
        variant
        for variant in EMAIL_VARIANTS
        if session.scalar(first.where(Subscriber.format == variant)) is not None
    ]


def render_variant(
    session: Session, send: Send, variant: Variant, settings: Settings, subject: str = ""
) -> CompiledMessage:
    """Compile one variant of ``send``; RenderError (or ConfigurationError) says why not.
    ``subject`` "b": with an A/B test's other subject (:mod:`distributor.sending.ab`)."""
    if send.issue_ids:  # a digest of several issues (a recurring rule's window)
        docs = [load_issue(session, i) for i in send.issue_ids]
        compiled = compile_digest(
            docs, settings, tracking=send.tracking, commercial=send.commercial
        )
    else:
        doc = load_issue(session, send.issue_id)
        compiled = compile_issue(
            doc,
            variant,
            settings,
            test=send.is_test,
            tracking=send.tracking,
            commercial=send.commercial,
            subject=send.ab_subject_b if subject == ARM_B else None,
        )
    check_alignment(compiled, DkimSigner.from_settings(settings))
    return compiled


def render_send(session: Session, send_id: int, settings: Settings) -> list[Variant]:
    """Render and store every variant ``send_id`` needs that is not stored yet; returns the
    variants now stored. Raises before storing anything of a variant that fails."""
    send = session.get(Send, send_id)
    if send is None:
        return []
    stored = session.execute(
        select(SendRender.variant, SendRender.subject).where(SendRender.send_id == send_id)
    )
    done = {(variant, subject) for variant, subject in stored}
    subjects = ["", ARM_B] if send.ab_subject_b is not None else [""]
    for variant in needed_variants(session, send):
        for subject in subjects:
            if (variant, subject) not in done:
                compiled = render_variant(session, send, variant, settings, subject)
                store_render(session, send_id, compiled, subject)
                done.add((variant, subject))
    return sorted({variant for variant, _ in done})


def store_render(
    session: Session, send_id: int, compiled: CompiledMessage, subject: str = ""
) -> None:
    """Keep ``compiled`` for ``send_id``; a render stored meanwhile by another worker wins."""
    insert_ignoring_duplicates(
        session,
        SendRender,
        [
            {
                "send_id": send_id,
                "variant": compiled.variant,
                "subject": subject,
                "compiled": compiled.to_json(),
            }
        ],
    )


def load_render(
    session: Session, send_id: int, variant: Variant, settings: Settings, subject: str = ""
) -> CompiledMessage:
    """The stored render, rendered and stored now if missing (a reader's format changed between
    the send's start and its planning, or the send began before renders were stored)."""
    stored = session.scalar(
        select(SendRender.compiled).where(
            SendRender.send_id == send_id,
            SendRender.variant == variant,
            SendRender.subject == subject,
        )
    )
    if stored is not None:
        return CompiledMessage.from_json(stored)
    send = session.get(Send, send_id)
    if send is None:
        raise NotFound(f"there is no send with ID {send_id}", code="send.missing", send=send_id)
    compiled = render_variant(session, send, variant, settings, subject)
    store_render(session, send_id, compiled, subject)
    return compiled
