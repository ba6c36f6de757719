"""The readable access line: LazyAtoms gives every format what gunicorn's atoms give it."""

from __future__ import annotations

import string
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from gunicorn import glogging  # type: ignore[import-untyped]
from gunicorn.config import Config  # type: ignore[import-untyped]
from hypothesis import given, settings
from hypothesis import strategies as st

from ops.gunicorn_logging import LazyAtoms

ATOMS = "hlutrsmUqHbBfaTDMLp"
DEFAULT_FORMAT: str = Config().access_log_format
names = st.text(string.ascii_letters + "-_}{", min_size=1, max_size=8)
values = st.text(max_size=12) | st.just('say "hi"')
headers = st.lists(st.tuples(names, values), max_size=5)


def logger() -> glogging.Logger:
    log = glogging.Logger(Config())
    log.now = lambda: "[06/Dec/2026:05:00:00 +0000]"  # the same moment for both
    return log


@st.composite
def requests_(draw: st.DrawFn) -> tuple[Any, Any, dict[str, Any], timedelta]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": draw(st.sampled_from(["GET", "POST"])),
        "RAW_URI": draw(values),
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.input": object(),
    }
    for key in ("REMOTE_ADDR", "PATH_INFO", "QUERY_STRING", "HTTP_REFERER", "HTTP_USER_AGENT"):
        if draw(st.booleans()):
            environ[key] = draw(values)
    if draw(st.booleans()):  # Basic credentials, well formed or not
        environ["HTTP_AUTHORIZATION"] = draw(st.sampled_from(["Basic YWxpY2U6cHc=", "Basic !!"]))
    request_headers = draw(headers)
    req = SimpleNamespace(headers=request_headers) if draw(st.booleans()) else request_headers
    resp = SimpleNamespace(
        status=draw(st.sampled_from(["200 OK", "404 NOT FOUND", 503])),
        sent=draw(st.none() | st.integers(0, 10**6)),
        headers=draw(headers),
    )
    elapsed = timedelta(microseconds=draw(st.integers(0, 10**8)))
    return resp, req, environ, elapsed


@st.composite
def formats(draw: st.DrawFn) -> str:
    """The default format, or atoms and braced names (present or not, any case) mixed."""
    if draw(st.booleans()):
        return DEFAULT_FORMAT
    keys = draw(
        st.lists(
            st.sampled_from([*ATOMS, "x", "{x}z"])
            | st.builds(lambda n, k: f"{{{n}}}{k}", names, st.sampled_from("ioeIOE")),
            min_size=1,
            max_size=8,
        )
    )
    return " ".join(f"%({key})s" for key in keys)


@settings(max_examples=300)
@given(requests_(), formats())
def test_lazy_atoms_format_as_gunicorn_s_atoms(request: Any, fmt: str) -> None:
    resp, req, environ, elapsed = request
    log = logger()
    expected = fmt % glogging.SafeAtoms(log.atoms(resp, req, environ, elapsed))
    assert fmt % LazyAtoms(log, resp, environ, elapsed, req) == expected


def test_the_default_line_names_the_request() -> None:
    log = logger()
    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": "/api/stripe/webhook",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_USER_AGENT": 'agent "007"',
    }
    resp = SimpleNamespace(status="200 OK", sent=61, headers=[])
    line = DEFAULT_FORMAT % LazyAtoms(log, resp, environ, timedelta(milliseconds=3), [])
    assert line == (
        '127.0.0.1 - - [06/Dec/2026:05:00:00 +0000] "POST /api/stripe/webhook HTTP/1.1" '
        '200 61 "-" "agent \\"007\\""'
    )
