"""deploy/: the systemd units (each service reads the one environment file, runs as the
unprivileged user, restarts when it ends badly, and runs a command this release has), and the
Grafana dashboard and Prometheus alerts (they name only metrics that exist)."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from distributor.campaigns.outcome_figures import OutcomeFigures
from distributor.cli import main
from distributor.sending.monitoring import SendingSnapshot
from distributor.sending.route_status import RoutingReport
from distributor.web.prometheus import REQUEST_SECONDS, exposition
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


def test_the_dashboard_and_the_alerts_use_only_metrics_that_exist() -> None:
    """Every distributor_* name in deploy/grafana and deploy/prometheus is one /metrics shows."""
    snapshot = SendingSnapshot({"running": 1}, {"sent": 1}, {"2xx": 1}, 0.5, 3)
    figures = OutcomeFigures({("email", "qq.com", "sent"): 1}, 1, 0, 0, {1: 0.5})
    REQUEST_SECONDS.labels("/livez").observe(0.01)
    text = exposition(snapshot, figures, RoutingReport([], [])).decode()
    families = text_string_to_metric_families(text)
    shown = {sample.name for family in families for sample in family.samples}
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "alerts.yml").read_text())
    expressions = [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "distributor-dashboard.json").read_text())
    expressions += [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    used = {name for expr in expressions for name in re.findall(r"distributor_\w+", expr)}
    assert used and used <= shown, used - shown
    assert {"distributor_complaint_rate", "distributor_messages_last_hour"} <= used
