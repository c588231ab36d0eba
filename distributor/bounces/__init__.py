"""The feedback loop: bounces and complaints read, matched, and applied.

Reading is pure: an SMTP 250 only means the relay took a message; most failures come back later,
by mail, to the envelope sender. :func:`classify` reads one such message (bytes in,
:class:`Feedback` out), :func:`match` traces it to a delivery through what we signed (the VERP
return path of :class:`distributor.render.verp.Verp`, or our Message-ID).

Applying is the engine's side: :mod:`~distributor.bounces.apply` writes what a reading means for
the delivery, the reader and the send; :mod:`~distributor.bounces.mailbox` polls the bounce
mailbox over IMAP; :mod:`~distributor.bounces.models` keeps every message processed. They build
on the sending engine and the subscriber store; the reading modules import neither, and nothing
below the engines imports this package.

The package holds only the words (:class:`Feedback`, :class:`FeedbackKind`) and the size read of
a message: the reading is imported from :mod:`~distributor.bounces.classify` and
:mod:`~distributor.bounces.match`, and the parsing from :mod:`~distributor.bounces.message`, so
that counting a send's bounces (its status) loads neither.
"""

from distributor.bounces.feedback import Feedback as Feedback
from distributor.bounces.feedback import FeedbackKind as FeedbackKind

MAX_MESSAGE_BYTES = 256 * 1024  # what is parsed of a message; an intake may read no more

__all__ = ["MAX_MESSAGE_BYTES", "Feedback", "FeedbackKind"]
