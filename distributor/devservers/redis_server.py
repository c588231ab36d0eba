"""A throw-away redis-server: no persistence, on a free loopback port."""

from __future__ import annotations

from pathlib import Path

from distributor.devservers.processes import ServerProcess, find_program


class RedisServer(ServerProcess):
    """A redis-server of its own that may be stopped and started again (a broker restart)."""

    def __init__(self, workdir: Path) -> None:
        super().__init__()
        self.binary = find_program("redis-server", "redis-server")
        self.workdir = workdir

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        return [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]
