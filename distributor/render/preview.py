"""The staff preview page: an email's HTML at phone and desktop widths, side by side."""

from __future__ import annotations

from distributor.render.views import render_template

PREVIEW_WIDTHS = ((375, "手机"), (1024, "电脑"))  # px: a phone, a desktop mail client


def render_preview(html: str, subject: str) -> str:
    """A page showing ``html`` at phone and desktop widths (iframes with srcdoc) for staff."""
    return render_template("preview.html", html=html, subject=subject, widths=PREVIEW_WIDTHS)


