"""Text from outside made fit for one CSV cell or one line of a message.

A subscriber file is read one record per line, so a value we write into a cell must hold no line
break; and a value we quote in an error must not bury the message under a 10,000-character cell.
"""

from __future__ import annotations

import re

# C0 and C1 controls (tab and newline too), DEL, and the Unicode line and paragraph separators;
# as a character class's contents, the same in Python and ECMA-262 (a contract's patterns).
CONTROLS = r"\x00-\x1f\x7f-\x9f\u2028\u2029"
# The other characters ``str.strip`` takes for spaces (the rest of them are controls above).
SPACES = r" \xa0\u1680\u2000-\u200a\u202f\u205f\u3000"
_CONTROL = re.compile(f"[{CONTROLS}]")
QUOTE_MAX = 60  # characters of a value quoted in an error message


def one_line(text: str) -> str:
    """``text`` with every run of spaces and control characters made one space: a name typed
    across two lines of a form is still the person's name, on one line."""
    if text.isprintable() and "  " not in text and text[:1] != " " != text[-1:]:
        return text  # most: no control, no space but single ASCII ones inside (one C test each)
    return " ".join(_CONTROL.sub(" ", text).split())


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def shorten(text: str, limit: int = QUOTE_MAX) -> str:
    """``text`` cut to ``limit`` characters (the last one "…") when longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
