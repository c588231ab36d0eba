"""``distributor wechat``: check the Official Account's set-up; run the local sandbox."""

from __future__ import annotations

import click

from distributor.channels.wechat.check import check_account
from distributor.channels.wechat.client import WechatClient
from distributor.cli.context import AppContext, pass_app
from distributor.cli.terminal import plain
from distributor.db import get_engine
from distributor.issues.store import load_issue
from distributor.render.wechat import compile_wechat_message
from distributor.wechat.followers import sync_followers
from distributor.wechat.publish import prepare_articles


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


@wechat.group()
def followers() -> None:
    """The Official Account's followers as subscribers."""


@followers.command("sync")
@click.option("--list", "list_name", required=True, help="the list followers are put on")
@click.option("--tags", is_flag=True, help="mirror WeChat's tags as subscriber tags")
@pass_app
def followers_sync(app: AppContext, list_name: str, tags: bool) -> None:
    """Page through every follower (10,000 at a time) into subscribers on the WeChat channel;
    followers who left are marked so. Safe to run again."""
    url = app.ready_database()
    with WechatClient.from_settings(app.settings) as client:
        result = sync_followers(get_engine(url), client, list_name, with_tags=tags)
    app.console.print(
        f"{result.followers:,} followers on list ", plain(list_name), f"; {result.left:,} left "
        f"since the last sync; {result.tags:,} tags mirrored", sep="", soft_wrap=True
    )


@wechat.command()
@click.option("--issue", "issue_id", type=int, required=True, help="the issue to preview")
@click.option("--to", "openid", required=True, help="the OpenID of a staff follower")
@pass_app
def preview(app: AppContext, issue_id: int, openid: str) -> None:
    """The WeChat form of a test send: the issue's message to one follower's phone, before the
    mass send (no quota used)."""
    with app.session() as session:
        doc = load_issue(session, issue_id)
    articles = compile_wechat_message(doc, app.settings)
    with WechatClient.from_settings(app.settings) as client:
        media_id = client.add_draft(prepare_articles(client, articles))
        client.preview(media_id, openid=openid)
    app.console.print(
        f"Preview of issue {issue_id} ({len(articles)} articles) sent to ", plain(openid),
        sep="", soft_wrap=True,
    )


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
        encoding_aes_key=settings.wechat_encoding_aes_key or "",
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
