"""``match(feedback, verp) -> MatchedFeedback | Unmatched``: which delivery a report is about,
decided only by what we signed, and only by what an outsider cannot have: the VERP return path
the report came back to (signed, per delivery, and seen only by the servers that handled that
message). Our Message-ID is not enough on its own: every reply and forward quotes it
(``In-Reply-To``, ``References``), so anyone the reader wrote to could send a "bounce" or an
"abuse report" quoting it. A report without the return path is kept for a person, never acted
on; never matched by its recipient address either (anyone can write any address).
"""

from __future__ import annotations

from dataclasses import dataclass

from distributor.bounces.feedback import Feedback
from distributor.errors import InvalidToken
from distributor.render.message_ids import parse_message_id
from distributor.render.verp import Verp


@dataclass(frozen=True)
class MatchedFeedback:
    """A report traced to one delivery by the signed return path it came back to."""

    feedback: Feedback
    delivery_id: int

    @property
    def matched_by(self) -> str:
        return "verp"


@dataclass(frozen=True)
class Unmatched:
    """A report that names no delivery of ours we can trust, and why: for a person to look at."""

    feedback: Feedback
    reason: str


def match(
    feedback: Feedback, verp: Verp, *, now: float | None = None
) -> MatchedFeedback | Unmatched:
    """Trace an actionable report (hard or soft bounce, complaint) to its delivery.

    A return path that is present but not genuine (forged, altered, too old, another domain)
    refuses the report outright rather than falling back to the Message-ID: our own bounces
    always come back to a genuine one, so a bad one means someone is trying something.
    """
    if not feedback.actionable:
        return Unmatched(feedback, f"{feedback.kind.value}: nothing to act on ({feedback.reason})")
    if feedback.verp_address is not None:
        try:
            return MatchedFeedback(
                feedback, delivery_id=verp.parse_verp(feedback.verp_address, now=now)
            )
        except InvalidToken as error:
            return Unmatched(feedback, error.message)
    if feedback.original_message_id is not None:
        message = parse_message_id(verp.signer.secret, feedback.original_message_id)
        if message is None:
            return Unmatched(
                feedback, "the Message-ID it quotes is not one of ours (or was altered)"
            )
        return Unmatched(
            feedback,
            f"it quotes our Message-ID (send {message.send_id}, subscriber "
            f"{message.subscriber_id}) but did not come to that delivery's signed return path: "
            "anyone who got a reply or a forward has the Message-ID, so it is not acted on",
        )
    return Unmatched(feedback, "it names no return path or Message-ID of ours")
