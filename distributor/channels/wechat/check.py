"""Is the Official Account ready for mass sends? Credentials, IP whitelist, permission, followers.

Each finding says in plain words what to do in the WeChat console when it is not.
"""

from __future__ import annotations

from dataclasses import dataclass

from distributor.channels.wechat.client import WechatClient
from distributor.errors import WechatError, WechatUnavailable

CREDENTIAL_ERRCODES = frozenset({40001, 40002, 40013, 40125, 40243, 41002, 41004, 50004, 50007})
WHITELIST_ERRCODES = frozenset({40164, 89503, 89506, 89507})


@dataclass(frozen=True)
class Finding:
    topic: str
    ok: bool
    detail: str


def check_account(client: WechatClient) -> list[Finding]:
    """Ask WeChat, harmlessly, what a mass send would need; stop at the first thing missing."""
    account = client.account
    try:
        client.fetch_token()
    except WechatUnavailable as error:
        return [Finding("connection", False, error.message)]
    except WechatError as error:
        topic = "IP whitelist" if error.errcode in WHITELIST_ERRCODES else "credentials"
        return [Finding(topic, False, error.message)]
    findings = [
        Finding("credentials", True, f"WeChat accepted AppID {account.app_id} and its secret"),
        Finding("IP whitelist", True, "this server's IP address is on the account's whitelist"),
    ]
    try:
        client.mass_speed()
        findings.append(
            Finding(
                "mass sends",
                True,
                f"the account may send to its followers ({account.account_type} account)",
            )
        )
    except WechatError as error:
        findings.append(Finding("mass sends", False, error.message))
    try:
        page = client.followers_page()
        total = page.total if page.total is not None else len(page.openids)
        findings.append(Finding("followers", True, f"{total:,} followers"))
    except WechatError as error:
        findings.append(Finding("followers", False, error.message))
    return findings
