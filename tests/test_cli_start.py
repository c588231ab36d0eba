"""The CLI starts at once: ``distributor --help`` lists every command without importing any of
them (nor SQLAlchemy, the web app, Celery), and lists each as it reads once loaded; ``send status``
and ``send list`` import the models and the status query, not the renderer, the bounce reading,
the web app, Celery or Redis (issue 27)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
from click.testing import CliRunner

from distributor.cli import LAZY_COMMANDS, main
from tests.support.audience import make_audience
from tests.support.sending import import_sample, started_send


def probed(probe: str, database_url: str | None = None) -> str:
    """What ``probe`` prints, run in a fresh interpreter (against ``database_url``, if given)."""
    env = dict(os.environ)
    if database_url is not None:
        env.update(DATABASE_URL=database_url, DISTRIBUTOR_SECRET_KEY="x" * 32)
    return subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    ).stdout


# What a command's own import would bring; the list of commands needs none of it (Rich, for
# tables and bars, is a fifth of --help's time when imported).
HEAVY = ("sqlalchemy", "fastapi", "celery", "premailer", "rich", "distributor.cli.send_commands")


def test_help_lists_every_command_without_importing_them() -> None:
    probe = (
        "import sys\nfrom click.testing import CliRunner\nfrom distributor.cli import main\n"
        "result = CliRunner().invoke(main, ['--help'])\nprint(result.output)\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    out = probed(probe)
    listing, _, imported = out.rstrip().rpartition("\n")
    assert imported == "[]", imported
    for name, lazy in LAZY_COMMANDS.items():
        assert f"  {name} " in listing and lazy.summary in listing, (name, listing)


# What reading a send's status must not load: each costs a person waiting for the answer.
NOT_FOR_STATUS = (
    "distributor.render",  # templates, premailer, the DKIM signer
    "distributor.bounces.classify",  # reading bounces (the status counts them from the models)
    "distributor.bounces.message",  # parsing a bounce, and the email package's header policies
    "email.policy",
    "distributor.campaigns.schedule",  # making sends, counting audiences
    "distributor.runtime",
    "premailer",
    "jinja2",
    "celery",
    "fastapi",
    "redis",  # only where the shared counters are in Redis
)


def test_send_status_and_list_import_only_what_they_show(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    make_audience(sqlite_url, "members", 2)
    send_id = started_send(sqlite_url, import_sample(sqlite_url, sample_issue_path), "members")
    probe = (
        "import sys\nfrom distributor.cli import main\n"
        f"for args in (['send', 'status', '{send_id}'], ['send', 'list']):\n"
        "    main(args, standalone_mode=False)\n"
        f"print(sorted(m for m in sys.modules for h in {NOT_FOR_STATUS!r}"
        " if m == h or m.startswith(h + '.')))\n"
        # The failure reader's word lists are compiled when a failure is read, not imported.
        "from distributor import failures as f\n"
        "print(sum('_pattern' in vars(w) for _, w in f._PATH_FIRST + f._READER + f._PATH_LAST))"
    )
    out = probed(probe, sqlite_url)
    shown, imported, compiled = out.rstrip().rsplit("\n", 2)
    assert f"Send {send_id}: issue" in shown and "list members" in shown, shown  # both answered
    assert imported == "[]", imported
    assert compiled == "0", compiled


def test_the_program_imports_its_command_without_collecting_then_runs_it_collecting(
    sqlite_url: str, sample_issue_path: Path
) -> None:
    """No cyclic collection while the command is imported (SQLAlchemy, the models: all kept);
    what the import built is frozen, and the command runs with the collector on (a worker or
    the web server runs for days)."""
    make_audience(sqlite_url, "members", 1)
    send_id = started_send(sqlite_url, import_sample(sqlite_url, sample_issue_path), "members")
    probe = (
        "import gc, sys\nfrom distributor.cli import run\npasses = []\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and passes.append("
        "gc.get_freeze_count()))\n"
        f"sys.argv = ['distributor', 'send', 'status', '{send_id}']\n"
        "try:\n    run()\nexcept SystemExit:\n    pass\n"
        "print(gc.isenabled(), gc.get_freeze_count() > 0, passes.count(0), len(passes) > 0)"
    )
    out = probed(probe, sqlite_url)
    shown, _, collector = out.rstrip().rpartition("\n")
    assert f"Send {send_id}: issue" in shown, shown
    # on again, the import frozen, no pass before the freeze, passes while the command ran
    assert collector == "True True 0 True", collector


def test_a_command_lists_the_same_loaded_or_not() -> None:
    before = CliRunner().invoke(main, ["--help"]).output
    context = click.Context(main)
    for name in LAZY_COMMANDS:
        command = main.get_command(context, name)
        assert command is not None and command.get_short_help_str(limit=200) == (
            LAZY_COMMANDS[name].summary
        )
    assert CliRunner().invoke(main, ["--help"]).output == before
    # and each still answers its own --help
    for name in LAZY_COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Usage: " in result.output, (name, result.output)
