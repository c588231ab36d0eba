"""The pictures an issue keeps: JPEG or PNG by their own bytes, each and all within bounds.

The bounds are the channels': WeChat's ``media/uploadimg`` takes a JPEG or PNG under 1 MB, and
every byte of an email's inline pictures goes to every reader. A picture in another format (a
Word chart's EMF, a TIFF) is left out with a warning, not sent broken.
"""

from __future__ import annotations

import hashlib

from distributor.errors import ImportFailed, Notice
from distributor.issues.document import IssueImage

MAX_IMAGE_BYTES = 1024 * 1024
"""Largest picture kept, in bytes (1 MiB): WeChat's limit for an image in an article."""
MAX_ISSUE_IMAGE_BYTES = 5 * 1024 * 1024
"""Largest total of an issue's pictures (5 MiB): each reader's email carries all of them."""
MAX_ISSUE_IMAGES = 30

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
)


def sniff_image(data: bytes) -> str | None:
    """``image/jpeg`` or ``image/png`` from the bytes themselves; None for anything else."""
    return next((kind for magic, kind in _SIGNATURES if data.startswith(magic)), None)


class ImageCollector:
    """Pictures met while a document is read, each stored once under a name from its digest."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.images: dict[str, IssueImage] = {}
        self.warnings: list[str] = []
        self._total = 0

    def add(self, data: bytes, where: str) -> str | None:
        """The kept picture's name, or None (with a warning) when it is not a JPEG or PNG."""
        content_type = sniff_image(data)
        if content_type is None:
            self.warnings.append(
                Notice(
                    "a picture that is not JPEG or PNG is left out", code="issue.picture_format"
                ).at(where)
            )
            return None
        if len(data) > MAX_IMAGE_BYTES:
            raise ImportFailed(
                f"{self.source}, {where}: the picture is {len(data) / 2**20:.1f} MiB; a picture "
                f"may be at most {MAX_IMAGE_BYTES / 2**20:.0f} MiB (WeChat's limit): compress "
                "the pictures (Word: File → Compress Pictures) and save again",
                code="issue.picture_large",
                file=self.source,
                where=where,
                size=f"{len(data) / 2**20:.1f}",
                most=round(MAX_IMAGE_BYTES / 2**20),
            )
        extension = "png" if content_type == "image/png" else "jpg"
        name = f"{hashlib.sha256(data).hexdigest()[:16]}.{extension}"
        if name in self.images:
            return name
        self._total += len(data)
        if len(self.images) >= MAX_ISSUE_IMAGES or self._total > MAX_ISSUE_IMAGE_BYTES:
            raise ImportFailed(
                f"{self.source}, {where}: the issue's pictures exceed {MAX_ISSUE_IMAGES} or "
                f"{MAX_ISSUE_IMAGE_BYTES / 2**20:.0f} MiB in all; every reader's email carries "
                "them: keep fewer or compress them",
                code="issue.pictures_large",
                file=self.source,
                where=where,
                count=MAX_ISSUE_IMAGES,
                most=round(MAX_ISSUE_IMAGE_BYTES / 2**20),
            )
        self.images[name] = IssueImage(name, content_type, data)
        return name
