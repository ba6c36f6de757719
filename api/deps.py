"""Access to the services that ``create_app`` built, for blueprints."""

from __future__ import annotations

from typing import cast

from flask import current_app

from config import Settings
from services.tokens import TokenLedger


def settings() -> Settings:
    return cast(Settings, current_app.extensions["settings"])


def ledger() -> TokenLedger:
    return cast(TokenLedger, current_app.extensions["ledger"])
