"""The WeChat sandbox and clients of it, for the WeChat channel's tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from distributor.channels.wechat.client import WechatClient
from distributor.config import Settings
from distributor.devservers.wechat_sandbox import SandboxConfig, SandboxServer

# The smallest files the sandbox (like WeChat) takes for what they claim to be.
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 64 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


class FakeClock:
    """Real time plus what the test has moved it on by: for waits of minutes or hours."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def settings_for(server: SandboxServer, database_url: str, **overrides: Any) -> Settings:
    config = server.sandbox.config
    values: dict[str, Any] = {
        "database_url": database_url,
        "wechat_app_id": config.app_id,
        "wechat_app_secret": config.app_secret,
        "wechat_api_base": server.url,
        "wechat_account_type": config.account_type,
        **overrides,
    }
    return Settings(**values)


def wechat_env(server: SandboxServer) -> dict[str, str]:
    """A worker's WeChat settings, pointing at the sandbox (a service account)."""
    config = server.sandbox.config
    return {
        "WECHAT_APP_ID": config.app_id,
        "WECHAT_APP_SECRET": config.app_secret,
        "WECHAT_API_BASE": server.url,
        "WECHAT_ACCOUNT_TYPE": "service",
    }


def client_for(server: SandboxServer, database_url: str, **options: Any) -> WechatClient:
    return WechatClient.from_settings(settings_for(server, database_url), **options)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(job_finish_delay=0.2)) as server:
        yield server
