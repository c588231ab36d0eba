"""Out-of-office and other automatic replies: they come back to the return path like bounces,
but say nothing about the address, so they are recognised only to be set aside."""

from __future__ import annotations

import re
from email.message import Message

from distributor.bounces.message import header_text

_SUBJECT = re.compile(
    r"^\s*(?:\[[^\]]{0,40}\]\s*)?(?:"
    r"auto(?:matic)?[ -]?(?:reply|response|answer)|autoreply|out of (?:the )?office|"
    r"away from (?:the )?office|on vacation|vacation reply|abwesenheitsnotiz|"
    r"réponse automatique|respuesta automática|"
    r"自动回复|自動回覆|自动答复|自動回復|休假|不在办公室|外出"
    r")",
    re.IGNORECASE,
)
_FLAG_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autorespond-Reply", "X-Auto-Reply")


def auto_reply_reason(message: Message) -> str | None:
    """Why ``message`` is an automatic reply, or None. RFC 3834's ``Auto-Submitted: auto-replied``
    also marks bounces, so the caller looks for a bounce first."""
    submitted = header_text(message, "Auto-Submitted").strip().lower()
    if submitted.startswith("auto-replied"):
        return "automatic reply (Auto-Submitted: auto-replied)"
    for name in _FLAG_HEADERS:
        value = header_text(message, name).strip().lower()
        if value and value not in ("no", "false", "0"):
            return f"automatic reply ({name})"
    if header_text(message, "Precedence").strip().lower() == "auto_reply":
        return "automatic reply (Precedence: auto_reply)"
    if _SUBJECT.search(header_text(message, "Subject")):
        return "automatic reply (its subject says so)"
    return None
