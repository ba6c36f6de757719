"""Operator commands: ``flask --app app tokens ...``."""

from __future__ import annotations

from flask import Flask


def register_cli(app: Flask) -> None:
    # Importing the command modules adds their commands to the group.
    import api.cli.commands
    import api.cli.reconcile
    import api.cli.replay  # noqa: F401
    from api.cli.group import tokens_cli

    app.cli.add_command(tokens_cli)
