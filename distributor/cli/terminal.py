"""Text from outside (a mail server's answer, an issue title, a subscriber's name) shown safely.

A terminal obeys escape sequences (colours, OSC 8 links, a cleared screen) and Rich reads
``[bold]`` as a style tag, so every value that did not come from our own code goes through
:func:`plain` (for ``click.echo``) or :func:`rich_text` (for a Rich table or ``console.print``)
before it reaches a staff terminal.
"""

from __future__ import annotations

import re

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI), and the Unicode
# line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def plain(text: object, limit: int | None = None) -> str:
    """``text`` with every control character shown as U+FFFD, cut to ``limit`` (then "…")."""
    shown = _CONTROL.sub("\ufffd", str(text))
    if limit is not None and len(shown) > limit:
        shown = shown[: limit - 1] + "…"
    return shown


def rich_text(text: object, limit: int | None = None) -> str:
    """:func:`plain`, with Rich markup escaped: for table cells and ``console.print``. Rich is
    imported here, by a command that prints with it: ``--help`` does not wait for it."""
    from rich.markup import escape

    return escape(plain(text, limit))
