"""Which message ids the code and the templates use, read from the source (no import).

A text is named three ways: literally (``t("staff.send.new")``, ``text(lang, "audience.or")``);
as a service error's code (``code="send.no_lists"``), worded through ``err.<code>``; or by a
prefix the rest of which is data (``t('state.' + s.state)``, ``t(f"error.{status}")``,
``AUDIT_PREFIX = "audit."``): every entry under it counts as used. The first two kinds must
exist; an id that appears as any other quoted literal (a table of keys) counts as used too.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from distributor.locale import ERROR_PREFIX

_KEY = r"[a-z0-9_]+(?:\.[a-z0-9_]+)+"
_CALL = r"""\b(?:t\(|text\(\s*\w+,)\s*"""  # t("key") in pages, text(lang, "key") in Python
_LITERAL_CALL = re.compile(rf"""{_CALL}(['"])([a-z0-9_]+(?:\.[a-z0-9_]+)*)\1\s*[,)]""")
_FORMATTED_CALL = re.compile(rf"""{_CALL}f(['"])([a-z0-9_.]+\.)\{{""")
# A quoted prefix kept in a constant or a table ("state.", AUDIT_PREFIX = "audit.").
_PREFIX = re.compile(r"""(['"])([a-z0-9_]+(?:\.[a-z0-9_]+)*\.)\1""")
_CODE = re.compile(rf"""\bcode(?::\s*str)?\s*=\s*(['"])({_KEY})\1""")
_QUOTED = re.compile(rf"""(['"])({_KEY})\1""")


@dataclass(frozen=True)
class Usage:
    named: frozenset[str]  # ids that must exist: literal t() calls and error codes
    prefixes: frozenset[str]  # every id under these is used
    mentioned: frozenset[str]  # any quoted dotted literal: maybe a key kept in a table

    def uses(self, key: str) -> bool:
        return (
            key in self.named
            or key in self.mentioned
            or any(key.startswith(prefix) for prefix in self.prefixes)
        )


def sources(root: Path) -> Iterator[Path]:
    """The Python of the package and the web templates (mail templates use no catalog)."""
    yield from sorted((root / "distributor").rglob("*.py"))
    yield from sorted((root / "subscribers").rglob("*.py"))
    yield from sorted((root / "templates" / "web").rglob("*.html"))


def usage(root: Path) -> Usage:
    named: set[str] = set()
    prefixes: set[str] = set()
    mentioned: set[str] = set()
    for path in sources(root):
        if "migrations" in path.parts or path.parent.name == "locale":
            continue
        source = path.read_text(encoding="utf-8")
        named.update(match[2] for match in _LITERAL_CALL.finditer(source))
        named.update(ERROR_PREFIX + match[2] for match in _CODE.finditer(source))
        prefixes.update(match[2] for match in _FORMATTED_CALL.finditer(source))
        prefixes.update(match[2] for match in _PREFIX.finditer(source))
        quoted = [match[2] for match in _QUOTED.finditer(source)]
        mentioned.update(quoted)
        mentioned.update(ERROR_PREFIX + key for key in quoted)  # a code chosen by a condition
    # Service errors are named one by one by their codes: an unused one is still found.
    return Usage(frozenset(named), frozenset(prefixes - {ERROR_PREFIX}), frozenset(mentioned))
