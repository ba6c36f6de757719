"""Several gRPC channels behind one, each calling thread keeping to its own.

A call on a gRPC channel takes that channel's Python-level condition several times
(to start the call, and for each event it reads), so the threads of a served worker
queue for it on every RPC and hand the interpreter lock to each other as they do. With
a channel per thread they no longer meet there. The channels are made together and
connect on first use; gRPC's core shares one connection among channels with the same
target and arguments, so this adds no connections.

A thread is given a channel on its first call, in turn, and keeps it; beyond
``CHANNELS`` threads, threads share. The store's client always puts its deadline
interceptor in front, and an intercepted channel asks for a multicallable on each
call, so each call is made on the calling thread's channel. A multicallable taken
here directly and used from another thread still works, on the first thread's channel.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import grpc  # type: ignore[import-untyped]

CHANNELS = 8  # gunicorn.conf.py's default threads per worker


class ThreadChannels(grpc.Channel):  # type: ignore[misc]
    def __init__(self, make: Callable[[], grpc.Channel], count: int = CHANNELS) -> None:
        self.channels = [make() for _ in range(count)]
        self._mine = threading.local()
        self._turn = itertools.count()  # next() on it is atomic under the interpreter lock

    def _channel(self) -> grpc.Channel:
        channel = getattr(self._mine, "channel", None)
        if channel is None:
            channel = self.channels[next(self._turn) % len(self.channels)]
            self._mine.channel = channel
        return channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel().unary_unary(method, *args, **kwargs)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel().unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel().stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._channel().stream_stream(method, *args, **kwargs)

    def subscribe(self, callback: Callable[[Any], None], try_to_connect: bool = False) -> None:
        # Connectivity is the first channel's: they share one connection (see above).
        self.channels[0].subscribe(callback, try_to_connect=try_to_connect)

    def unsubscribe(self, callback: Callable[[Any], None]) -> None:
        self.channels[0].unsubscribe(callback)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def __enter__(self) -> ThreadChannels:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
