"""``distributor wechat check`` against the sandbox: what is ready, and what to fix where."""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from distributor.cli.context import AppContext
from distributor.cli.wechat_commands import wechat
from distributor.devservers.wechat_sandbox import SandboxConfig, SandboxServer
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
