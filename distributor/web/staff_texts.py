"""The staff dashboard's words in each page language (merged into :data:`i18n.TEXTS`)."""

from __future__ import annotations

STAFF_TEXTS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "error.401": "请先登录",
        "error.401.text": "没有有效的登录或 API 令牌。",
    },
    "en": {
        "error.401": "Sign in first",
        "error.401.text": "No valid session or API token came with the request.",
    },
}
