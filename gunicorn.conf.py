"""Gunicorn's settings, read from the environment: Cloud Run's in the image, a developer's locally.

The Dockerfile starts ``gunicorn --config gunicorn.conf.py app:app``; ``make run``
and ``make image-check`` start the same command. Gunicorn also reads this file
by itself when it is started from the project's root without ``--config``.
"""

from __future__ import annotations

import os


def _env_int(names: tuple[str, ...], default: int, minimum: int) -> int:
    """The first of ``names`` that is set, as a whole number of at least ``minimum``."""
    for name in names:
        raw = os.environ.get(name, "").strip()
        if not raw:
            continue
        if not raw.isdigit() or int(raw) < minimum:
            raise ValueError(f"{name} must be a whole number of at least {minimum}, got {raw!r}")
        return int(raw)
    return default


def _bind_address() -> str:
    # Cloud Run sends requests to $PORT on every interface; the sandbox (dev sign-in:
    # anyone is anyone) stays on loopback unless ALLOW_SANDBOX_ON_NETWORK=on.
    from config.hardening import bind_host

    host = bind_host(os.environ)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # an IPv6 address
    return f"{host}:{_env_int(('PORT',), 8080, 1)}"


bind = [_bind_address()]
# One worker per instance: Cloud Run scales by adding instances, and threads
# serve concurrent requests that mostly wait on Firestore and Stripe.
workers = _env_int(("GUNICORN_WORKERS", "WEB_CONCURRENCY"), 1, 1)
threads = _env_int(("GUNICORN_THREADS",), 8, 1)
# 0: no worker heartbeat timeout; Cloud Run's request timeout ends slow requests.
timeout = _env_int(("GUNICORN_TIMEOUT",), 0, 0)
# Cloud Run sends SIGTERM and kills the instance 10 s later: finish in-flight
# requests within 8 s so that the workers exit before that.
graceful_timeout = _env_int(("GUNICORN_GRACEFUL_TIMEOUT",), 8, 0)
# Idle connections from Cloud Run's front end stay open between requests.
keepalive = _env_int(("GUNICORN_KEEPALIVE",), 5, 0)

accesslog = "-"  # stdout: one line per request
errorlog = "-"  # stderr: start-up, worker and error messages
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
# JSON lines for Cloud Logging with LOG_FORMAT=json or APP_ENV=production.
logger_class = "ops.gunicorn_logging.CloudRunLogger"
# gRPC (Firestore's client) reads replies on the request thread that waits for them
# rather than on its own I/O threads, which then wake that thread: two thread switches
# fewer per RPC, about a tenth more webhook events per second on the emulator
# (docs/benchmarks.md). gRPC reads this once, when a worker first imports it; the master
# never does. An operator's own GRPC_EXPERIMENTS wins. grpcio is pinned in
# requirements.txt: these are experiments of that release (src/core/lib/experiments).
os.environ.setdefault(
    "GRPC_EXPERIMENTS",
    "-event_engine_client,-event_engine_callback_cq,-event_engine_for_all_other_endpoints",
)
# No runtime control socket: nobody attaches to a Cloud Run instance, and local
# runs side by side would otherwise share one socket under $HOME.
control_socket_disable = True


def post_worker_init(worker: object) -> None:
    """``kill -USR2 <worker pid>`` writes every thread's stack to stderr: what a hung
    request is waiting on (ops/thread_stacks.py). (Only the master acts on SIGUSR2
    itself; in a worker it would otherwise end the process.)"""
    from ops import thread_stacks

    thread_stacks.install()
