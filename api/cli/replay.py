"""``flask --app app tokens replay-events --since 72h``: process events the webhook missed.

Importing this module adds the command to the ``tokens`` group (``api.cli.group``).
"""

from __future__ import annotations

import re
from datetime import timedelta

import click

from api.cli.group import tokens_cli
from api.http.deps import services
from services.ledger.model import utc_now
from services.replay import ReplayedEvent, ReplayError, replay_events

DURATION = re.compile(r"(\d+)([mhd])")
UNITS = {"m": "minutes", "h": "hours", "d": "days"}


class Duration(click.ParamType[timedelta, object]):
    """A window such as ``90m``, ``72h`` or ``3d``."""

    name = "duration"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> timedelta:
        if isinstance(value, timedelta):
            return value
        match = DURATION.fullmatch(str(value).strip().lower())
        if match is None or int(match.group(1)) == 0:
            self.fail(
                f"{value!r} is not a duration: use a positive number of minutes, hours"
                " or days, such as 90m, 72h or 3d",
                param,
                ctx,
            )
        return timedelta(**{UNITS[match.group(2)]: int(match.group(1))})


@tokens_cli.command("replay-events")
@click.option(
    "--since",
    type=Duration(),
    default="72h",
    show_default=True,
    help="How far back to look (90m, 72h, 3d; at most 30d, as long as Stripe keeps events).",
)
def replay_events_command(since: timedelta) -> None:
    """Process the payment provider's recent events as the webhook would; safe to re-run."""
    app_services = services()
    try:
        report = replay_events(app_services.payments, app_services.events, since, utc_now())
    except ReplayError as exc:
        raise click.BadParameter(str(exc), param_hint="'--since'") from exc
    for event in report.events:
        if not event.duplicate:
            click.echo(_line(event))
    click.echo(
        f"listed {report.listed} events since {report.since:%Y-%m-%d %H:%M:%S} UTC:"
        f" processed {report.processed}, already recorded {report.already_recorded},"
        f" failed {report.failed}"
    )
    if report.failed:
        raise click.ClickException(f"{report.failed} events failed; run the command again")


def _line(event: ReplayedEvent) -> str:
    line = f"{event.event_id}  {event.event_type:<42} {event.outcome}"
    return f"{line}  ({event.error})" if event.error else line
