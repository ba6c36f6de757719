"""``flask --app app tokens reconcile``: check the ledger, the purchases and the provider.

Importing this module adds the command to ``tokens_cli``. Exit status: 0 when
everything reconciles, 1 when anything differs, 2 when the check could not
run (the store or the payment provider failed). Each run leaves a summary in
the ``last_reconciliation`` setting for the operator's dashboard.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import click

from api.cli.group import tokens_cli
from api.http.deps import services
from services.errors import StorageError
from services.ledger.model import format_time, utc_now
from services.operations.model import LAST_RECONCILIATION, error_summary
from services.payments.port import PaymentsError, PaymentsGateway
from services.reconciliation import Check, ReconcileReport, reconcile

log = logging.getLogger("token_store.reconcile")
SHOWN = 20
KEPT_FOR_DASHBOARD = 5
EXIT_DIFFERENCES, EXIT_FAILED = 1, 2


def _progress(stage: str, done: int, finished: bool) -> None:
    """A counter line on stderr: rewritten in place on a terminal, one line per update else."""
    end = "\n" if finished or not sys.stderr.isatty() else ""
    start = "\r" if sys.stderr.isatty() else ""
    click.echo(f"{start}{stage}: {done:,}{' done' if finished else ''}{end}", err=True, nl=False)


def summary_lines(report: ReconcileReport) -> list[str]:
    lines = [f"{'check':<22} {'checked':>10} {'differences':>12}"]
    for check in Check:
        if check in report.skipped:
            lines.append(f"{check:<22} {'skipped':>10} {'-':>12}")
            continue
        count = report.count(check)
        lines.append(f"{check:<22} {count.checked:>10,} {count.differences:>12,}")
    return lines


def difference_lines(report: ReconcileReport) -> list[str]:
    shown = report.differences[:SHOWN]
    total = report.total_differences
    title = (
        f"first {len(shown)} of {total:,} differences:" if total > len(shown) else "differences:"
    )
    return [title] + [f"  {d.kind:<26} {d.subject}  {d.detail}" for d in shown]


def result_summary(report: ReconcileReport, ran_at: str, provider: bool) -> dict[str, Any]:
    """What the dashboard shows of a finished run: no more than a few differences."""
    return {
        "ran_at": ran_at,
        "finished": True,
        "ok": report.ok,
        "problems": report.total_differences,
        "transactions": report.transactions,
        "entries": report.entries,
        "provider_checked": provider,
        "differences": [
            {"kind": d.kind, "subject": d.subject, "detail": d.detail}
            for d in report.differences[:KEPT_FOR_DASHBOARD]
        ],
    }


def log_result(report: ReconcileReport) -> None:
    """One structured line per finished run: a log-based metric counts the runs that differ."""
    if report.ok:
        log.info("reconciliation: everything reconciles", extra={"outcome": "reconciled"})
        return
    counts = ", ".join(
        f"{check} {report.count(check).differences}"
        for check in Check
        if check not in report.skipped and report.count(check).differences
    )
    log.warning(
        "reconciliation found %d differences (%s)",
        report.total_differences,
        counts,
        extra={"outcome": "differences"},
    )


def _remember(summary: dict[str, Any]) -> None:
    """Best effort: a store that cannot take the summary must not change the exit status."""
    try:
        services().store.put_setting(LAST_RECONCILIATION, summary)
    except StorageError as exc:
        click.echo(f"could not record this run for the dashboard: {exc}", err=True)


def _gateway(no_provider: bool) -> PaymentsGateway | None:
    if no_provider:
        return None
    gateway = services().payments
    if not callable(getattr(gateway, "list_payments", None)):
        raise click.UsageError(
            f"the {gateway.mode} payments gateway cannot list payments; run with --no-provider"
        )
    return gateway


@tokens_cli.command("reconcile")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=30,
    show_default=True,
    help="Check the provider's payments of this many days.",
)
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the differences (kind, subject, detail) to this CSV file.",
)
@click.option("--no-provider", is_flag=True, help="Skip the check against the payment provider.")
def reconcile_command(days: int, csv_path: Path | None, no_provider: bool) -> None:
    """Check the journal, balances, purchases and provider payments; exit 1 on differences."""
    started = utc_now()
    ran_at = format_time(started)
    try:
        report = reconcile(services().store, _gateway(no_provider), started, days, _progress)
    except (StorageError, PaymentsError) as exc:
        click.echo(f"reconciliation could not finish: {exc}", err=True)
        _remember({"ran_at": ran_at, "finished": False, "ok": False, "error": error_summary(exc)})
        sys.exit(EXIT_FAILED)
    _remember(result_summary(report, ran_at, provider=not no_provider))
    log_result(report)
    click.echo(f"{report.transactions:,} journal transactions, {report.entries:,} entries")
    click.echo("\n".join(summary_lines(report)))
    if report.differences:
        click.echo("\n" + "\n".join(difference_lines(report)))
    if csv_path is not None:
        written = report.write_csv(csv_path)
        kept = (
            f" (the first {written:,} of {report.total_differences:,})" if report.truncated else ""
        )
        click.echo(f"wrote {written:,} differences{kept} to {csv_path}")
    if not report.ok:
        click.echo(f"DIFFERENCES: {report.total_differences:,} found")
        sys.exit(EXIT_DIFFERENCES)
    click.echo("OK: everything reconciles")
