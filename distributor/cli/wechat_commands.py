"""``distributor wechat``: check the Official Account's set-up; run the local sandbox."""

from __future__ import annotations

import click

from distributor.channels.wechat.check import check_account
from distributor.channels.wechat.client import WechatClient
from distributor.cli.context import AppContext, pass_app
from distributor.cli.terminal import plain


@click.group()
def wechat() -> None:
    """The WeChat Official Account (公众号) channel."""


@wechat.command()
@pass_app
def check(app: AppContext) -> None:
    """Verify the AppID/AppSecret, this server's IP on the whitelist and mass-send permission."""
    settings = app.settings
    if not settings.shared_redis_url:
        app.ready_database()  # the token is kept in the database
    with WechatClient.from_settings(settings) as client:
        findings = check_account(client)
    for finding in findings:
        mark = "[green]✓[/]" if finding.ok else "[red]✗[/]"
        app.console.print(
            f"{mark} {finding.topic}: ", plain(finding.detail), sep="", soft_wrap=True
        )
    if not all(finding.ok for finding in findings):
        raise SystemExit(1)


@wechat.command()
@click.option("--port", type=int, default=8765, show_default=True)
@click.option("--followers", type=int, default=3, show_default=True, help="followers to create")
@click.option(
    "--account-type",
    type=click.Choice(["service", "subscription"]),
    default="service",
    show_default=True,
)
@click.option("--callback-url", help="where MASSSENDJOBFINISH events are posted")
@click.option(
    "--callback-delay",
    type=float,
    default=1.0,
    show_default=True,
    help="seconds from a mass send to its result event",
)
@pass_app
def sandbox(
    app: AppContext,
    port: int,
    followers: int,
    account_type: str,
    callback_url: str | None,
    callback_delay: float,
) -> None:
    """Run a local WeChat API (never the real one) on 127.0.0.1 for development and demos."""
    import uvicorn  # the web stack loads only for the command that serves

    from distributor.devservers.wechat_sandbox import Sandbox, SandboxConfig, create_app

    settings = app.settings
    config = SandboxConfig(
        account_type=account_type,
        callback_url=callback_url,
        callback_token=settings.wechat_callback_token or "",
        job_finish_delay=callback_delay,
    )
    if settings.wechat_app_id:
        config.app_id = settings.wechat_app_id
    if settings.wechat_app_secret:
        config.app_secret = settings.wechat_app_secret
    state = Sandbox(config)
    state.add_followers(followers)
    click.echo(
        f"WeChat sandbox on http://127.0.0.1:{port} (Ctrl-C stops it). Point the service at it:\n"
        f"  WECHAT_API_BASE=http://127.0.0.1:{port}\n"
        f"  WECHAT_APP_ID={config.app_id}\n"
        f"  WECHAT_APP_SECRET={config.app_secret}\n"
        f"  WECHAT_ACCOUNT_TYPE={account_type}"
    )
    uvicorn.run(create_app(state), host="127.0.0.1", port=port, log_level="warning")
