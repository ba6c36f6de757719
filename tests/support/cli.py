"""``flask tokens`` in this process, through Flask's test CLI runner.

For the commands' refusals and argument checks; ``tokens_cli`` (tests/support/server.py)
runs the command in its own process, as an operator does, for the real path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app import create_app
from services.container import Services


@dataclass(frozen=True)
class CliResult:
    """What a subprocess.CompletedProcess of the same command tells."""

    returncode: int
    stdout: str
    stderr: str


def tokens_in_process(config: Mapping[str, str], *args: str) -> CliResult:
    """``flask tokens ARGS`` on an app built from ``config`` alone (e.g. a server's env)."""
    app = create_app(config)
    services: Services = app.extensions["services"]
    try:
        result = app.test_cli_runner().invoke(args=["tokens", *args])
    finally:
        services.store.close()
    return CliResult(result.exit_code, result.stdout, result.stderr)
