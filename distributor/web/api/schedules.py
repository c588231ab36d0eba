"""``/api/v1/schedules``: recurring digests (every Monday 09:00 Asia/Shanghai, …)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from distributor.db import utcnow
from distributor.sending.recurring import RuleView, add_rule, list_rules, remove_rule
from distributor.web.api.access import Editor, Viewer, audit
from distributor.web.api.errors import COMMON_ERRORS, CONFLICT, NOT_FOUND
from distributor.web.api.models import RuleIn, RuleOut, RulesOut
from distributor.web.pages import WebDep

router = APIRouter(prefix="/api/v1/schedules", tags=["schedules"], responses=COMMON_ERRORS)


def rule_out(rule: RuleView) -> RuleOut:
    return RuleOut(
        name=rule.name,
        every=rule.every,
        at_time=rule.at_time,
        timezone=rule.timezone,
        lists=rule.lists,
        next_run_at=rule.next_run_at,
        window_start=rule.window_start,
    )


@router.get("", response_model=RulesOut, summary="Recurring schedules")
def list_all(web: WebDep, user: Viewer) -> RulesOut:
    with web.transaction() as session:
        return RulesOut(items=[rule_out(rule) for rule in list_rules(session)])


@router.post(
    "",
    status_code=201,
    response_model=RuleOut,
    responses={**NOT_FOUND, **CONFLICT},
    summary="Add",
)
def add(body: RuleIn, web: WebDep, user: Editor) -> RuleOut:
    """Send the issues imported since the previous run, at `at_time` every `every`, to the
    digest readers of `lists`."""
    with web.transaction() as session:
        add_rule(
            session,
            name=body.name,
            every=body.every,
            at_time=body.at_time,
            timezone=body.timezone,
            lists=body.lists,
            now=utcnow(),
        )
        audit(session, user, "schedule.add", "schedule", body.name, body.model_dump())
        (rule,) = [rule for rule in list_rules(session) if rule.name == body.name]
        return rule_out(rule)


@router.delete("/{name}", status_code=204, responses=NOT_FOUND, summary="Remove")
def remove(name: str, web: WebDep, user: Editor) -> Response:
    """The rule goes; the sends it made stay."""
    with web.transaction() as session:
        remove_rule(session, name)
        audit(session, user, "schedule.remove", "schedule", name)
    return Response(status_code=204)
