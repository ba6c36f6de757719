"""CLAWBACK_WINDOW_S: how far back a clawback follows the buyer's tips."""

from __future__ import annotations

import pytest

from config.errors import ConfigError
from config.settings import DEFAULT_CLAWBACK_WINDOW_S, load_settings


def test_the_window_defaults_to_thirty_days_and_takes_whole_seconds() -> None:
    assert load_settings({}).clawback_window_s == DEFAULT_CLAWBACK_WINDOW_S == 30 * 86_400
    assert load_settings({"CLAWBACK_WINDOW_S": "0"}).clawback_window_s == 0
    assert load_settings({"CLAWBACK_WINDOW_S": "3600"}).clawback_window_s == 3600


@pytest.mark.parametrize("raw", ["-1", "1.5", "thirty", "99999999999", "٣"])
def test_a_window_that_is_not_whole_seconds_is_refused(raw: str) -> None:
    with pytest.raises(ConfigError, match="CLAWBACK_WINDOW_S"):
        load_settings({"CLAWBACK_WINDOW_S": raw})
