"""Every error a person may see. Each names the value, the place and, where it can, the fix.

The CLI catches :class:`DistributorError`, prints ``Error: <message>`` and exits with ``exit_code``.
The message is English, for the CLI, the API and the logs; an error a page shows also carries a
``code`` and its ``params``, which the web face words in the page's language (the catalog's
``err.<code>``, see distributor/locale).
"""

from __future__ import annotations


class DistributorError(Exception):
    """Base of all expected failures: bad input, bad configuration, a refused operation."""

    exit_code = 2

    def __init__(self, message: str, *, code: str | None = None, **params: object) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.params = params

    def format_message(self) -> str:
        return self.message


class Notice(str):
    """A warning in a report (an issue import's): its English text, which the CLI prints and the
    JSON keeps, with the code and values a page words it with, like an error's."""

    code: str
    params: dict[str, object]

    def __new__(cls, message: str, *, code: str, **params: object) -> Notice:
        notice = super().__new__(cls, message)
        notice.code = code
        notice.params = params
        return notice

    def __reduce__(self) -> tuple[object, ...]:
        """Pickled with its code and values (str's own way would call ``Notice(text)``)."""
        return (_notice, (str(self), self.code, self.params))

    def at(self, where: str) -> Notice:
        """This notice about a spot of the file ("line 25", "paragraph 12", "masthead")."""
        return Notice(f"{where}: {self}", code="issue.at", where=where, notice=self)


def _notice(message: str, code: str, params: dict[str, object]) -> Notice:
    return Notice(message, code=code, **params)


class ConfigurationError(DistributorError):
    """A setting is missing or has a value we cannot use."""


class ImportFailed(DistributorError):
    """An input file (issue, CSV) cannot be read at all; nothing was written."""


class AlreadyExists(DistributorError):
    """A thing of that name (or address, or number) is stored already."""


class DuplicateIssue(AlreadyExists):
    """Another version of this issue number is already stored."""


class IssueFormatError(ImportFailed):
    """An issue file is readable but does not have the shape of an issue."""

    def __init__(
        self,
        message: str,
        *,
        source: str = "",
        line: int | None = None,
        place: str | None = None,
        code: str | None = None,
        **params: object,
    ) -> None:
        """``place`` names the spot where lines are not the unit ("paragraph 12", "page 3, line
        7" in a .docx or PDF); otherwise it is "line ``line``". ``code`` and ``params`` are the
        problem's; a page words it after the file and the spot."""
        where = source
        spot = place or (
            Notice(f"line {line}", code="place.line", line=line) if line is not None else None
        )
        if spot is not None:
            where = f"{where}, {spot}" if where else spot
        super().__init__(f"{where}: {message}" if where else message)
        self.line = line
        if code is not None and (source or spot is not None):
            problem = Notice(message, code=code, **params)
            self.code = "issue.format_at" if spot is not None else "issue.format"
            self.params = {"file": source, "where": spot, "problem": problem}
        else:
            self.code, self.params = code, params


class NotFound(DistributorError):
    """The thing asked for (issue, send, subscriber, list) does not exist."""


class InvalidToken(DistributorError):
    """A signed link was tampered with, expired, or made for another purpose."""


class RenderError(DistributorError):
    """A template failed, or content cannot be rendered safely."""


class InvalidRecipient(RenderError):
    """One recipient's message cannot be built (their address); the rest of the send goes on."""


class EmptyAudience(DistributorError):
    """A send or schedule would reach nobody: refused unless staff ask for it anyway."""


class InvalidTransition(DistributorError):
    """A send or delivery was asked to move to a state it cannot reach from where it is."""


class DatabaseUnreachable(DistributorError):
    """The database server could not be reached, or refused the connection."""


class ConnectionLostBeforeData(Exception):
    """The SMTP connection broke before the message body was sent: nothing reached the server,
    so it is safe to try once more on a new connection. Internal to the SMTP channel."""


class CheckpointMoved(Exception):
    """Another planner advanced a send's planning checkpoint first: this batch is rolled back and
    planning carries on after it. Internal; never shown to a person."""


class MissingProgram(DistributorError):
    """A program a development server runs (redis-server, smtp-sink) is not installed."""


class InvalidAddress(DistributorError):
    """An email address we could not send to; the message says what to fix."""


class AddressTaken(AlreadyExists):
    """Another subscriber has that address already: one person, one address."""


class RowError(DistributorError):
    """The reason one row of a subscriber file cannot be imported; the import goes on."""


class InvalidName(DistributorError):
    """A list or tag name that could not be written in a CSV cell and read back."""


class UnknownList(NotFound):
    """No list has the name given; the CLI adds where to see the lists, or how to create one."""


class DuplicateList(AlreadyExists):
    """A list of that name exists already."""


class ConfirmationDeferred(DistributorError):
    """The mail server did not take a sign-up's confirmation message this time; try later."""


class InvalidCursor(DistributorError):
    """A page cursor the API did not give out, or gave out for another listing."""


class RequestRefused(DistributorError):
    """A web request that is refused as a whole: a stale form, too many attempts."""

    def __init__(
        self, message: str, *, status: int, code: str | None = None, **params: object
    ) -> None:
        super().__init__(message, code=code, **params)
        self.status = status


class WechatError(DistributorError):
    """WeChat refused a call, or did not answer. The message names the errcode, says what it
    means and what the staff can do; ``errcode`` is None when WeChat could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        errcode: int | None = None,
        api: str = "",
        code: str | None = None,
        **params: object,
    ) -> None:
        super().__init__(message, code=code, errcode=errcode, api=api, **params)
        self.errcode = errcode
        self.api = api


class WechatRateLimited(WechatError):
    """WeChat asked us to slow down (45009, 45011, 45066): try again after ``retry_after`` s."""

    def __init__(
        self,
        message: str,
        *,
        errcode: int,
        api: str,
        retry_after: float,
        code: str | None = None,
        **params: object,
    ) -> None:
        super().__init__(message, errcode=errcode, api=api, code=code, **params)
        self.retry_after = retry_after


class WechatQuotaExceeded(DistributorError):
    """A send would break the WeChat account's mass-send quota (once a day, or 4 a month)."""


class WechatUnavailable(WechatError):
    """WeChat could not be reached, did not answer in time, or was busy (errcode -1): try again.
    A call that timed out may have been carried out: only mass sends are safe to repeat."""


class InvalidWechatCallback(DistributorError):
    """A request claiming to come from WeChat has a wrong signature or an unsafe or bad body."""


class StaffAccountError(DistributorError):
    """A staff account cannot be created or changed as asked (a taken name, a short password)."""


class StaffAccountConflict(StaffAccountError):
    """The accounts as they stand refuse it: the name is taken, or it would leave no admin."""


class NotAuthenticated(RequestRefused):
    """No valid staff session or API token came with the request (or the login was wrong)."""

    def __init__(
        self,
        message: str = "sign in first: no valid session or API token",
        *,
        code: str = "staff.sign_in",
    ) -> None:
        super().__init__(message, status=401, code=code)


class NotPermitted(RequestRefused):
    """The staff member's role does not allow this (a viewer writing, an editor administering)."""

    def __init__(
        self,
        message: str = "your role does not allow this",
        *,
        code: str = "staff.not_permitted",
        **params: object,
    ) -> None:
        super().__init__(message, status=403, code=code, **params)


class BackupRefused(DistributorError):
    """A backup cannot be made or restored here (a newer schema, a running worker, a database
    that is not empty, a file that is not a backup)."""
