"""The CLI's own words around a service's message: which flag or command helps.

Services never name flags or commands (the web shows the same messages); a command that knows
which of its options a failure is about says so here.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from distributor.errors import DistributorError

ISSUE_HINT = "{message} (see: distributor issue list)"


@contextmanager
def hinted(error_type: type[DistributorError], template: str) -> Iterator[None]:
    """Re-raise ``error_type`` with its message put into ``template`` (``{message}``).

    The error itself is re-raised, so its class and its own fields (a retry delay, an errcode)
    survive; only the words change.
    """
    try:
        yield
    except error_type as error:
        error.message = template.format(message=error.message)
        error.args = (error.message,)
        raise
