"""The Logging query language evaluator the monitoring tests rely on, and the entry mapping."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.log_entries import log_name, service_resource, to_entry
from tests.support.log_query import QuerySyntaxError, matches, parse

ENTRY: dict[str, Any] = {
    "logName": "projects/demo/logs/run.googleapis.com%2Fstderr",
    "severity": "WARNING",
    "httpRequest": {"status": 503, "requestUrl": "http://x/api/stripe/webhook"},
    "jsonPayload": {
        "message": "Security alert purchase_needs_review: paid 1 usd",
        "alert_type": "purchase_needs_review",
        "logger": "token_store.security",
        "nested": {"ids": ["pur_1", "pur_2"]},
    },
}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('jsonPayload.alert_type="purchase_needs_review"', True),
        ('jsonPayload.alert_type="purchase_needs"', False),  # = is the whole value
        ('jsonPayload.alert_type:"needs"', True),  # : is a substring
        ('jsonPayload.message:"SECURITY ALERT"', True),  # strings ignore case
        ('jsonPayload.alert_type="PURCHASE_NEEDS_REVIEW"', True),
        ('jsonPayload.nested:"pur_2"', True),  # : looks inside objects and lists
        ("jsonPayload.alert_type!=bad_signature", True),
        ("httpRequest.status>=500", True),
        ("httpRequest.status>=504", False),
        ("httpRequest.status<500", False),
        ("httpRequest.status=503", True),
        ("severity>=WARNING", True),
        ("severity>=ERROR", False),  # by rank, not alphabetically ("W" > "E")
        ("severity=warning", True),
        ("severity<ERROR", True),
    ],
)
def test_comparisons(query: str, expected: bool) -> None:
    assert matches(query, ENTRY) is expected


def test_a_missing_field_matches_no_comparison_and_its_negation_matches() -> None:
    for query in ('jsonPayload.outcome="error"', "jsonPayload.outcome:error", "labels.x>=1"):
        assert not matches(query, ENTRY), query
        assert matches(f"NOT {query}", ENTRY), query
    assert not matches("jsonPayload.alert_type.deeper=x", ENTRY)  # a string has no fields


def test_or_binds_tighter_than_and() -> None:
    # Logging reads "a OR b AND c" as "(a OR b) AND c": with a and b true, c false,
    # that is false (the usual reading, "a OR (b AND c)", would be true).
    a, b, c = "severity=WARNING", "httpRequest.status=503", "jsonPayload.logger=nobody"
    assert not matches(f"{a} OR {b} AND {c}", ENTRY)
    assert matches(f"{a} OR ({b} AND {c})", ENTRY)
    # and "a AND b OR c" is "a AND (b OR c)": with a false, false whatever b and c.
    assert not matches(f"{c} AND {a} OR {b}", ENTRY)
    assert matches(f"({c} AND {a}) OR {b}", ENTRY)


def test_not_binds_tightest_and_nests() -> None:
    assert not matches("NOT severity=WARNING OR severity=ERROR", ENTRY)
    assert matches("NOT (severity=ERROR OR severity=INFO)", ENTRY)
    assert matches("NOT NOT severity=WARNING", ENTRY)


def test_filters_span_lines_and_quoted_values_keep_escapes() -> None:
    query = 'jsonPayload.logger="token_store.security"\n  AND NOT logName:"%2Frequests"'
    assert matches(query, ENTRY)
    quoted = {"jsonPayload": {"message": 'alert "purchase'}}
    assert matches(r'jsonPayload.message:"alert \"purchase"', quoted)
    assert not matches(r'jsonPayload.message:"alert \"sale"', quoted)


@pytest.mark.parametrize(
    "query",
    [
        "",
        '"free text"',  # a global restriction
        "severity=WARNING httpRequest.status=503",  # implicit AND
        'severity=("WARNING" OR "ERROR")',  # a value list
        "severity=",
        "severity WARNING",
        "(severity=WARNING",
        "severity=WARNING)",
        'jsonPayload.message=~"^a"',  # a regular expression
        "severity=WARNING and httpRequest.status=503",  # operators are upper case
    ],
)
def test_anything_outside_the_subset_is_refused(query: str) -> None:
    with pytest.raises(QuerySyntaxError):
        parse(query)


def test_a_structured_line_becomes_a_log_entry_as_cloud_logging_makes_it() -> None:
    line = json.dumps(
        {
            "severity": "ERROR",
            "message": "stripe event evt_1 failed",
            "time": "2026-01-01T00:00:00+00:00",
            "logger": "token_store.events",
            "logging.googleapis.com/trace": "projects/demo/traces/abc",
            "httpRequest": {"status": 503},
            "outcome": "error",
        }
    )
    entry = to_entry(line, log_name("demo", "stderr"), service_resource())
    assert entry["severity"] == "ERROR"
    assert entry["httpRequest"] == {"status": 503}
    assert entry["trace"] == "projects/demo/traces/abc"
    assert entry["timestamp"] == "2026-01-01T00:00:00+00:00"
    assert entry["jsonPayload"] == {
        "message": "stripe event evt_1 failed",
        "logger": "token_store.events",
        "outcome": "error",
    }
    assert entry["logName"] == "projects/demo/logs/run.googleapis.com%2Fstderr"
    assert matches('resource.labels.service_name="token-store"', entry)
    assert not matches("jsonPayload.severity=ERROR", entry)  # lifted out of the payload


def test_a_plain_line_becomes_a_text_entry() -> None:
    entry = to_entry("transactions: 12 done", log_name("demo", "stderr"), service_resource())
    assert entry["severity"] == "DEFAULT"
    assert entry["textPayload"] == "transactions: 12 done"
    assert "jsonPayload" not in entry
    assert not matches('jsonPayload.outcome="differences"', entry)
    assert to_entry("[1, 2]", "x", {})["textPayload"] == "[1, 2]"  # JSON, but not an object
