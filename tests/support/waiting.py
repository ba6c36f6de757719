"""Waiting for a started process to answer: the one start-and-wait loop of the test servers."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from enum import Enum
from typing import Any

import requests


class Started(Enum):
    ANSWERED = "answered"
    EXITED = "exited"  # the process ended before it answered
    TIMED_OUT = "timed out"


def wait_answering(
    process: subprocess.Popen[Any] | None,
    answers: Callable[[], bool],
    deadline: float,
    interval: float,
    not_yet: tuple[type[Exception], ...] = (requests.ConnectionError,),
) -> Started:
    """Call ``answers`` every ``interval`` s until it is true, ``process`` exits, or
    ``time.monotonic()`` passes ``deadline``; a ``not_yet`` error is not an answer yet."""
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            return Started.EXITED
        try:
            if answers():
                return Started.ANSWERED
        except not_yet:
            pass
        time.sleep(interval)
    return Started.TIMED_OUT


def http_ok(url: str, **kwargs: Any) -> Callable[[], bool]:
    """An ``answers`` check: GET ``url`` answers 2xx within a second."""
    return lambda: requests.get(url, timeout=1, **kwargs).ok
