"""The relays a worker sends through and the pace each receiving domain is sent at: the file named
by ``SMTP_RELAYS_FILE``, or the one relay of the ``SMTP_*`` settings (the simple case).

Read once with the other settings, so a file that cannot work stops a process at start with one
line naming the file and its line. Passwords never stand in the file: ``password_env`` names the
environment variable that holds one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from distributor.errors import ConfigurationError

if TYPE_CHECKING:
    import yaml

SMTP_SECURITY_MODES = ("none", "starttls", "ssl")


@dataclass(frozen=True)
class Relay:
    """One SMTP relay; a cap or rate of None is no limit."""

    name: str
    host: str
    port: int = 25
    security: str = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    rate: float | None = None  # messages a second, all workers together
    hourly_cap: int | None = None
    daily_cap: int | None = None
    max_connections: int | None = None  # parallel SMTP transactions, all workers together
    weight: float = 1.0  # its share among the relays that may take a message
    domains: tuple[str, ...] = ()  # recipient domains it serves; () = any

    @property
    def capped(self) -> bool:
        return self.hourly_cap is not None or self.daily_cap is not None


@dataclass(frozen=True)
class DomainPace:
    """How fast one receiving domain is sent to, all relays and workers together."""

    hourly_cap: int | None = None
    daily_cap: int | None = None
    rate: float | None = None  # messages a second; slowed down after "too many" answers
    concurrency: int | None = None  # parallel SMTP transactions


# What the big Chinese mailbox providers take from one bulk sender without throttling it. Only
# NetEase publishes numbers (3,000 an hour, 100,000 a day); the others are careful starting
# points. A `domains:` entry in the relays file overrides a preset key by key.
_NETEASE = DomainPace(hourly_cap=3000, daily_cap=100_000, rate=1.0, concurrency=5)
_TENCENT = DomainPace(rate=2.0, concurrency=5)
_SMALLER = DomainPace(rate=1.0, concurrency=3)
PRESETS: Mapping[str, DomainPace] = {
    "163.com": _NETEASE,
    "126.com": _NETEASE,
    "yeah.net": _NETEASE,
    "qq.com": _TENCENT,
    "foxmail.com": _TENCENT,
    "sina.com": _SMALLER,
    "sina.cn": _SMALLER,
    "sohu.com": _SMALLER,
    "139.com": _SMALLER,
}


@dataclass(frozen=True)
class RoutingPlan:
    relays: tuple[Relay, ...]
    domains: Mapping[str, DomainPace] = field(default_factory=lambda: dict(PRESETS))

    @property
    def failover(self) -> bool:
        """Several relays: one that fails rests while the others take its messages."""
        return len(self.relays) > 1

    def pace_of(self, domain: str) -> DomainPace | None:
        return self.domains.get(domain)

    def domain_concurrency(self) -> dict[str, int]:
        return {d: p.concurrency for d, p in self.domains.items() if p.concurrency is not None}


_N = TypeVar("_N", int, float)
_RELAY_KEYS = {f.name for f in fields(Relay)} - {"password"} | {"password_env"}
_PACE_KEYS = {f.name for f in fields(DomainPace)}


class _Located(dict[Any, Any]):
    """A YAML mapping that remembers the line of each of its keys (and its own)."""

    line: int = 0
    key_lines: dict[Any, int]


def _mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _Located:
    loader.flatten_mapping(node)
    mapping = _Located()
    mapping.line, mapping.key_lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        mapping[key] = loader.construct_object(value_node, deep=True)
        mapping.key_lines[key] = key_node.start_mark.line + 1
    return mapping


@cache
def _loader() -> type[yaml.SafeLoader]:
    """A SafeLoader that keeps lines; made (and YAML imported) by the first relays file read,
    not by every command that reads the settings."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
    return Loader


def load_relays_file(path: str, env: Mapping[str, str]) -> RoutingPlan:
    """The plan in ``path``; ConfigurationError naming the file and line of the first fault."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigurationError(
            f"SMTP_RELAYS_FILE={path!r} cannot be read: {error.strerror}"
        ) from None
    import yaml

    try:
        data = yaml.load(text, Loader=_loader())
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else path
        problem = getattr(error, "problem", error)
        raise ConfigurationError(f"{where}: not valid YAML: {problem}") from None
    if not isinstance(data, _Located):
        raise ConfigurationError(f"{path}: expected a mapping with 'relays:' (and 'domains:')")
    _known(path, data, {"relays", "domains"}, "the file")
    relays = data.get("relays")
    if not isinstance(relays, list) or not relays:
        raise ConfigurationError(f"{path}:{data.line}: 'relays:' must list at least one relay")
    plan = tuple(_relay(path, item, env) for item in relays)
    names = [relay.name for relay in plan]
    for name in names:
        if names.count(name) > 1:
            raise ConfigurationError(f"{path}: two relays are named {name!r}")
    if all(relay.domains for relay in plan):
        raise ConfigurationError(
            f"{path}:{data.key_lines['relays']}: every relay lists domains, so mail to any other "
            "domain could go nowhere: leave `domains` off at least one relay"
        )
    domains = dict(PRESETS)
    given = data.get("domains") or _Located()
    if not isinstance(given, _Located):
        raise ConfigurationError(f"{path}: 'domains:' must map a domain to its limits")
    for domain, limits in given.items():
        where = f"{path}:{given.key_lines[domain]}"
        if not isinstance(limits, _Located):
            raise ConfigurationError(f"{where}: domain {domain!r} needs a mapping of limits")
        _known(path, limits, _PACE_KEYS, f"domain {domain!r}")
        base = domains.get(str(domain).lower(), DomainPace())
        domains[str(domain).lower()] = DomainPace(
            hourly_cap=_number(path, limits, "hourly_cap", int, base.hourly_cap),
            daily_cap=_number(path, limits, "daily_cap", int, base.daily_cap),
            rate=_number(path, limits, "rate", float, base.rate),
            concurrency=_number(path, limits, "concurrency", int, base.concurrency),
        )
    return RoutingPlan(plan, domains)


def _known(path: str, mapping: _Located, keys: set[str], what: str) -> None:
    for key in mapping:
        if key not in keys:
            raise ConfigurationError(
                f"{path}:{mapping.key_lines[key]}: {what} has an unknown key {key!r} "
                f"(known: {', '.join(sorted(keys))})"
            )


def _number(
    path: str, mapping: _Located, key: str, kind: type[_N], default: _N | None
) -> _N | None:
    if key not in mapping or mapping[key] is None:
        return default
    value = mapping[key]
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigurationError(
            f"{path}:{mapping.key_lines[key]}: {key} must be a positive number, not {value!r}"
        )
    if kind is int and value != int(value):
        raise ConfigurationError(f"{path}:{mapping.key_lines[key]}: {key} must be a whole number")
    return kind(value)


def _relay(path: str, item: object, env: Mapping[str, str]) -> Relay:
    if not isinstance(item, _Located):
        raise ConfigurationError(f"{path}: each relay is a mapping like {{name: a, host: …}}")
    _known(path, item, _RELAY_KEYS, f"relay {item.get('name', '?')!r}")
    for key in ("name", "host"):
        if not isinstance(item.get(key), str) or not item[key].strip():
            raise ConfigurationError(f"{path}:{item.line}: a relay needs a {key}")
    name = str(item["name"]).strip()

    def line(key: str) -> str:
        return f"{path}:{item.key_lines.get(key, item.line)}"

    security = str(item.get("security", "none")).lower()
    if security not in SMTP_SECURITY_MODES:
        raise ConfigurationError(
            f"{line('security')}: relay {name!r}: security {security!r} is not one of "
            f"{', '.join(SMTP_SECURITY_MODES)}"
        )
    password = None
    if (variable := item.get("password_env")) is not None:
        password = env.get(str(variable)) or None
        if password is None:
            raise ConfigurationError(
                f"{line('password_env')}: relay {name!r}: password_env names {variable}, "
                "which is not set in the environment"
            )
    domains = item.get("domains") or []
    if not isinstance(domains, list) or not all(isinstance(d, str) for d in domains):
        raise ConfigurationError(f"{line('domains')}: relay {name!r}: domains must be a list")
    default_port = 465 if security == "ssl" else 25
    return Relay(
        name=name,
        host=str(item["host"]).strip(),
        port=_number(path, item, "port", int, default_port) or default_port,
        security=security,
        username=str(item["username"]) if item.get("username") else None,
        password=password,
        rate=_number(path, item, "rate", float, None),
        hourly_cap=_number(path, item, "hourly_cap", int, None),
        daily_cap=_number(path, item, "daily_cap", int, None),
        max_connections=_number(path, item, "max_connections", int, None),
        weight=_number(path, item, "weight", float, 1.0) or 1.0,
        domains=tuple(d.strip().lower() for d in domains),
    )
