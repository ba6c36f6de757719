"""Log lines: Cloud Logging's JSON shape, readable text, and redaction of secrets."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from config.logs import (
    _REDACTIONS,
    SPAN_KEY,
    TRACE_KEY,
    CloudJsonFormatter,
    ReadableFormatter,
    RequestContext,
    _redacted,
    redact,
)

SIGNATURE = "5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd"


def record(
    message: str, *args: object, level: int = logging.INFO, **extra: object
) -> logging.LogRecord:
    rec = logging.LogRecord("token_store.test", level, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


@pytest.mark.parametrize(
    ("text", "leaked"),
    [
        ("key sk_live_51Habcdefghijklmnop used", "sk_live_51Habcdefghijklmnop"),
        ("key sk_test_51Habcdefghijklmnop used", "sk_test_51Habcdefghijklmnop"),
        ("secret whsec_token_store_development_only", "whsec_token_store_development_only"),
        (f"Stripe-Signature t=1732420000,v1={SIGNATURE}", SIGNATURE),
        ("card 4242 4242 4242 4242 declined", "4242 4242 4242 4242"),
        ("card 4000000000000002 declined", "4000000000000002"),
        ("cookie session=eyJfZnJlc2giOmZhbHNlfQ.ZzA1bg.abc123; Path=/", "ZzA1bg"),
        ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
        ("token eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9. from the client", "eyJzdWIiOiJ1MSJ9"),
        ("signed in as ann.lee@example.com today", "ann.lee@example.com"),
        ("signed in as _joe@example.com today", "_joe@example.com"),
        ("signed in as josé.núñez@example.com", "josé.núñez@example.com"),
        ("signed in as 王伟@例子.公司", "王伟@例子.公司"),
        ("GET /admin/users?q=victim.person%40example.com", "victim.person"),
        ("GET /admin/users?q=victim.person%2540example.com", "victim.person"),
        ("GET /admin/users?q=jos%C3%A9%40example.com", "jos"),
        ("secret pi_3PabcDEF123_secret_XyZ987abc", "XyZ987abc"),
        ("?payment_intent_client_secret=pi_3Pab_secret_Qw12&x=1", "Qw12"),
    ],
)
def test_secrets_never_survive_redaction(text: str, leaked: str) -> None:
    assert leaked not in redact(text)
    assert "redacted" in redact(text) or "***@" in redact(text)


def test_ids_and_amounts_are_left_alone() -> None:
    text = "purchase pur_0123456789abcdef01234567 credited 110 tokens at 1732420000 evt_1Pgafy"
    assert redact(text) == text


def test_an_email_keeps_its_first_letter_and_domain() -> None:
    assert redact("from ann@example.com") == "from a***@example.com"


def test_encoded_text_is_decoded_only_where_it_is_printable() -> None:
    assert redact("q=ann%40example.com&page=2") == "q=a***@example.com&page=2"
    # A decoded line break could forge a second log line; such runs stay encoded.
    assert redact("q=a%0Ab") == "q=a%0Ab"


def test_a_payment_intent_keeps_its_id_but_not_its_client_secret() -> None:
    assert redact("pi_3Pab_secret_Qw12") == "pi_3Pab_secret_[redacted]"


def test_json_lines_carry_severity_trace_and_known_fields() -> None:
    line = CloudJsonFormatter().format(
        record(
            "purchase %s credited",
            "pur_1",
            level=logging.WARNING,
            purchase_id="pur_1",
            user_id="u1",
            event_id="evt_1",
            request_id="req-12345678",
            **{TRACE_KEY: "projects/p/traces/abc", SPAN_KEY: "42"},
        )
    )
    entry = json.loads(line)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == "purchase pur_1 credited"
    assert (entry["purchase_id"], entry["user_id"], entry["event_id"]) == ("pur_1", "u1", "evt_1")
    assert entry[TRACE_KEY] == "projects/p/traces/abc"
    assert entry[SPAN_KEY] == "42"
    assert entry["request_id"] == "req-12345678"
    assert entry["time"].endswith("+00:00")


def test_json_lines_redact_messages_fields_and_tracebacks() -> None:
    try:
        raise ValueError("bad key sk_live_51Hsecretsecretsecret")
    except ValueError:
        rec = record("failed for bob@example.com", level=logging.ERROR)
        rec.exc_info = sys.exc_info()
    rec.httpRequest = {"requestUrl": "/x?email=carol@example.com", "status": 500}
    entry = json.loads(CloudJsonFormatter().format(rec))
    dumped = json.dumps(entry)
    for secret in ("sk_live_51Hsecretsecretsecret", "bob@example.com", "carol@example.com"):
        assert secret not in dumped
    assert entry["severity"] == "ERROR"
    assert "ValueError" in entry["message"]
    assert entry["httpRequest"]["status"] == 500


def test_readable_lines_append_fields() -> None:
    line = ReadableFormatter().format(record("stripe event %s", "evt_1", event_id="evt_1"))
    assert " INFO token_store.test stripe event evt_1 [event_id=evt_1]" in line


def test_the_request_context_filter_adds_what_the_lookup_gives() -> None:
    rec = record("x", purchase_id="pur_1")
    RequestContext(lambda: {"request_id": "r-12345678", "purchase_id": "other"}).filter(rec)
    assert rec.request_id == "r-12345678"  # type: ignore[attr-defined]
    assert rec.purchase_id == "pur_1"  # type: ignore[attr-defined]  # the record's own wins


@pytest.mark.parametrize(
    "text",
    [
        "stripe event evt_1Pgafy checkout.session.completed: paid",
        "purchase pur_0123456789abcdef01234567 credited 110 tokens",
        "key rk_test_51Habc and pk_live_9 and sk_test_",
        "whsec_abc t=1732420000,v1=abc v1=0123456789abcdef0123",
        "eyJa.b.c BEARER x.y \u017fession=abc cookie=\u212a; SESSION=z",  # long s, Kelvin
        "pi_3Pab_secret_Qw12 seti_1_secret_2 card 4242-4242-4242-4242 and 4000000000000002",
        "ann.lee@example.com and 王伟@例子.公司",
        "",
    ],
)
def test_skipping_a_pattern_whose_text_is_absent_changes_no_result(text: str) -> None:
    every_scan = text
    for pattern, replacement, _ in _REDACTIONS:
        every_scan = pattern.sub(replacement, every_scan)
    assert _redacted(text) == every_scan
