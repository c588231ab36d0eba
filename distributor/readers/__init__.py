"""What readers do themselves, and what they are shown: unsubscribes through a message's link
(counted against its send) or by mail to its List-Unsubscribe mailto (:mod:`.mailto`, read by
the bounce mailbox poll), the double opt-in confirmation message, opens and clicks of tracked
sends (buffered, written in batches), and the public archive of issues that went out.

Owns the tables of those events (:mod:`distributor.readers.models`). Built on the subscriber
store (a reader's state is changed there, by the store's own functions), the issues, render and
the sending engine's sends; no engine imports it, only ``campaigns`` (to count) and the faces.
"""
