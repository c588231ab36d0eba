"""``distributor wechat check`` against the sandbox: what is ready, and what to fix where."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from distributor.cli.context import AppContext
from distributor.cli.wechat_commands import wechat
from distributor.db import transaction
from distributor.devservers.wechat_sandbox import SandboxConfig, SandboxServer
from subscribers.models import Subscriber, Tag
from tests.support.sending import import_sample
from tests.support.wechat import settings_for


def check(config: SandboxConfig, sqlite_url: str, **overrides: str) -> Result:
    with SandboxServer(config) as server:
        server.sandbox.add_followers(3)
        app = AppContext(settings_for(server, sqlite_url, **overrides))
        return CliRunner().invoke(wechat, ["check"], obj=app, catch_exceptions=False)


def test_a_ready_account(sqlite_url: str) -> None:
    result = check(SandboxConfig(), sqlite_url)
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        f"✓ credentials: WeChat accepted AppID {SandboxConfig.app_id} and its secret",
        "✓ IP whitelist: this server's IP address is on the account's whitelist",
        "✓ mass sends: the account may send to its followers (service account)",
        "✓ followers: 3 followers",
    ]


@pytest.mark.parametrize(
    ("config", "overrides", "expected"),
    [
        (
            SandboxConfig(allowed_ips=frozenset({"203.0.113.7"})),
            {},
            "✗ IP whitelist: WeChat refused stable_token (errcode 40164): this server's IP "
            "address is not on the account's IP whitelist. Add this server's public IP address "
            "to the whitelist in the WeChat console (设置与开发 → 基本配置 → IP白名单).",
        ),
        (
            SandboxConfig(mass_permission=False),
            {},
            "✗ mass sends: WeChat refused message/mass/speed/get (errcode 48001): the account is "
            "not allowed to use this API",
        ),
        (SandboxConfig(), {"wechat_app_id": "wx0000000000000000"}, "✗ credentials: "),
    ],
)
def test_what_is_missing_is_said_with_what_to_do(
    sqlite_url: str, config: SandboxConfig, overrides: dict[str, str], expected: str
) -> None:
    result = check(config, sqlite_url, **overrides)
    assert result.exit_code == 1
    assert any(line.startswith(expected) for line in result.output.splitlines()), result.output


def test_credentials_are_required(sqlite_url: str) -> None:
    app = AppContext(settings_for(SandboxServer(), sqlite_url, wechat_app_secret=None))
    result = CliRunner().invoke(wechat, ["check"], obj=app)
    assert result.exit_code != 0
    assert "WECHAT_APP_ID and WECHAT_APP_SECRET must be set" in str(result.exception)


def test_followers_sync_then_preview_of_an_issue(sqlite_url: str, sample_issue_path: Path) -> None:
    with SandboxServer(SandboxConfig()) as server:
        openids = server.sandbox.add_followers(3)
        server.sandbox.add_tag("青年", openids[:2])
        app = AppContext(settings_for(server, sqlite_url))
        runner = CliRunner()
        synced = runner.invoke(
            wechat, ["followers", "sync", "--list", "微信", "--tags"], obj=app,
            catch_exceptions=False,
        )
        assert synced.exit_code == 0, synced.output
        assert synced.output.strip() == (
            "3 followers on list 微信; 0 left since the last sync; 3 tags mirrored"
        )
        again = runner.invoke(wechat, ["followers", "sync", "--list", "微信"], obj=app)
        assert again.output.startswith("3 followers on list 微信; 0 left")
        with transaction(sqlite_url) as session:
            tagged = session.scalars(
                select(Subscriber.openid).join(Subscriber.tags).where(Tag.name == "青年")
            ).all()
            assert session.scalar(select(func.count(Subscriber.id))) == 3
        assert sorted(tagged) == sorted(openids[:2])

        issue_id = import_sample(sqlite_url, sample_issue_path)
        shown = runner.invoke(
            wechat, ["preview", "--issue", str(issue_id), "--to", openids[0]], obj=app,
            catch_exceptions=False,
        )
        assert shown.exit_code == 0, shown.output
        assert shown.output.startswith(f"Preview of issue {issue_id} (")
        assert server.sandbox.calls.get("message/mass/preview") == 1
        assert not server.sandbox.jobs  # a preview is no mass send
