"""Base64 bodies: the line writer matches the standard library; a part encoded from its
pre-encoded runs decodes to exactly the filled part."""

from __future__ import annotations

import base64
import os

from distributor.render.mime import BodyPart, Placeholders, Slot, base64_lines


def test_base64_lines_match_the_standard_library_at_every_edge() -> None:
    for size in (0, 1, 56, 57, 58, 76, 114, 115, 72_000):
        data = os.urandom(size)
        assert base64_lines(data) == base64.encodebytes(data).replace(b"\n", b"\r\n")


def _lines(encoded: bytes) -> list[bytes]:
    assert encoded.endswith(b"\r\n")
    return encoded[:-2].split(b"\r\n")


def test_a_part_encoded_from_its_runs_decodes_to_the_filled_part_at_every_alignment() -> None:
    """Each literal run is encoded once; per recipient only the slots' groups are. Whatever the
    lengths, the lines decode to exactly the filled part, each line is whole base64 groups of at
    most 76 characters, and only the last may carry padding."""
    placeholders = Placeholders("0123456789abcdef")
    marker = placeholders.marker
    names = ["", "a", "ab", "读者", 'Zoë <&> "q"', "x" * 200, "杭" * 41]
    for subtype in ("plain", "html"):
        for head in range(0, 7):
            for middle in (2, 3, 4, 60, 1000):
                text = (
                    "h" * head
                    + marker(Slot.NAME)
                    + "中" * middle
                    + marker(Slot.UNSUBSCRIBE_URL)
                    + "t" * (middle % 5 + 2)
                )
                part = BodyPart.parse(subtype, text, placeholders)
                assert part.encoded_runs is not None
                for name in names:
                    values = {Slot.NAME: name, Slot.UNSUBSCRIBE_URL: f"https://e.org/u/{name}"}
                    encoded = part.encoded(values)
                    assert base64.b64decode(encoded) == part.decoded(values)
                    lines = _lines(encoded)
                    assert all(0 < len(line) <= 76 and len(line) % 4 == 0 for line in lines)
                    assert not any(b"=" in line for line in lines[:-1])


def test_slots_side_by_side_are_encoded_whole_per_recipient() -> None:
    placeholders = Placeholders("0123456789abcdef")
    text = placeholders.marker(Slot.NAME) + "," + placeholders.marker(Slot.PREFERENCES_URL) + "."
    part = BodyPart.parse("plain", text, placeholders)
    assert part.encoded_runs is None
    values = {Slot.NAME: "读者", Slot.PREFERENCES_URL: "https://e.org/p"}
    assert part.encoded(values) == base64_lines("读者,https://e.org/p.".encode())
