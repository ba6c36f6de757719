"""openapi.yaml against the app: every JSON route described, every description routed.

HTML pages are left out by an explicit allow-list of endpoints, so a new JSON
route without an entry in openapi.yaml fails here, and so does an entry whose
route was removed.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
import yaml
from flask import Flask
from schemathesis.core.result import Ok

import services.operations.actions
import services.payments.refunds
from api.json_api.openapi import SPEC_PATH
from app import create_app
from services.errors import TokenStoreError
from services.payments.errors import Kind

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})  # Flask adds these to every GET route

# Server-rendered pages and their form posts: not part of the JSON API.
HTML_BLUEPRINTS = ("pages", "admin_pages")
HTML_ENDPOINTS = frozenset(
    {
        "static",
        "sandbox.checkout_page",
        "sandbox.pay",
        "sandbox.dashboard",
        "sandbox.act",
        "sandbox.challenge_page",
        "sandbox.authenticate",
    }
)
# Routes that exist only with the payment sandbox; the spec marks them x-sandbox-only.
SANDBOX_BLUEPRINTS = ("sandbox", "dev_auth")

# Codes the error handlers and routes send besides the exception classes' own.
HANDLER_CODES = frozenset(
    {
        "csrf_failed",  # api/http/errors.py, Flask-WTF's CSRFError
        *(kind.code for kind in Kind),  # api/http/errors.py, a PaymentsError by its kind
        "request_entity_too_large",  # werkzeug's 413 through api/http/errors.py
        "not_found",  # werkzeug's 404, and the sandbox's unknown intent
        "not_configured",  # api/json_api/health.py
        "card_declined",  # api/pages/sandbox.py
        "rate_limited",  # api/http/limits.py, Flask-Limiter's 429
    }
)
# Exception codes no JSON route can send, each for a stated reason.
UNREACHABLE_CODES = {
    "error": "the abstract base class",
    "transaction_not_found": "raised only by the admin pages' approval",
    "alert_not_found": "raised only by the admin pages' acknowledge form",
    "repayment_exceeds_debt": "debt repayment runs only after credits, never from a request",
    "action_refused": "raised only by the admin pages' approve form",
}


def html_endpoint(endpoint: str) -> bool:
    return endpoint in HTML_ENDPOINTS or endpoint.split(".", 1)[0] in HTML_BLUEPRINTS


def spec_path(rule: str) -> str:
    """Flask's /holds/<hold_id>/capture (or <path:x>) as OpenAPI's /holds/{hold_id}/capture."""
    return re.sub(r"<(?:[a-z_]+:)?([A-Za-z_][A-Za-z0-9_]*)>", r"{\1}", rule)


def json_routes(app: Flask) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        if html_endpoint(rule.endpoint):
            continue
        for method in (rule.methods or set()) - IMPLICIT_METHODS:
            routes.add((method, spec_path(rule.rule)))
    return routes


def load_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return spec


def spec_operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield method.upper(), path, item[method]


def described(spec: dict[str, Any], *, sandbox: bool) -> set[tuple[str, str]]:
    return {
        (method, path)
        for method, path, operation in spec_operations(spec)
        if sandbox or not operation.get("x-sandbox-only", False)
    }


def difference_message(routes: set[tuple[str, str]], spec: set[tuple[str, str]]) -> str:
    missing = sorted(routes - spec)
    stale = sorted(spec - routes)
    return (
        f"routed but not in openapi.yaml (add them, or to the HTML allow-list): {missing}; "
        f"in openapi.yaml but not routed: {stale}"
    )


@pytest.fixture(scope="module")
def sandbox_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    folder = tmp_path_factory.mktemp("openapi-sandbox")
    return create_app(
        {"STORE_URL": f"sqlite:///{folder}/tokens.db", "SANDBOX_DB_PATH": f"{folder}/sandbox.db"}
    )


@pytest.fixture(scope="module")
def stripe_app(tmp_path_factory: pytest.TempPathFactory) -> Flask:
    folder = tmp_path_factory.mktemp("openapi-stripe")
    return create_app(
        {
            "STORE_URL": f"sqlite:///{folder}/tokens.db",
            "STRIPE_SECRET_KEY": "sk_test_openapi_routes",
            "STRIPE_WEBHOOK_SECRET": "whsec_openapi_routes",
        }
    )


def test_every_json_route_is_described_and_every_description_is_routed(sandbox_app: Flask) -> None:
    routes = json_routes(sandbox_app)
    spec = described(load_spec(), sandbox=True)
    assert routes == spec, difference_message(routes, spec)


def test_sandbox_only_operations_are_marked_and_absent_with_stripe(
    sandbox_app: Flask, stripe_app: Flask
) -> None:
    routes = json_routes(stripe_app)
    spec = load_spec()
    production = described(spec, sandbox=False)
    assert routes == production, difference_message(routes, production)
    sandbox_only = {
        (method, spec_path(rule.rule))
        for rule in sandbox_app.url_map.iter_rules()
        if rule.endpoint.split(".", 1)[0] in SANDBOX_BLUEPRINTS and not html_endpoint(rule.endpoint)
        for method in (rule.methods or set()) - IMPLICIT_METHODS
    }
    marked = described(spec, sandbox=True) - production
    assert marked == sandbox_only
    assert ("POST", "/auth/dev-login") in marked and ("GET", "/sandbox/deliveries") in marked


def test_the_html_allow_list_names_only_real_html_endpoints(sandbox_app: Flask) -> None:
    endpoints = {rule.endpoint for rule in sandbox_app.url_map.iter_rules()}
    assert endpoints >= HTML_ENDPOINTS, HTML_ENDPOINTS - endpoints
    for blueprint in HTML_BLUEPRINTS:
        assert any(e.startswith(f"{blueprint}.") for e in endpoints), blueprint
    client = sandbox_app.test_client()
    for path in ("/", "/buy-tokens", "/signin", "/sandbox/dashboard"):
        response = client.get(path)
        assert response.mimetype == "text/html", path


def test_the_app_serves_this_document_as_yaml(sandbox_app: Flask) -> None:
    response = sandbox_app.test_client().get("/api/openapi.yaml")
    assert response.status_code == 200
    assert response.mimetype == "application/yaml"
    assert response.get_data() == Path(SPEC_PATH).read_bytes()
    assert yaml.safe_load(response.get_data())["openapi"].startswith("3.1.")


def test_the_document_is_valid_openapi_3_1() -> None:
    schema = schemathesis.openapi.from_path(SPEC_PATH)
    schema.validate()  # against the OpenAPI 3.1 meta-schema schemathesis ships
    results = list(schema.get_all_operations())
    failed = [result for result in results if not isinstance(result, Ok)]
    assert not failed, failed  # every $ref resolves and every operation loads
    assert len(results) == len(list(spec_operations(load_spec())))


def test_a_broken_document_is_refused_by_the_same_validation() -> None:
    broken = copy.deepcopy(load_spec())
    del broken["info"]
    broken["paths"]["/healthz"]["get"]["responses"] = "none"
    with pytest.raises(jsonschema_rs.ValidationError):
        schemathesis.openapi.from_dict(broken).validate()


def json_schemas(node: object) -> Iterator[dict[str, Any]]:
    """Every `schema` object in the document and every component schema."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                yield value
            elif key == "schemas" and isinstance(value, dict):
                yield from (v for v in value.values() if isinstance(v, dict))
            yield from json_schemas(value)
    elif isinstance(node, list):
        for value in node:
            yield from json_schemas(value)


def test_every_json_schema_in_it_is_valid_draft_2020_12() -> None:
    schemas = list(json_schemas(load_spec()))
    assert len(schemas) > 50
    for schema in schemas:
        jsonschema_rs.meta.validate(
            {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}
        )
    for pattern in (s["pattern"] for s in schemas if "pattern" in s):
        re.compile(pattern)


def error_classes(cls: type[TokenStoreError]) -> Iterator[type[TokenStoreError]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from error_classes(sub)


def documented_codes(spec: dict[str, Any]) -> set[str]:
    codes: set[str] = set()
    for schema in json_schemas(spec):
        for part in schema.get("allOf", []):
            code = part.get("properties", {}).get("code", {})
            codes.update(code.get("enum", []))
    return codes


def test_every_error_code_is_documented_and_every_documented_code_exists() -> None:
    # Modules outside services/errors.py that define their own error classes.
    assert services.operations.actions.ActionRefused.code == "action_refused"
    assert services.payments.refunds.RefundRefused.code == "refund_refused"
    raised = {cls.code for cls in error_classes(TokenStoreError)}
    documented = documented_codes(load_spec())
    known = raised | HANDLER_CODES
    assert documented <= known, f"documented codes nobody sends: {documented - known}"
    undocumented = known - documented - set(UNREACHABLE_CODES)
    assert not undocumented, f"missing from openapi.yaml: {undocumented}"
