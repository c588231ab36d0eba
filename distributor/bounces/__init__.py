"""The feedback loop's pure middle: bounces and complaints read, classified and matched.

An SMTP 250 only means the relay took a message; most failures come back later, by mail, to the
envelope sender. :func:`classify` reads one such message (bytes in, :class:`Feedback` out),
:func:`match` traces it to a delivery through what we signed (the VERP return path from
:class:`Verp`, or our Message-ID). Intake (IMAP, HTTP) and the effects on deliveries and
subscribers sit outside and call these two.
"""

from distributor.bounces.classify import classify as classify
from distributor.bounces.feedback import Feedback as Feedback
from distributor.bounces.feedback import FeedbackKind as FeedbackKind
from distributor.bounces.match import MatchedFeedback as MatchedFeedback
from distributor.bounces.match import Unmatched as Unmatched
from distributor.bounces.match import match as match
from distributor.bounces.message import MAX_MESSAGE_BYTES as MAX_MESSAGE_BYTES
from distributor.bounces.verp import Verp as Verp

__all__ = [
    "MAX_MESSAGE_BYTES",
    "Feedback",
    "FeedbackKind",
    "MatchedFeedback",
    "Unmatched",
    "Verp",
    "classify",
    "match",
]
