"""The API against its own OpenAPI document (schemathesis, every check, with an editor's
token; the staff accounts' operations with a new admin's for each request, as one may disable an
account or revoke a token): whatever requests the document allows, the API takes (no 422 for a
request the document allows, but where `schemathesis.toml` names a rule no schema can hold), and
whatever it does not allow, the API refuses; it never fails (no 5xx) and answers only what the
document says it answers, in the shape it says.

Bounded to about a minute: two examples per operation and mode, on SQLite with an imported
issue, a list and a few subscribers, so that some requests reach past the 404s."""

from __future__ import annotations

import itertools
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.case import Case

from distributor.staff.models import Role
from distributor.web.api.document import NO_NUL
from distributor.web.app import create_app
from subscribers.address import ADDRESS_PATTERN
from tests.conftest import ROOT
from tests.support.api import api_client, api_token, bearer
from tests.support.audience import make_audience
from tests.support.sending import import_sample
from tests.support.web import web_settings

EXAMPLES = 2
ADMIN_PATHS = ("/api/v1/users", "/api/v1/tokens", "/api/v1/webhooks")


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
    config = SchemathesisConfig.from_path(ROOT / "schemathesis.toml")
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", app, config=config).include(
        path_regex="^/api/v1"
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [operation.label for operation in operations]
    for operation, mode in itertools.product(operations, GenerationMode):

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def keeps_to_it(case: Case) -> None:
            case.call_and_validate(headers=headers_for(case.operation.path))

        try:
            keeps_to_it()
        except Unsatisfiable:  # an operation that takes nothing has no invalid request
            assert mode is GenerationMode.NEGATIVE, operation.label


def test_the_document_states_the_rules_and_a_refusal_words_them(sqlite_url: str) -> None:
    """What the server enforces is in the document (so a client can check before it asks),
    and a refusal says the rule in words, never as a pattern."""
    with api_client(web_settings(sqlite_url)) as api:
        document = api.client.get("/api/openapi.json").json()
        schemas = document["components"]["schemas"]
        assert schemas["SubscriberIn"]["properties"]["email"]["pattern"] == ADDRESS_PATTERN
        zone = schemas["SendCreate"]["properties"]["timezone"]["anyOf"][0]
        assert {"Asia/Shanghai", "UTC"} <= set(zone["enum"]) and "Mars/Base" not in zone["enum"]
        assert len(schemas["SuppressionLiftIn"]["anyOf"]) == 4  # name at least one of them
        query = document["paths"]["/api/v1/subscribers"]["get"]["parameters"]
        [email] = [parameter["schema"] for parameter in query if parameter["name"] == "email"]
        assert email["anyOf"][0]["pattern"] == NO_NUL

        for body, words in (
            ({"email": "张三@qq.com"}, "'张三@qq.com' is not an address like name@example.org"),
            ({"email": "a@qq.com", "lists": ["会员 "]}, "or a space at an end"),
            ({"email": "a@qq.com", "openid": "o\u200bX"}, "is not a WeChat openid"),
        ):
            refused = api.client.post("/api/v1/subscribers", json=body, headers=api.editor)
            assert refused.status_code == 422 and words in refused.json()["error"]["message"]
            assert "(?" not in refused.text  # no pattern shown

        zoned = {"issue_id": 1, "lists": ["x"], "timezone": "Mars/Base", "draft": True}
        refused = api.client.post("/api/v1/sends", json=zoned, headers=api.editor)
        assert refused.json()["error"]["message"] == (
            "'Mars/Base' is not a time zone like Asia/Shanghai"
        )

        # /sends/test is an operation of its own, not the send "test": its one method is POST.
        for method in ("GET", "PUT"):
            wrong = api.client.request(method, "/api/v1/sends/test", headers=api.editor)
            assert (wrong.status_code, wrong.headers["allow"]) == (405, "POST")
