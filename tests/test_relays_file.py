"""SMTP_RELAYS_FILE: the relays and domain limits as the issue shows them are read as written;
a file that cannot work is refused at start with its file and line; the SMTP_* settings are the
one-relay plan."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from distributor.cli import main
from distributor.config import Settings
from distributor.config_relays import PRESETS, DomainPace, Relay
from distributor.errors import ConfigurationError
from distributor.startup import check_settings
from tests.support.sending import SECRET

EXAMPLE = """\
relays:
  - {name: a, host: smtp1.example.org, port: 587, security: starttls, username: news,
     password_env: RELAY_A_PASSWORD, rate: 40, weight: 2}
  - {name: b, host: smtp2.example.org, port: 25, rate: 40, weight: 1, daily_cap: 1500}
  - {name: c, host: smtp3.example.org, port: 25, rate: 20, domains: [163.com, 126.com]}
domains:
  163.com: {hourly_cap: 300, rate: 20}
  example.net: {concurrency: 2}
"""


def settings_with(tmp_path: Path, text: str, **env: str) -> Settings:
    path = tmp_path / "relays.yaml"
    path.write_text(text, encoding="utf-8")
    return Settings.from_env({"SMTP_RELAYS_FILE": str(path), **env})


def refusal(tmp_path: Path, text: str, **env: str) -> str:
    with pytest.raises(ConfigurationError) as caught:
        settings_with(tmp_path, text, **env)
    return caught.value.message


def test_the_issues_example_is_read_as_written(tmp_path: Path) -> None:
    plan = settings_with(tmp_path, EXAMPLE, RELAY_A_PASSWORD="s3cret").routing
    a, b, c = plan.relays
    assert a == Relay(
        name="a", host="smtp1.example.org", port=587, security="starttls", username="news",
        password="s3cret", rate=40.0, weight=2.0,
    )
    assert "s3cret" not in repr(a)
    assert (b.daily_cap, b.weight, b.domains) == (1500, 1.0, ())
    assert c.domains == ("163.com", "126.com") and c.rate == 20.0
    # A domain entry overrides its preset key by key; the other presets stay.
    assert plan.pace_of("163.com") == DomainPace(
        hourly_cap=300, daily_cap=100_000, rate=20.0, concurrency=5
    )
    assert plan.pace_of("qq.com") == PRESETS["qq.com"]
    assert plan.pace_of("example.net") == DomainPace(concurrency=2)
    assert plan.pace_of("example.org") is None
    assert plan.failover


def test_without_a_file_the_smtp_settings_are_the_one_relay() -> None:
    settings = Settings.from_env(
        {"SMTP_HOST": "mail.example.org", "SMTP_PORT": "2525", "SMTP_USERNAME": "u",
         "SMTP_PASSWORD": "p", "SMTP_SECURITY": "starttls"}
    )
    [relay] = settings.routing.relays
    assert (relay.host, relay.port, relay.security, relay.username, relay.password) == (
        "mail.example.org", 2525, "starttls", "u", "p"
    )
    assert (relay.rate, relay.hourly_cap, relay.daily_cap) == (None, None, None)
    assert not settings.routing.failover
    assert settings.routing.pace_of("163.com") == PRESETS["163.com"]


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        (
            "relays:\n  - name: a\n    host: h\n    weigth: 2\n",
            {},
            "relays.yaml:4: relay 'a' has an unknown key 'weigth' (known: ",
        ),
        (
            "relays:\n  - name: a\n    host: h\n    password_env: RELAY_A_PASSWORD\n",
            {},
            "relays.yaml:4: relay 'a': password_env names RELAY_A_PASSWORD, which is not set",
        ),
        (
            "relays:\n  - {name: a, host: h}\ndomains:\n  163.com: {hourly: 3}\n",
            {},
            "relays.yaml:4: domain '163.com' has an unknown key 'hourly'",
        ),
        (
            "relays:\n  - {name: a, host: h, rate: -1}\n",
            {},
            "relays.yaml:2: rate must be a positive number, not -1",
        ),
        (
            "relays:\n  - {name: a, host: h, security: tls}\n",
            {},
            "relays.yaml:2: relay 'a': security 'tls' is not one of none, starttls, ssl",
        ),
        ("relays:\n  - {name: a, host: h\n", {}, "relays.yaml:3: not valid YAML"),
        ("relays: []\n", {}, "relays.yaml:1: 'relays:' must list at least one relay"),
        ("relay:\n  - {name: a, host: h}\n", {}, "relays.yaml:1: the file has an unknown key"),
        (
            "relays:\n  - {name: a, host: h}\n  - {name: a, host: i}\n",
            {},
            "two relays are named 'a'",
        ),
        ("relays:\n  - {name: a}\n", {}, "relays.yaml:2: a relay needs a host"),
        (
            "relays:\n  - {name: a, host: h, domains: [qq.com]}\n",
            {},
            "relays.yaml:1: every relay lists domains, so mail to any other domain could go "
            "nowhere",
        ),
    ],
)
def test_a_file_that_cannot_work_is_refused_naming_its_line(
    tmp_path: Path, text: str, env: dict[str, str], expected: str
) -> None:
    assert expected in refusal(tmp_path, text, **env)


def test_a_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"SMTP_RELAYS_FILE=.*cannot be read"):
        Settings.from_env({"SMTP_RELAYS_FILE": str(tmp_path / "nope.yaml")})


def test_a_relay_with_a_password_over_plain_smtp_stops_a_worker_at_start(tmp_path: Path) -> None:
    text = "relays:\n  - {name: a, host: h, username: u, password_env: P}\n"
    settings = settings_with(
        tmp_path, text, P="x", DISTRIBUTOR_SECRET_KEY=SECRET,
        MAIL_FROM="杭州工运 <newsletter@hzgh.org.cn>",
    )
    with pytest.raises(ConfigurationError, match="password would cross the network in clear"):
        check_settings(settings)


def test_the_cli_reports_a_bad_relays_file_in_one_line(tmp_path: Path, sqlite_url: str) -> None:
    path = tmp_path / "relays.yaml"
    path.write_text("relays:\n  - {name: a, host: h, colour: red}\n", encoding="utf-8")
    result = CliRunner().invoke(
        main, ["send", "list"], env={"DATABASE_URL": sqlite_url, "SMTP_RELAYS_FILE": str(path)}
    )
    assert result.exit_code == 2
    assert f"Error: {path}:2: relay 'a' has an unknown key 'colour'" in result.output
