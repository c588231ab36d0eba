"""Every text a page shows, in each page language: gettext catalogs, one per language.

The message ids are dotted keys (``staff.send.new``), English is a catalog like Chinese, and
``{name}`` in a text is filled in by :func:`str.format`. Translators edit
``<lang>/LC_MESSAGES/messages.po`` with any gettext tool; ``python -m distributor.locale compile``
writes the ``.mo`` files read here (committed, so a fresh clone needs no build step: the stdlib
reads them in a millisecond, where Babel would take tens). See README, "Adding a text".
"""

from __future__ import annotations

import functools
import gettext
from pathlib import Path

LOCALE_DIR = Path(__file__).parent
DOMAIN = "messages"
# Page language (a BCP 47 tag) → its catalog's folder (a POSIX locale name, as gettext wants).
CATALOGS = {"zh-CN": "zh_CN", "en": "en"}
ERROR_PREFIX = "err."  # a service error's code ``send.no_lists`` is worded by ``err.send.no_lists``


class MissingText(KeyError):
    """A message id no catalog has: a code or template names a text nobody wrote."""


class _Strict(gettext.NullTranslations):
    def gettext(self, message: str) -> str:
        raise MissingText(message)


@functools.cache
def translations(lang: str) -> gettext.GNUTranslations:
    """``lang``'s compiled catalog; a message id it lacks raises :class:`MissingText`."""
    with (LOCALE_DIR / CATALOGS[lang] / "LC_MESSAGES" / f"{DOMAIN}.mo").open("rb") as file:
        found = gettext.GNUTranslations(file)
    found.add_fallback(_Strict())
    return found


def text(lang: str, key: str, **values: object) -> str:
    """The text of ``key`` in ``lang``, its ``{placeholders}`` filled from ``values``."""
    found = translations(lang).gettext(key)
    return found.format(**values) if values else found
