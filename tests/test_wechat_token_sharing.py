"""Two worker processes share one WeChat access token, through Redis or the database.

What is guaranteed: both use the token in the shared store; when it expires, exactly one of
them fetches a new one (under the store's lease) and the other takes it from the store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from distributor.devservers.redis_server import RedisServer
from distributor.devservers.wechat_sandbox import SandboxServer
from tests.conftest import ROOT
from tests.support.wechat import sandbox as sandbox  # the fixture


class Worker:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.wechat_worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.readline() == "ready"

    def readline(self) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line, f"the worker ended (exit {self.process.poll()})"
        return line

    def order(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def result(self) -> dict[str, Any]:
        return dict(json.loads(self.readline()))

    def stop(self) -> None:
        self.order("quit")
        self.process.wait(timeout=30)


DATABASE_FIXTURES = {"sqlite": "sqlite_url", "postgresql": "postgres_url"}


@pytest.fixture(params=["redis", "sqlite", "postgresql"])
def store_env(request: pytest.FixtureRequest, sandbox: SandboxServer) -> Iterator[dict[str, str]]:
    config = sandbox.sandbox.config
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("REDIS_URL", "CELERY_BROKER_URL", "DATABASE_URL")
    }
    env.update(
        WECHAT_APP_ID=config.app_id,
        WECHAT_APP_SECRET=config.app_secret,
        WECHAT_API_BASE=sandbox.url,
    )
    if request.param == "redis":
        redis_server: RedisServer = request.getfixturevalue("redis_server")
        env["REDIS_URL"] = redis_server.url
        env["DATABASE_URL"] = request.getfixturevalue("sqlite_url")  # holds no token here
    else:
        env["DATABASE_URL"] = request.getfixturevalue(DATABASE_FIXTURES[request.param])
    yield env


def both_call(workers: list[Worker]) -> list[dict[str, Any]]:
    for worker in workers:  # both go before either answers: they race for the token
        worker.order("call")
    return [worker.result() for worker in workers]


def test_two_processes_use_one_token_and_refresh_it_once(
    sandbox: SandboxServer, store_env: dict[str, str]
) -> None:
    workers = [Worker(store_env), Worker(store_env)]
    try:
        first = both_call(workers)
        assert first[0]["token"] == first[1]["token"]
        assert sandbox.sandbox.tokens_issued == 1
        assert sum(result["fetches"] for result in first) == 1
        assert set(sandbox.sandbox.token_uses) == {first[0]["token"]}

        sandbox.sandbox.expire_tokens()
        second = both_call(workers)
        assert second[0]["token"] == second[1]["token"] != first[0]["token"]
        assert sandbox.sandbox.tokens_issued == 2  # one refresh for both processes
        assert sum(result["fetches"] for result in second) == 2
        assert sandbox.sandbox.token_uses[second[0]["token"]] == 2
        # Round two: a worker that calls with the stale token is refused and retries once; a
        # worker that reaches the store after the other's refresh goes straight to the new one.
        assert sandbox.sandbox.calls["tags/get"] in (5, 6)
    finally:
        for worker in workers:
            worker.stop()
