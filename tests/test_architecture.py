"""The house's rules, read from the source: each room imports only downward (README,
"Architecture"), and no room hides another capability under a prefix."""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

ENGINES = {"sending", "wechat", "bounces", "readers", "segments", "webhooks"}
ABOVE_ENGINES = {"campaigns", "runtime", "automations"}
FACES = {
    "cli", "web", "tasks", "celery", "broker", "supervisor", "redaction", "__main__", "startup"
}
LOCAL_SERVERS = {"devservers"}
BELOW_ENGINES = {"issues", "subscribers", "render", "channels", "staff"}
UPPER = ABOVE_ENGINES | FACES | LOCAL_SERVERS
# What each room may not import, beyond its own modules. Upward imports are what is forbidden;
# rooms on one floor may use each other only where README says so.
FORBIDDEN: dict[str, set[str]] = {
    "vocabulary": ENGINES | UPPER | BELOW_ENGINES | {"config", "db", "errors"},
    "failures": ENGINES | UPPER | BELOW_ENGINES | {"config", "db", "errors"},
    "locale": ENGINES | UPPER | BELOW_ENGINES | {"config", "db", "errors"},
    "logs": ENGINES | UPPER | BELOW_ENGINES | {"config", "db", "errors"},
    "issues": ENGINES | UPPER | {"subscribers", "render", "channels", "staff"},
    "subscribers": ENGINES | UPPER | {"issues", "render", "channels", "staff"},
    "render": ENGINES | UPPER | {"channels", "staff"},
    "channels": ENGINES | UPPER | {"issues", "render", "staff"},
    "staff": ENGINES | UPPER | BELOW_ENGINES - {"staff"},
    "sending": (ENGINES - {"sending"}) | UPPER,
    "wechat": {"bounces", "readers", "segments", "webhooks"} | UPPER,
    "bounces": {"wechat", "readers", "segments", "webhooks"} | UPPER,
    "readers": {"wechat", "bounces", "segments", "webhooks"} | UPPER,
    "segments": {"wechat", "bounces", "webhooks"} | UPPER,
    "webhooks": ENGINES - {"webhooks"} | UPPER | BELOW_ENGINES,
    # The outbox is written by every room, so it imports none of them.
    "outbox": ENGINES | UPPER | BELOW_ENGINES,
    "campaigns": {"runtime"} | FACES | LOCAL_SERVERS,
    "runtime": {"campaigns"} | FACES | LOCAL_SERVERS,
    "automations": {"campaigns", "runtime"} | FACES | LOCAL_SERVERS,
    "ops": UPPER,
    # Kept counts know SQL and the database, no room.
    "snapshot_counts": ENGINES | UPPER | BELOW_ENGINES,
    "count_budget": ENGINES | UPPER | BELOW_ENGINES,
}
# The pure reading of bounces: bytes in, a value out, no database and no engine.
BOUNCE_READING = ("addresses", "autoreply", "classify", "feedback", "match", "message",
                  "plaintext", "reports")


def room_of(module: str) -> str:
    parts = module.split(".")
    return "subscribers" if parts[0] == "subscribers" else parts[1] if len(parts) > 1 else ""


def modules() -> Iterator[tuple[str, Path]]:
    for top in ("distributor", "subscribers"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            yield name.removesuffix(".__init__"), path


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] in ("distributor", "subscribers")}


def upward_imports(sources: Iterable[tuple[str, Path]]) -> list[str]:
    wrong = []
    for name, path in sources:
        room = room_of(name)
        for imported in sorted(imports_of(path)):
            target = room_of(imported)
            if target != room and target in FORBIDDEN.get(room, set()):
                wrong.append(f"{name} imports {imported} ({room} may not import {target})")
    return wrong


def test_every_room_imports_only_downward() -> None:
    assert upward_imports(modules()) == []


def test_the_rule_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself: a store module importing the issue package is reported."""
    module = tmp_path / "bad.py"
    module.write_text("from distributor.issues.models import Issue\nimport distributor.db\n")
    assert upward_imports([("subscribers.bad", module)]) == [
        "subscribers.bad imports distributor.issues.models (subscribers may not import issues)"
    ]


def test_the_store_does_not_depend_on_the_issue_package() -> None:
    assert [
        name for name, path in modules()
        if name.startswith("subscribers")
        and any(imported.startswith("distributor.issues") for imported in imports_of(path))
    ] == []


@pytest.mark.parametrize("module", BOUNCE_READING)
def test_reading_a_bounce_is_pure(module: str) -> None:
    imported = imports_of(ROOT / "distributor" / "bounces" / f"{module}.py")
    assert not {name for name in imported
                if name.startswith(("distributor.db", "distributor.sending", "subscribers.store"))}


def test_the_channel_neutral_engine_holds_no_other_capability() -> None:
    names = [path.stem for path in (ROOT / "distributor" / "sending").glob("*.py")]
    assert [name for name in names
            if name.startswith(("wechat", "bounce", "feedback", "unsubscribe", "engagement"))] == []
