"""ops/monitoring: every file has the shape gcloud takes, and the policies name real metrics.

What each metric's filter selects is checked against the app's real log lines in
tests/integration/test_monitoring_filters.py.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.log_entries import log_name, service_resource, to_entry
from tests.support.log_query import matches, parse
from tests.support.monitoring import (
    METRIC_TYPE_PREFIX,
    METRICS_DIR,
    POLICIES_DIR,
    ROOT,
    metric_filter,
    metrics,
    policies,
)

# The situations issue 15 names, each with its metric and its alert policy.
SITUATIONS = {
    "token_store_webhook_event_errors": "webhook_event_errors",
    "token_store_purchases_in_review": "purchases_in_review",
    "token_store_webhook_signature_failures": "webhook_signature_failures",
    "token_store_http_5xx": "http_5xx_rate",
    "token_store_reconcile_differences": "reconcile_differences",
    "token_store_clawbacks_into_debt": "clawbacks_into_debt",
}
METRIC_NAME = re.compile(r"^[A-Za-z0-9_.\-/]{1,100}$")
COMPARISONS = {"COMPARISON_GT", "COMPARISON_GE", "COMPARISON_LT", "COMPARISON_LE"}
METRIC_FILTER = re.compile(r'^metric\.type="' + re.escape(METRIC_TYPE_PREFIX) + r'([^"]+)"$')


def referenced(condition: dict[str, Any], key: str) -> str | None:
    text = condition.get(key)
    if text is None:
        return None
    match = METRIC_FILTER.match(str(text))
    assert match, f"{key} must name one log-based metric: {text}"
    return match.group(1)


@pytest.mark.parametrize("name", sorted(metrics()))
def test_each_metric_is_a_counter_gcloud_can_create(name: str) -> None:
    metric = metrics()[name]
    assert metric["name"] == name and METRIC_NAME.match(name)
    assert metric["description"]
    parse(metric["filter"])  # in the subset the integration test evaluates
    descriptor = metric["metricDescriptor"]
    assert (descriptor["metricKind"], descriptor["valueType"]) == ("DELTA", "INT64")
    labels = {label["key"] for label in descriptor.get("labels", [])}
    assert labels == set(metric.get("labelExtractors", {}))
    for extractor in metric.get("labelExtractors", {}).values():
        assert re.fullmatch(r"EXTRACT\((jsonPayload\.\w+|httpRequest\.status)\)", extractor)
    assert set(metric) <= {
        "name",
        "description",
        "filter",
        "metricDescriptor",
        "labelExtractors",
    }


@pytest.mark.parametrize("name", sorted(policies()))
def test_each_policy_watches_existing_metrics(name: str) -> None:
    policy = policies()[name]
    assert policy["displayName"].startswith("Token Store: ")
    assert policy["documentation"]["mimeType"] == "text/markdown"
    assert policy["documentation"]["content"].strip()
    assert policy["combiner"] == "OR" and policy["conditions"]
    for condition in policy["conditions"]:
        threshold = condition["conditionThreshold"]
        assert referenced(threshold, "filter") in metrics()
        denominator = referenced(threshold, "denominatorFilter")
        if denominator is not None:
            assert denominator in metrics()
            # A ratio needs both sides aligned alike.
            assert threshold["denominatorAggregations"] == threshold["aggregations"]
        assert threshold["comparison"] in COMPARISONS
        assert isinstance(threshold["thresholdValue"], int | float)
        assert re.fullmatch(r"\d+s", threshold["duration"])
        for aggregation in threshold["aggregations"]:
            assert re.fullmatch(r"\d+s", aggregation["alignmentPeriod"])
            assert aggregation["perSeriesAligner"] == "ALIGN_SUM"  # counts per period


def test_every_situation_has_a_metric_and_a_policy_and_nothing_is_unused() -> None:
    assert set(SITUATIONS) <= set(metrics())
    assert set(SITUATIONS.values()) == set(policies())
    watched = {
        referenced(condition["conditionThreshold"], key)
        for policy in policies().values()
        for condition in policy["conditions"]
        for key in ("filter", "denominatorFilter")
    }
    assert set(metrics()) == watched - {None}
    for metric, policy in SITUATIONS.items():
        filters = [c["conditionThreshold"]["filter"] for c in policies()[policy]["conditions"]]
        assert f'metric.type="{METRIC_TYPE_PREFIX}{metric}"' in filters


def test_the_5xx_rate_counts_the_apps_access_log_not_cloud_runs_request_log_again() -> None:
    line = '{"severity": "ERROR", "message": "POST /x 503", "httpRequest": {"status": 503}}'
    ours = to_entry(line, log_name("demo", "stdout"), service_resource())
    # Cloud Run's own entry for the same request: its request log, no jsonPayload.
    platform = {k: v for k, v in ours.items() if k != "jsonPayload"}
    platform["logName"] = log_name("demo", "requests")
    for name in ("token_store_http_5xx", "token_store_http_requests"):
        assert matches(metric_filter(name), ours), name
        assert not matches(metric_filter(name), platform), name
        other_service = ours | {"resource": service_resource("another-service")}
        assert not matches(metric_filter(name), other_service), name
    ok = to_entry(line.replace("503", "404"), log_name("demo", "stdout"), service_resource())
    assert not matches(metric_filter("token_store_http_5xx"), ok)
    assert matches(metric_filter("token_store_http_requests"), ok)


def test_the_readme_creates_and_updates_every_file() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "gcloud logging metrics create" in readme
    assert "gcloud logging metrics update" in readme
    assert "--config-from-file" in readme
    assert "gcloud monitoring policies create" in readme
    assert "--policy-from-file" in readme
    assert METRICS_DIR.relative_to(ROOT).as_posix() in readme
    assert POLICIES_DIR.relative_to(ROOT).as_posix() in readme
