"""The API against its own OpenAPI document (schemathesis, with an editor's token; the staff
accounts' operations with a new admin's for each request, as one may disable an account or
revoke a token): whatever requests the document allows, the API never fails (no 5xx) and
answers only what the document says it answers, in the shape it says (every status, 400 and
422 included).

Bounded to about a minute: a few examples per operation, on SQLite with an imported issue, a
list and a few subscribers, so that some requests reach past the 404s."""

from __future__ import annotations

import itertools
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation.case import Case

from distributor.staff.models import Role
from distributor.web.app import create_app
from tests.support.api import api_token, bearer
from tests.support.audience import make_audience
from tests.support.sending import import_sample
from tests.support.web import web_settings

EXAMPLES = 8
ADMIN_PATHS = ("/api/v1/users", "/api/v1/tokens")
# What the document promises. Not "a schema-valid request is accepted": the document cannot say
# that an issue file must parse or that a send must find readers, and the API refuses those.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def test_the_api_keeps_to_its_document(sqlite_url: str, sample_issue_path: Path) -> None:
    import_sample(sqlite_url, sample_issue_path)
    make_audience(sqlite_url, "x", 3)
    headers = bearer(api_token(sqlite_url, "contract", Role.EDITOR))
    admins = itertools.count()

    def headers_for(operation_path: str) -> dict[str, str]:
        if operation_path.startswith(ADMIN_PATHS):
            return bearer(api_token(sqlite_url, f"contract-admin-{next(admins)}", Role.ADMIN))
        return headers

    # Nothing listens on port 9: a test send fails at once instead of waiting for a server.
    app = create_app(web_settings(sqlite_url, SMTP_PORT="9", SMTP_TIMEOUT="2"))
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app).include(
        path_regex="^/api/v1"
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [operation.label for operation in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def keeps_to_it(case: Case) -> None:
            case.call_and_validate(headers=headers_for(case.operation.path), checks=CHECKS)

        keeps_to_it()
