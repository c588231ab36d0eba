"""Turning a claimed delivery into the bytes on the wire: compile once per send × variant (in this
process), personalise per recipient."""

from __future__ import annotations

from collections import OrderedDict

from sqlalchemy.orm import Session, sessionmaker

from distributor.channels.base import Envelope
from distributor.config import Settings
from distributor.issues.store import load_issue
from distributor.render.compile import CompiledMessage, Variant, compile_digest, compile_issue
from distributor.render.dkim import DkimSigner
from distributor.render.personalise import Recipient, personalise
from distributor.sending.claim import ClaimedDelivery
from distributor.sending.service import get_send
from subscribers.links import PublicLinks
from subscribers.tokens import TokenSigner

CACHE_SIZE = 16  # compiled issue × variant kept per process; a few sends run at once


class EmailComposer:
    def __init__(self, settings: Settings, factory: sessionmaker[Session]) -> None:
        self.settings = settings
        self.factory = factory
        signer = TokenSigner(settings.require_secret_key())
        self.links = PublicLinks(settings.public_base_url, signer)
        self.signer = DkimSigner.from_settings(settings)
        self._compiled: OrderedDict[tuple[int, str], CompiledMessage] = OrderedDict()

    def compiled(self, send_id: int, variant: str) -> CompiledMessage:
        key = (send_id, variant)
        compiled = self._compiled.get(key)
        if compiled is None:
            with self.factory() as session:
                send = get_send(session, send_id)
                docs = [load_issue(session, issue_id) for issue_id in send.issue_ids or ()]
                doc = load_issue(session, send.issue_id)
            if docs:  # a digest of several issues (a recurring rule's window)
                compiled = compile_digest(docs, self.settings)
            else:
                compiled = compile_issue(doc, Variant(variant), self.settings)
            self._compiled[key] = compiled
            if len(self._compiled) > CACHE_SIZE:
                self._compiled.popitem(last=False)
        return compiled

    def compose(self, send_id: int, delivery: ClaimedDelivery) -> Envelope:
        message = personalise(
            self.compiled(send_id, delivery.variant),
            Recipient(delivery.subscriber_id or 0, delivery.address, delivery.name),
            send_id=send_id,
            links=self.links,
            signer=self.signer,
        )
        return Envelope(message.envelope_from, message.recipient, message.data)
