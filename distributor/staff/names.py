"""What makes two staff names the same name: case, width and look-alike letters do not count.

An audit log that says "аdmin scheduled the send" must not let anyone read "admin": a name whose
Cyrillic а, fullwidth letters, capitals or 0-for-o only imitate an existing name is the same
name. :func:`name_key` is a skeleton in the spirit of Unicode TS #39: compatibility-normalised,
case-folded, each letter replaced by the ASCII letter it imitates (from the Unicode confusables
data that ``confusable_homoglyphs`` ships), and the common ASCII stand-ins folded together.
"""

from __future__ import annotations

import json
import unicodedata
from functools import lru_cache
from importlib import resources

# ASCII characters that stand in for one another in names (l, 1 and a capital I after folding).
_ASCII_STAND_INS = str.maketrans({"0": "o", "1": "l", "i": "l", "|": "l"})


@lru_cache(maxsize=1)
def _ascii_alias() -> dict[str, str]:
    """Each non-ASCII character that imitates a single ASCII one, mapped to it."""
    data = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    aliases: dict[str, str] = {}
    for char, homoglyphs in data.items():
        if char.isascii() or len(char) != 1:
            continue
        for homoglyph in homoglyphs:
            if len(homoglyph["c"]) == 1 and homoglyph["c"].isascii():
                aliases[char] = homoglyph["c"]
                break
    return aliases


def name_key(name: str) -> str:
    """The skeleton two names share when a person would read them as the same name."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    aliases = _ascii_alias()
    skeleton = "".join(aliases.get(char, char) for char in folded).casefold()
    return skeleton.replace("rn", "m").translate(_ASCII_STAND_INS)
