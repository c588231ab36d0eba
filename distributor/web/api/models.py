"""The API's request and response bodies: what ``/api/openapi.json`` documents."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool

from distributor.issues.document import BlockType
from distributor.segments.models import SEGMENT_NAME_MAX
from distributor.sending.ab import (
    MAX_SHARE,
    MAX_WAIT,
    MIN_SHARE,
    SUBJECT_MAX,
    SUBJECT_PATTERN,
    WinnerBy,
)
from distributor.sending.windows import WINDOW_PATTERN
from distributor.staff.models import STAFF_NAME_MAX, Role
from distributor.staff.passwords import PASSWORD_MAX, PASSWORD_MIN
from distributor.vocabulary import DeliveryState, FailureCause, SendState
from distributor.zones import zone_names
from subscribers.address import ADDRESS_PATTERN, DOMAIN_PATTERN
from subscribers.csvfile import label_pattern
from subscribers.models import (
    DESCRIPTION_MAX,
    EMAIL_MAX,
    LIST_NAME_MAX,
    NAME_MAX,
    OPENID_MAX,
    TAG_NAME_MAX,
    ChannelPreference,
    SubscriberStatus,
)

# Ids as JSON carries them exactly to every client (a JavaScript number, 2**53 - 1): a larger
# one is refused as invalid, never sent to the database.
MAX_ID = 2**53 - 1
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]


def _a_number(value: object) -> object:
    """A JSON number, as the document types it (``4.0`` is the integer 4): not "4", not true."""
    if isinstance(value, str | bool):
        raise ValueError("a number, not a text or true/false")
    return value


# (The constraints before the check, or the document would not carry them.)
IssueId = Annotated[int, Field(ge=1, le=MAX_ID), BeforeValidator(_a_number)]

# The document states every rule a request must meet, and the models hold a request to the very
# patterns it states, so that a request the document allows is one the services take. Where a
# service is more forgiving (a form typed by a person: spaces around a name, a full-width ＠),
# the API is the stricter, documented one: its clients are programs.
Address = Annotated[
    str, Field(max_length=EMAIL_MAX, pattern=ADDRESS_PATTERN, description="An ASCII address.")
]
OPENID_PATTERN = r"^[A-Za-z0-9_-]*$"  # WeChat's are 28 such characters
OpenId = Annotated[str, Field(max_length=OPENID_MAX, pattern=OPENID_PATTERN)]
# A webhook's address: http(s), a host name or IPv4 address, no user or password.
WEB_URL_PATTERN = (
    r"^https?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?(?:[/?#][^\s]*)?$"
)
ListName = Annotated[str, Field(max_length=LIST_NAME_MAX, pattern=label_pattern())]
TagName = Annotated[str, Field(max_length=TAG_NAME_MAX, pattern=label_pattern())]
# Login names: letters and digits (Latin, Chinese), and . _ - @ ·
STAFF_NAME_PATTERN = r"^[A-Za-z0-9._@\-\u00b7\u00c0-\u024f\u3400-\u4dbf\u4e00-\u9fff]+$"


NOTE_PATTERN = r"\S"  # a note staff must give: not blank

# What each pattern asks for, in words: the refusal says it, not the pattern.
PATTERN_RULES = {
    NOTE_PATTERN: "is blank: say who asked for it, and how",
    ADDRESS_PATTERN: "is not an address like name@example.org (ASCII; a domain in its xn-- form)",
    label_pattern(): "has a line break, a control character, | , or : in it, or a space at an end",
    STAFF_NAME_PATTERN: "has a character a staff name cannot have (letters, digits, . _ - @ ·)",
    DOMAIN_PATTERN: "is not a domain name like qq.com",
    OPENID_PATTERN: "is not a WeChat openid (letters, digits, _ and -)",
    WINDOW_PATTERN: 'is not a sending window like "Mon-Fri 08:00-20:00"',
    WEB_URL_PATTERN: "is not a web address like https://example.org/hooks (no password in it)",
    SUBJECT_PATTERN: "is not a subject: one line of 1 to 200 characters, not only spaces",
}


def _zone_enum(schema: dict[str, Any]) -> None:
    schema["enum"] = sorted(zone_names())


Zone = Annotated[
    str, Field(max_length=64, json_schema_extra=_zone_enum, description="An IANA zone.")
]


class Body(BaseModel):
    """Unknown fields are refused: a misspelt option is an error, not silently ignored. The
    patterns are Python's, as some need a look-ahead."""

    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


class SendVariant(StrEnum):
    FULL = "full"
    DIGEST = "digest"
    TEXT = "text"
    PREFERENCE = "preference"  # each reader gets the format they chose


class EmailVariant(StrEnum):
    FULL = "full"
    DIGEST = "digest"
    TEXT = "text"


class RenderVariant(StrEnum):
    FULL = "full"
    DIGEST = "digest"
    TEXT = "text"
    WECHAT = "wechat"


Hours = Annotated[float, Field(gt=0, le=24 * 365), BeforeValidator(_a_number)]


def _not_a_number(value: object) -> object:
    """A time is an RFC 3339 text, as the document says: not seconds since 1970."""
    if not isinstance(value, str | datetime) or str(value).strip().lstrip("+-").replace(
        ".", "", 1
    ).isdigit():
        raise ValueError("a date and time like 2026-12-06T09:00:00+08:00")
    return value


Moment = Annotated[datetime, BeforeValidator(_not_a_number)]


# --- sends --------------------------------------------------------------------------------------


class AudienceIn(Body):
    lists: list[ListName] = Field(
        min_length=1, max_length=50, description="Active members of any."
    )
    tags: list[TagName] = Field(
        default=[], max_length=50, description="Only those with one of these."
    )


def _lists_or_segment(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [
        {"required": ["lists"], "properties": {"lists": {"minItems": 1}}},
        {"required": ["segment"], "properties": {"segment": {"type": "string"}}},
    ]


class AbTestIn(Body):
    """An A/B subject test: `share` percent of the audience, in two equal random halves, get the
    issue's own subject (A) or `subject_b`; `winner_after_seconds` after the test's last message
    the rest get the subject more of whose readers opened (`winner_by`: opens) or clicked. Nobody
    opening either, or a tie: A. Opens and clicks are tracked."""

    subject_b: str = Field(max_length=SUBJECT_MAX, pattern=SUBJECT_PATTERN)
    share: Annotated[int, Field(ge=MIN_SHARE, le=MAX_SHARE), BeforeValidator(_a_number)] = 20
    winner_by: WinnerBy = WinnerBy.OPENS
    winner_after_seconds: Annotated[
        int, Field(ge=1, le=int(MAX_WAIT.total_seconds())), BeforeValidator(_a_number)
    ] = 4 * 3600


class SendCreate(AudienceIn):
    """The audience: `lists`, or a saved `segment` (within `lists` and `tags` if given)."""

    model_config = ConfigDict(json_schema_extra=_lists_or_segment)
    lists: list[ListName] = Field(
        default=[], max_length=50, description="Active members of any (needed without a segment)."
    )
    segment: str | None = Field(
        default=None,
        max_length=SEGMENT_NAME_MAX,
        pattern=label_pattern(),
        description="A saved segment (`/api/v1/segments`): its readers.",
    )
    issue_id: IssueId
    variant: SendVariant = SendVariant.FULL
    at: Moment | None = Field(
        default=None,
        description="When to send. Without an offset it is read in `timezone`. Absent: now "
        "(a draft: no time yet).",
    )
    timezone: Zone | None = Field(default=None, description="The zone of `at`; default the site's.")
    draft: StrictBool = False
    expires_in_hours: Hours | None = Field(
        default=None,
        description="Not started this long after its time (workers were down): it expires "
        "and waits for a resume. Default 6.",
    )
    rate: Annotated[float, Field(gt=0, le=1e6), BeforeValidator(_a_number)] | None = Field(
        default=None, description="Messages per second."
    )
    allow_empty: StrictBool = False
    windows: list[Annotated[str, Field(max_length=60, pattern=WINDOW_PATTERN)]] = Field(
        default=[],
        max_length=14,
        description='Sending windows in `timezone`, e.g. "Mon-Fri 08:00-20:00": it goes out '
        "only inside them, waits outside and resumes. Empty: any time.",
    )
    commercial: StrictBool = Field(
        default=False,
        description="Advertising: 【广告】 before the subject, the sender's name and address in "
        "the footer.",
    )
    ab_test: AbTestIn | None = Field(default=None, description="An A/B subject test.")


class ScheduleIn(Body):
    at: Moment | None = Field(
        default=None, description="Absent: the time it was given (none: now)."
    )
    timezone: Zone | None = None
    expires_in_hours: Hours | None = None


class SendEdit(Body):
    """What changes in a draft or a scheduled send that has not started; what is not given
    stays as it is (as `distributor send edit`)."""

    lists: list[ListName] | None = Field(
        default=None, min_length=1, max_length=50, description="Its lists instead."
    )
    tags: list[TagName] | None = Field(
        default=None, max_length=50, description="Its tags instead; [] drops the tag condition."
    )
    segment: str | None = Field(
        default=None,
        max_length=SEGMENT_NAME_MAX,
        pattern=label_pattern(),
        description="A saved segment instead: its readers (within `lists` and `tags` if given).",
    )
    variant: SendVariant | None = None
    at: Moment | None = Field(
        default=None, description="Its time instead; without an offset, read in `timezone`."
    )
    timezone: Zone | None = Field(default=None, description="The zone of `at`; default the site's.")
    draft: StrictBool | None = Field(
        default=None,
        description="true: make (or keep) it a draft; false: schedule it. Absent: as it is.",
    )
    expires_in_hours: Hours | None = None
    rate: Annotated[float, Field(gt=0, le=1e6), BeforeValidator(_a_number)] | None = Field(
        default=None, description="Messages per second."
    )
    tracking: StrictBool | None = Field(default=None, description="Count opens and clicks.")
    dry_run: StrictBool = Field(
        default=False, description="Only whom it would reach (what staff confirm); no change."
    )


class RetryIn(Body):
    code: Annotated[int, Field(ge=100, le=999), BeforeValidator(_a_number)] | None = Field(
        default=None, description="Only this SMTP code."
    )


class TestSendIn(Body):
    issue_id: IssueId
    to: list[Address] = Field(min_length=1, max_length=10, description="Staff addresses.")
    variant: EmailVariant = EmailVariant.FULL


class AudienceOut(BaseModel):
    lists: list[str]
    tags: list[str]
    addresses: list[str] = Field(description="A test send's addresses.")
    text: str


class ArmOut(BaseModel):
    readers: int = Field(description="Deliveries in the arm.")
    reached: int = Field(description="Accepted by the receiving server.")
    opened: int = Field(description="Readers who opened it.")
    clicked: int = Field(description="Readers who clicked a link.")


class AbTestOut(BaseModel):
    share: int
    winner_by: WinnerBy
    winner_after_seconds: int
    subject_a: str | None = Field(description="The issue's own subject, once rendered.")
    subject_b: str
    arms: dict[str, ArmOut] = Field(description='"a", "b", and "rest": the rest of the audience.')
    tested_at: datetime | None = Field(description="When the test's last message went out.")
    decided_at: datetime | None
    winner: str | None = Field(description='"a" or "b", once chosen.')
    reason: str | None = Field(
        description="better: its readers opened (clicked) more; tie, or no_signal (nobody "
        "did): A, the issue's own subject."
    )


class SendOut(BaseModel):
    id: int
    state: SendState
    issue_id: IssueId
    issue_number: int
    variant: str
    audience: AudienceOut
    is_test: bool
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    counts: dict[str, int] = Field(description="Deliveries per state.")
    total: int
    possible_duplicates: int
    error: str | None = Field(description="Why it paused itself.")
    windows: list[str] = Field(default=[], description="Its sending windows (none: any time).")
    window_zone: str | None = Field(default=None, description="The zone of its windows.")
    opens_at: datetime | None = Field(
        default=None, description="Running outside its windows: when it goes on."
    )
    commercial: bool = False
    ab_test: AbTestOut | None = Field(
        default=None, description="Its A/B subject test (one send's status; not in a list)."
    )


class SendCreated(BaseModel):
    send: SendOut
    readers: int = Field(description="Reachable when it was created; frozen when it starts.")


class SendAction(BaseModel):
    send: SendOut
    deliveries: int = Field(description="Deliveries the action changed (0 for pause, resume).")


class ReadersOut(BaseModel):
    readers: int = Field(description="People who get at least one message: the send's count.")
    channels: dict[str, int] = Field(default={}, description="Messages per channel.")
    formats: dict[str, int] = Field(default={}, description="Email messages per format.")
    fell_back_to_email: int = Field(
        default=0, description="Readers who chose WeChat but cannot be reached there: email."
    )


class SendEdited(BaseModel):
    send: SendOut
    readers: ReadersOut = Field(description="Whom it reaches (would reach, in a dry run).")
    dry_run: bool


class ReaderStandingOut(BaseModel):
    address: str
    standing: str = Field(
        description="in_send, or why not: unsubscribed, bounced, complained, not_confirmed, "
        "left_list, not_tagged, not_in_segment, wechat_only, no_address, joined_later, "
        "not_planned_yet, not_on_lists, unknown."
    )
    since: datetime | None = Field(description="When it became so, where known.")
    detail: str | None = Field(description="The recorded reason, or the delivery's last answer.")
    state: DeliveryState | None = Field(description="In the send: its delivery's state.")
    channel: str | None
    fell_back_to_email: bool


class LeftOutOut(BaseModel):
    send_id: int
    list_readers: int = Field(description="Everyone on one of its lists, in any state.")
    in_send: int
    fell_back_to_email: int
    left_out: int = Field(description="list_readers - in_send: the sum of `reasons`.")
    reasons: dict[str, int] = Field(description="Readers left out, per reason.")
    reader: ReaderStandingOut | None = Field(description="The address looked up (`email`).")


class DeliveryOut(BaseModel):
    id: int
    address: str
    state: DeliveryState
    attempts: int
    smtp_code: int | None
    detail: str | None
    sent_at: datetime | None


class TestSendOut(BaseModel):
    send_id: int
    deliveries: list[DeliveryOut]
    all_accepted: bool


# --- issues -------------------------------------------------------------------------------------


class IssueSummaryOut(BaseModel):
    id: int
    title: str
    number: int
    date: date
    articles: int


class IssueList(BaseModel):
    items: list[IssueSummaryOut]


class BlockOut(BaseModel):
    type: BlockType
    text: str  # an image's caption
    image: str | None = None  # an image block's picture, by its name in the issue


class ArticleOut(BaseModel):
    headline: str
    kicker: str | None
    subtitle: str | None
    byline: str | None
    blocks: list[BlockOut]


class IssueOut(BaseModel):
    id: int
    title: str
    number: int
    date: date
    masthead: dict[str, str | None]
    articles: list[ArticleOut]


class ImportOut(BaseModel):
    id: int | None = Field(description="None for a dry run.")
    created: bool = Field(description="False: the very same issue was imported already.")
    format: str
    encoding: str
    title: str
    number: int
    date: date
    articles: int
    repairs: list[str]
    warnings: list[str]


class RenderOut(BaseModel):
    variant: RenderVariant
    subject: str | None
    html: str | None = Field(description="The HTML part of an email variant.")
    text: str | None = Field(description="The plain-text part, or the WeChat article as JSON.")


# --- subscribers and lists -----------------------------------------------------------------------


class MembershipOut(BaseModel):
    list: str
    status: str


class SubscriberOut(BaseModel):
    id: int
    email: str
    name: str
    status: SubscriberStatus
    channel: ChannelPreference
    format: str
    locale: str
    openid: str | None
    lists: list[MembershipOut]
    created_at: datetime


class SubscriberDetailOut(SubscriberOut):
    """One subscriber, with what staff care for: tags and attributes."""

    tags: list[str]
    attributes: dict[str, Any]


class SuppressionOut(BaseModel):
    """A reader suppressed by a bounce or a complaint, with the evidence."""

    subscriber_id: int
    email: str
    status: SubscriberStatus
    cause: FailureCause | None = Field(description="Why the message did not arrive (bounces).")
    reason: str
    evidence: str | None = Field(description="The remote server's words.")
    send_id: int | None
    at: datetime = Field(description="When the suppression was made.")


MailDomain = Annotated[
    str, Field(max_length=253, pattern=DOMAIN_PATTERN, description="e.g. qq.com")
]
WINDOW = ("cause", "domain", "since", "until")


def _one_named(schema: dict[str, Any]) -> None:
    schema["anyOf"] = [
        {"required": [name], "properties": {name: {"not": {"type": "null"}}}} for name in WINDOW
    ]


class SuppressionLiftIn(Body):
    """Which suppressions to lift: at least one of cause, domain, since, until."""

    model_config = ConfigDict(json_schema_extra=_one_named)

    cause: FailureCause | None = None
    domain: MailDomain | None = None
    since: Moment | None = None
    until: Moment | None = None
    reason: str | None = Field(default=None, max_length=2000, description="Kept in each history.")
    dry_run: StrictBool = Field(default=False, description="Only count; change nothing.")


class SuppressionLiftOut(BaseModel):
    count: int = Field(description="Readers made active again (or who would be, in a dry run).")
    dry_run: bool


class SubscriberAdded(BaseModel):
    subscriber: SubscriberOut
    created: bool = Field(description="False: the address was known; its details were updated.")


class SubscriberIn(Body):
    email: Address
    name: str | None = Field(default=None, max_length=NAME_MAX)
    lists: list[ListName] = Field(default=[], max_length=50)
    openid: OpenId | None = None
    channel: ChannelPreference | None = None
    format: EmailVariant | None = None
    welcome: bool = Field(
        default=False,
        description="Give the lists' automation steps (the welcome first) to the reader, for "
        "each list this adds them to.",
    )


class SubscriberEdit(Body):
    name: str | None = Field(default=None, max_length=NAME_MAX)
    lists: list[ListName] = Field(default=[], max_length=50, description="Lists to add them to.")
    openid: OpenId | None = None
    channel: ChannelPreference | None = None
    format: EmailVariant | None = None


Note = Annotated[
    str,
    Field(
        max_length=2000,
        pattern=NOTE_PATTERN,
        description="Who asked, and how (kept in the reader's history).",
    ),
]
AttributeName = Annotated[str, Field(min_length=1, max_length=100, pattern=label_pattern())]


class CareNote(Body):
    note: Note


class ResubscribeIn(Body):
    note: Note = Field(description="Their consent: who asked, and how.")
    lists: list[ListName] = Field(min_length=1, max_length=50, description="Active on these.")


class ListsIn(Body):
    lists: list[ListName] = Field(
        max_length=50, description="Exactly these lists; the others are left."
    )


class TagsIn(Body):
    tags: list[TagName] = Field(max_length=50, description="Exactly these tags (made if new).")


class AttributesIn(Body):
    attributes: dict[AttributeName, Annotated[str, Field(max_length=1000)]] = Field(
        max_length=50,
        description="Exactly these attributes, as text.",
        # (a name the pattern refuses is no attribute: the document says so too)
        json_schema_extra={"additionalProperties": False},
    )


class UnsuppressIn(Body):
    reason: Note = Field(description="Why it is lifted (the address was fixed, a mistake…).")


class ErasedOut(BaseModel):
    subscriber_id: int
    deliveries: int = Field(description="Deliveries kept in the counts, made anonymous.")


class EmailIn(Body):
    email: Address


class ListOut(BaseModel):
    name: str
    description: str
    public: bool
    created_at: datetime
    active: int
    pending: int
    unsubscribed: int


class ListsOut(BaseModel):
    items: list[ListOut]


class ListIn(Body):
    name: ListName
    description: str = Field(default="", max_length=DESCRIPTION_MAX)
    public: StrictBool = False


class ListEdit(Body):
    public: StrictBool


# --- recurring schedules -------------------------------------------------------------------------


class RuleIn(Body):
    name: str = Field(min_length=1, max_length=100)
    every: Literal[
        "day", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"
    ]
    at_time: str = Field(pattern=r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, local.")
    timezone: Zone
    lists: list[ListName] = Field(min_length=1, max_length=50)


class RuleOut(BaseModel):
    name: str
    every: str
    at_time: str
    timezone: str
    lists: list[str]
    next_run_at: datetime
    window_start: datetime


class RulesOut(BaseModel):
    items: list[RuleOut]


# --- staff accounts ------------------------------------------------------------------------------


class TokenOut(BaseModel):
    id: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class UserOut(BaseModel):
    id: int
    name: str
    role: Role
    disabled: bool
    created_at: datetime
    tokens: list[TokenOut] = Field(description="Live (unrevoked) API tokens, without the secret.")


class UsersOut(BaseModel):
    items: list[UserOut]


class UserIn(Body):
    name: str = Field(max_length=STAFF_NAME_MAX, pattern=STAFF_NAME_PATTERN)
    role: Role
    password: str | None = Field(
        default=None,
        min_length=PASSWORD_MIN,
        max_length=PASSWORD_MAX,
        description="Absent: an API-only account, which cannot sign in to the dashboard.",
    )


class TokenIssued(BaseModel):
    id: int
    user_id: int
    token: str = Field(description="Shown this once: only its hash is kept.")
