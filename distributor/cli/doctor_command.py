"""``distributor doctor``: the sending domain's DNS, the relay and the public address checked."""

from __future__ import annotations

import click

from distributor.cli.context import AppContext, pass_app
from distributor.cli.terminal import plain


@click.command()
@pass_app
def doctor(app: AppContext) -> None:
    """Check SPF, DKIM, DMARC, the relay's PTR, TLS and AUTH, BOUNCE_DOMAIN's MX and the https
    of PUBLIC_BASE_URL; print each finding with its fix. Exit code 1 when one is wrong."""
    from distributor.ops.dns_records import Dns, resolver_for
    from distributor.ops.doctor import diagnose

    settings = app.settings
    findings = diagnose(settings, Dns(resolver_for(settings.doctor_nameserver)))
    for finding in findings:
        for line in finding.lines():
            app.console.print(plain(line, 2000), markup=False, highlight=False, soft_wrap=True)
    wrong = sum(not finding.ok for finding in findings)
    app.console.print(f"{wrong} of {len(findings)} checks need a fix" if wrong else "All good")
    if wrong:
        raise SystemExit(1)
