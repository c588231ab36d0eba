"""The systemd units in deploy/systemd: each service reads the one environment file, runs as the
unprivileged user, restarts when it ends badly, and runs a command this release has."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from distributor.cli import main
from tests.conftest import ROOT

UNITS = ROOT / "deploy" / "systemd"
LONG_RUNNING = ("distributor-worker", "distributor-beat", "distributor-web")
PROGRAM = "/opt/distributor/venv/bin/distributor"


def unit(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((UNITS / name).read_text(encoding="utf-8"))
    return parser


def services() -> list[str]:
    return sorted(path.name for path in UNITS.glob("*.service"))


@pytest.mark.parametrize("name", services())
def test_a_service_runs_as_distributor_with_the_environment_file_and_a_real_command(
    name: str,
) -> None:
    service = unit(name)["Service"]
    assert service["User"] == "distributor" and service["Group"] == "distributor"
    assert service["EnvironmentFile"] == "/etc/distributor/distributor.env"
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    command = shlex.split(service["ExecStart"])
    if command[0] == "/bin/sh":  # the backup names its file by the date
        command = shlex.split(command[2].removeprefix("exec "))
    assert command[0] == PROGRAM
    arguments = [part for part in command[1:] if "$(" not in part]
    result = CliRunner().invoke(main, [*arguments, "--help"])
    assert result.exit_code == 0, f"{name}: {command[1:]}: {result.output}"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_a_long_running_service_restarts_and_waits_for_the_migrations(name: str) -> None:
    parsed = unit(f"{name}.service")
    assert parsed["Service"]["Restart"] in ("on-failure", "always")
    assert "distributor-migrate.service" in parsed["Unit"]["Requires"]
    assert "distributor-migrate.service" in parsed["Unit"]["After"]
    assert parsed["Install"]["WantedBy"] == "multi-user.target"


def test_the_backup_runs_nightly_and_the_web_server_listens_on_loopback() -> None:
    assert unit("distributor-backup.timer")["Timer"]["OnCalendar"] == "*-*-* 02:15"
    web = shlex.split(unit("distributor-web.service")["Service"]["ExecStart"])
    assert web[web.index("--host") + 1] == "127.0.0.1"
    assert not (Path(UNITS) / "distributor-backup.service").read_text().count("[Install]")
