"""The API's request and response bodies: what ``/api/openapi.json`` documents."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from distributor.issues.document import BlockType
from distributor.staff.models import STAFF_NAME_MAX, Role
from distributor.staff.passwords import PASSWORD_MAX
from distributor.vocabulary import DeliveryState, FailureCause, SendState
from subscribers.models import (
    DESCRIPTION_MAX,
    LIST_NAME_MAX,
    NAME_MAX,
    OPENID_MAX,
    ChannelPreference,
    SubscriberStatus,
)

# Database ids are 64-bit: a larger number is refused as invalid, never sent to the database.
MAX_ID = 2**63 - 1
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
IssueId = Annotated[int, Field(ge=1, le=MAX_ID)]

# Longer than any address (254): a longer one is refused by the service, with its own words.
TYPED_ADDRESS_MAX = 320


class Body(BaseModel):
    """Unknown fields are refused: a misspelt option is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


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


Hours = float


# --- sends --------------------------------------------------------------------------------------


class AudienceIn(Body):
    lists: list[str] = Field(min_length=1, max_length=50, description="Active members of any.")
    tags: list[str] = Field(default=[], max_length=50, description="Only those with one of these.")


class SendCreate(AudienceIn):
    issue_id: IssueId
    variant: SendVariant = SendVariant.FULL
    at: datetime | None = Field(
        default=None,
        description="When to send. Without an offset it is read in `timezone`. Absent: now "
        "(a draft: no time yet).",
    )
    timezone: str | None = Field(
        default=None, max_length=64, description="IANA zone of `at`; default the site's."
    )
    draft: StrictBool = False
    expires_in_hours: Hours | None = Field(
        default=None,
        gt=0,
        le=24 * 365,
        description="Not started this long after its time (workers were down): it expires "
        "and waits for a resume. Default 6.",
    )
    rate: float | None = Field(default=None, gt=0, le=1e6, description="Messages per second.")
    allow_empty: StrictBool = False
    windows: list[Annotated[str, Field(max_length=60)]] = Field(
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


class ScheduleIn(Body):
    at: datetime | None = Field(
        default=None, description="Absent: the time it was given (none: now)."
    )
    timezone: str | None = Field(default=None, max_length=64)
    expires_in_hours: Hours | None = Field(default=None, gt=0, le=24 * 365)


class RetryIn(Body):
    code: int | None = Field(default=None, ge=100, le=999, description="Only this SMTP code.")


class TestSendIn(Body):
    issue_id: IssueId
    to: list[str] = Field(min_length=1, max_length=10, description="Staff addresses.")
    variant: EmailVariant = EmailVariant.FULL


class AudienceOut(BaseModel):
    lists: list[str]
    tags: list[str]
    addresses: list[str] = Field(description="A test send's addresses.")
    text: str


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


class SendCreated(BaseModel):
    send: SendOut
    readers: int = Field(description="Reachable when it was created; frozen when it starts.")


class SendAction(BaseModel):
    send: SendOut
    deliveries: int = Field(description="Deliveries the action changed (0 for pause, resume).")


class ReadersOut(BaseModel):
    readers: int


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


class SuppressionLiftIn(Body):
    """Which suppressions to lift: at least one of cause, domain, since, until."""

    cause: FailureCause | None = None
    domain: str | None = Field(default=None, max_length=253, description="e.g. qq.com")
    since: datetime | None = None
    until: datetime | None = None
    reason: str | None = Field(default=None, max_length=2000, description="Kept in each history.")
    dry_run: StrictBool = Field(default=False, description="Only count; change nothing.")


class SuppressionLiftOut(BaseModel):
    count: int = Field(description="Readers made active again (or who would be, in a dry run).")
    dry_run: bool


class SubscriberAdded(BaseModel):
    subscriber: SubscriberOut
    created: bool = Field(description="False: the address was known; its details were updated.")


class SubscriberIn(Body):
    email: str = Field(min_length=1, max_length=TYPED_ADDRESS_MAX)
    name: str | None = Field(default=None, max_length=NAME_MAX)
    lists: list[str] = Field(default=[], max_length=50)
    openid: str | None = Field(default=None, max_length=OPENID_MAX)
    channel: ChannelPreference | None = None
    format: EmailVariant | None = None


class SubscriberEdit(Body):
    name: str | None = Field(default=None, max_length=NAME_MAX)
    lists: list[str] = Field(default=[], max_length=50, description="Lists to add them to.")
    openid: str | None = Field(default=None, max_length=OPENID_MAX)
    channel: ChannelPreference | None = None
    format: EmailVariant | None = None


class EmailIn(Body):
    email: str = Field(min_length=1, max_length=TYPED_ADDRESS_MAX)


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
    name: str = Field(min_length=1, max_length=LIST_NAME_MAX)
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
    at_time: str = Field(pattern=r"^\d{1,2}:\d{2}$", description="HH:MM, local time.")
    timezone: str = Field(min_length=1, max_length=64)
    lists: list[str] = Field(min_length=1, max_length=50)


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
    name: str = Field(min_length=1, max_length=STAFF_NAME_MAX)
    role: Role
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=PASSWORD_MAX,
        description="Absent: an API-only account, which cannot sign in to the dashboard.",
    )


class TokenIssued(BaseModel):
    id: int
    user_id: int
    token: str = Field(description="Shown this once: only its hash is kept.")
