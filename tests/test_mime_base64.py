"""The fast base64 writer gives exactly what the standard library gives (RFC 2045 lines)."""

from __future__ import annotations

import base64
import os

from distributor.render.mime import base64_lines


def test_base64_lines_match_the_standard_library_at_every_edge() -> None:
    for size in (0, 1, 56, 57, 58, 76, 114, 115, 72_000):
        data = os.urandom(size)
        assert base64_lines(data) == base64.encodebytes(data).replace(b"\n", b"\r\n")
