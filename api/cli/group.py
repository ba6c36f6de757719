"""The ``flask tokens`` command group every command module adds to."""

from __future__ import annotations

from flask.cli import AppGroup

tokens_cli = AppGroup("tokens", help="Token store operations.")
