"""Every thread's stack on request: ``kill -USR2 <worker pid>``, for a request that hangs.

The stacks are written from a Python signal handler, which runs in the main thread
between two bytecodes, holding the interpreter lock, so every other thread's frames
stand still while they are read. faulthandler, which wrote them from the signal
itself, read those frames while their threads ran, and now and then crashed the worker
(SIGSEGV) with every request it was serving. gunicorn's worker thread only polls its
sockets, at least once a second, so the handler runs at once.
"""

from __future__ import annotations

import signal
import sys
import threading
import traceback
from types import FrameType
from typing import TextIO


def format_stacks() -> str:
    """Every thread's stack, most recent call first, as faulthandler lays it out."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    blocks = []
    for ident, frame in sys._current_frames().items():
        lines = [f"Thread 0x{ident:016x} ({names.get(ident, 'unknown')}, most recent call first):"]
        for summary in reversed(traceback.extract_stack(frame)):
            lines.append(f'  File "{summary.filename}", line {summary.lineno} in {summary.name}')
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def install(signum: int = signal.SIGUSR2, out: TextIO = sys.stderr) -> None:
    """On ``signum``, write every thread's stack to ``out``."""

    def write_stacks(_signum: int, _frame: FrameType | None) -> None:
        out.write(format_stacks())
        out.flush()

    signal.signal(signum, write_stacks)
