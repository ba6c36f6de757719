"""A local HTTP stand-in for api.stripe.com, for tests that drive the real stripe SDK.

It listens on 127.0.0.1 (free port), records every request (method, path,
decoded params, headers) and answers with Stripe's own example objects from
fixtures3.json, with ids and the fields a request sets filled in. It keeps
what was created in memory, so a second run sees the first run's objects, and
it replays a response for a repeated ``Idempotency-Key`` as Stripe does::

    with FakeStripeApi() as fake:
        service = StripeService(stripe, "sk_test_x", api_base=fake.url)
        ...
        assert fake.last("POST", "/v1/customers").params["metadata"] == {...}

Params are decoded from Stripe's bracket notation into nested dicts and lists
(``line_items[0][price_data][unit_amount]=999`` becomes
``{"line_items": [{"price_data": {"unit_amount": "999"}}]}``); values stay
strings, as they were on the wire.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from tests.support.local_http import LocalHttpServer
from tests.support.stripe_fixtures import fixture

# URL collection -> (fixture name, id prefix)
COLLECTIONS: dict[str, tuple[str, str]] = {
    "checkout/sessions": ("checkout.session", "cs_test"),
    "customers": ("customer", "cus"),
    "payment_intents": ("payment_intent", "pi"),
    "charges": ("charge", "ch"),
    "refunds": ("refund", "re"),
    "disputes": ("dispute", "dp"),
    "events": ("event", "evt"),
    "products": ("product", "prod"),
    "prices": ("price", "price"),
}
FIXTURE_COLLECTION = {name: collection for collection, (name, _) in COLLECTIONS.items()}
LIST_CONTROL_PARAMS = {"limit", "starting_after", "ending_before", "expand", "created", "types"}
_KEY_PART = re.compile(r"\[([^\]]*)\]")

Response = tuple[int, dict[str, Any], dict[str, str]]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]  # query string (GET) or form body (POST), decoded
    pairs: list[tuple[str, str]]  # the same, as sent: [("expand[0]", "line_items"), ...]
    headers: dict[str, str] = field(repr=False)  # names lower-cased

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def idempotency_key(self) -> str | None:
        return self.header("Idempotency-Key")


def decode_params(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding to nested data: ``a[b][0]=x`` -> {"a": {"b": ["x"]}}."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head = key.split("[", 1)[0]
        parts = [head, *_KEY_PART.findall(key[len(head) :])]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part or str(len(node)), {})
        node[parts[-1] or str(len(node))] = value
    listed = _lists(root)
    assert isinstance(listed, dict)
    return listed


def _lists(node: Any) -> Any:
    """Turn dicts keyed "0".."n-1" (from ``a[0]`` or ``a[]``) into lists."""
    if not isinstance(node, dict):
        return node
    converted = {key: _lists(value) for key, value in node.items()}
    if converted and set(converted) == {str(i) for i in range(len(converted))}:
        return [converted[str(i)] for i in range(len(converted))]
    return converted


def stripe_error(status: int, kind: str, message: str, code: str | None = None) -> Response:
    error: dict[str, Any] = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return status, {"error": error}, {}


def _coerce(template: Any, value: Any) -> Any:
    """A form value as the type the fixture has for that field."""
    if value == "":
        return None
    if isinstance(template, bool):
        return value == "true"
    if isinstance(template, int) and isinstance(value, str):
        return int(value)
    return value


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def _created_matches(created: int, condition: Any) -> bool:
    if not isinstance(condition, dict):
        return created == int(condition)
    checks = {
        "gte": lambda bound: created >= bound,
        "gt": lambda bound: created > bound,
        "lte": lambda bound: created <= bound,
        "lt": lambda bound: created < bound,
    }
    return all(checks[op](int(bound)) for op, bound in condition.items())


def _matches(obj: dict[str, Any], params: dict[str, Any]) -> bool:
    if "created" in params and not _created_matches(int(obj["created"]), params["created"]):
        return False
    if "types" in params and obj.get("type") not in params["types"]:
        return False
    return all(
        _wire(obj.get(key)) == value
        for key, value in params.items()
        if key not in LIST_CONTROL_PARAMS and isinstance(value, str)
    )


class FakeStripeApi(LocalHttpServer):
    """Start with ``start()`` or ``with``; point the SDK at ``url``."""

    owner_attr = "fake"
    thread_name = "fake-stripe-api"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests: list[RecordedRequest] = []
        self.objects: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in COLLECTIONS}
        self.line_items: dict[str, list[dict[str, Any]]] = {}
        self.page_size: int | None = None  # caps every list page, to exercise pagination
        self._failures: list[tuple[int, str]] = []
        self._drops = 0  # answers computed, then lost: the connection closes instead
        self._replays: dict[str, tuple[str, str, dict[str, Any], Response]] = {}

    # -- test controls ---------------------------------------------------------

    def fail_next(self, count: int, status: int = 500, message: str = "injected failure") -> None:
        """Answer the next ``count`` requests with ``status`` and a Stripe api_error."""
        with self._lock:
            self._failures.extend([(status, message)] * count)

    def drop_next_responses(self, count: int) -> None:
        """Handle the next ``count`` requests in full, then close the connection unanswered,
        as when a response is lost on the way back."""
        with self._lock:
            self._drops += count

    def take_drop(self) -> bool:
        with self._lock:
            if self._drops == 0:
                return False
            self._drops -= 1
            return True

    def add(self, name: str, /, **fields: Any) -> dict[str, Any]:
        """Store a fixture object that lists and retrieves return; ``id`` may be given.

        ``name`` is a fixture name with a collection here: "checkout.session",
        "customer", "payment_intent", "charge", "refund", "dispute", "event",
        "product", "price".
        """
        collection = FIXTURE_COLLECTION[name]
        with self._lock:
            fields.setdefault("id", self._new_id(COLLECTIONS[collection][1]))
            obj = fixture(name, **fields)
            self.objects[collection][obj["id"]] = obj
        return obj

    def find(self, method: str, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def last(self, method: str, path: str) -> RecordedRequest:
        found = self.find(method, path)
        if not found:
            raise AssertionError(f"no {method} {path} request; got {self.summary()}")
        return found[-1]

    def summary(self) -> list[str]:
        with self._lock:
            return [f"{r.method} {r.path}" for r in self.requests]

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    # -- request handling (server threads) ---------------------------------------

    def handle(
        self, method: str, path: str, pairs: list[tuple[str, str]], headers: dict[str, str]
    ) -> Response:
        request = RecordedRequest(method, path, decode_params(pairs), pairs, headers)
        with self._lock:
            self.requests.append(request)
            if self._failures:
                status, message = self._failures.pop(0)
                return stripe_error(status, "api_error", message)
            if not headers.get("authorization", "").startswith("Bearer sk_"):
                return stripe_error(401, "invalid_request_error", "Invalid API Key provided.")
            status, body, extra = self._idempotent(request)
            # A snapshot: later updates must not change an answer or a stored replay.
            return status, copy.deepcopy(body), extra

    def _idempotent(self, request: RecordedRequest) -> Response:
        key = request.idempotency_key
        if request.method != "POST" or not key:
            return self._route(request)
        if key in self._replays:
            method, path, params, response = self._replays[key]
            if (method, path, params) != (request.method, request.path, request.params):
                return stripe_error(
                    400,
                    "idempotency_error",
                    "Keys for idempotent requests can only be used with the same parameters "
                    "they were first used with.",
                )
            status, body, _ = response
            return status, body, {"Idempotent-Replayed": "true"}
        status, body, extra = self._route(request)
        if status < 500:
            snapshot = (status, copy.deepcopy(body), extra)
            self._replays[key] = (request.method, request.path, request.params, snapshot)
        return status, body, extra

    def _route(self, request: RecordedRequest) -> Response:
        for collection in COLLECTIONS:
            prefix = f"/v1/{collection}"
            if request.path == prefix or request.path.startswith(prefix + "/"):
                rest = [p for p in request.path[len(prefix) :].split("/") if p]
                return self._resource(request, collection, rest)
        return self._unrecognized(request)

    def _resource(self, request: RecordedRequest, collection: str, rest: list[str]) -> Response:
        params, method = request.params, request.method
        if not rest and method == "GET":
            return self._list(collection, params)
        if not rest and method == "POST":
            return self._create(collection, params)
        if len(rest) == 1 and method in ("GET", "POST"):
            obj = self.objects[collection].get(rest[0])
            if obj is None:
                noun = COLLECTIONS[collection][0].split(".")[-1]
                return stripe_error(
                    404, "invalid_request_error", f"No such {noun}: '{rest[0]}'", "resource_missing"
                )
            if method == "POST":
                self._apply(obj, params)
            return 200, self._expanded(collection, obj, params.get("expand", [])), {}
        return self._sub_resource(request, collection, rest)

    def _sub_resource(self, request: RecordedRequest, collection: str, rest: list[str]) -> Response:
        """A route below one object: a session's line items, an intent's cancel."""
        params, method = request.params, request.method
        if collection == "checkout/sessions" and rest[1:] == ["line_items"] and method == "GET":
            return self._page(f"{request.path}", self.line_items.get(rest[0], []), params)
        if collection == "payment_intents" and rest[1:] == ["cancel"] and method == "POST":
            return self._cancel_intent(rest[0], params)
        return self._unrecognized(request)

    def _cancel_intent(self, intent_id: str, params: dict[str, Any]) -> Response:
        """Stripe cancels an intent until it succeeds (or is canceled already)."""
        intent = self.objects["payment_intents"].get(intent_id)
        if intent is None:
            message = f"No such payment_intent: '{intent_id}'"
            return stripe_error(404, "invalid_request_error", message, "resource_missing")
        if intent["status"] in ("succeeded", "canceled"):
            message = (
                "You cannot cancel this PaymentIntent because it has a status of"
                f" {intent['status']}."
            )
            return stripe_error(
                400, "invalid_request_error", message, "payment_intent_unexpected_state"
            )
        intent.update(
            status="canceled",
            canceled_at=int(time.time()),
            cancellation_reason=params.get("cancellation_reason"),
        )
        return 200, intent, {}

    @staticmethod
    def _unrecognized(request: RecordedRequest) -> Response:
        return stripe_error(
            404,
            "invalid_request_error",
            f"Unrecognized request URL ({request.method}: {request.path}).",
        )

    # -- objects -----------------------------------------------------------------

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}_fake{next(self._ids):06d}"

    @staticmethod
    def _apply(obj: dict[str, Any], params: dict[str, Any]) -> None:
        for key, value in params.items():
            if key in obj and key not in ("id", "object"):
                obj[key] = _coerce(obj[key], value)

    def _create(self, collection: str, params: dict[str, Any]) -> Response:
        name, prefix = COLLECTIONS[collection]
        object_id = params.get("id") or self._new_id(prefix)
        if object_id in self.objects[collection]:
            return stripe_error(
                400,
                "invalid_request_error",
                f"Object exists: {object_id}",
                "resource_already_exists",
            )
        refusal = self._refuse_refund(params) if collection == "refunds" else None
        if refusal is not None:
            return refusal
        obj = fixture(name, id=object_id, created=int(time.time()), livemode=False, metadata={})
        self._apply(obj, params)
        shape = getattr(self, "_shape_" + name.replace(".", "_"), None)
        if shape is not None:
            shape(obj, params)
        self.objects[collection][object_id] = obj
        return 200, obj, {}

    def _shape_checkout_session(self, obj: dict[str, Any], params: dict[str, Any]) -> None:
        items = [self._line_item(item) for item in params.get("line_items", [])]
        self.line_items[obj["id"]] = items
        total = sum(item["amount_total"] for item in items)
        obj.update(
            url=f"https://checkout.stripe.com/c/pay/{obj['id']}",
            payment_intent=None,  # made when the customer pays (API 2022-08-01 and later)
            status="open",
            payment_status="unpaid",
            amount_subtotal=total,
            amount_total=total,
            currency=items[0]["currency"] if items else None,
        )

    def _line_item(self, item: dict[str, Any]) -> dict[str, Any]:
        quantity = int(item.get("quantity", "1"))
        if "price" in item:
            price = self.objects["prices"].get(item["price"]) or fixture(
                "price", id=item["price"], type="one_time", recurring=None
            )
        else:
            data = item["price_data"]
            price = fixture(
                "price",
                id=self._new_id("price"),
                currency=data["currency"],
                unit_amount=int(data["unit_amount"]),
                unit_amount_decimal=data["unit_amount"],
                product=self._new_id("prod"),
                type="one_time",
                recurring=None,
                active=False,
            )
        amount = int(price["unit_amount"]) * quantity
        name = item.get("price_data", {}).get("product_data", {}).get("name", "item")
        return fixture(
            "line_item",
            id=self._new_id("li"),
            price=price,
            quantity=quantity,
            currency=price["currency"],
            amount_subtotal=amount,
            amount_total=amount,
            description=name,
        )

    def _shape_price(self, obj: dict[str, Any], params: dict[str, Any]) -> None:
        if "recurring" not in params:
            obj.update(type="one_time", recurring=None)
        obj.update(active=True, unit_amount_decimal=str(obj["unit_amount"]))

    @staticmethod
    def _shape_product(obj: dict[str, Any], params: dict[str, Any]) -> None:
        obj.update(active=True, default_price=params.get("default_price"))
        obj["description"] = params.get("description") or None

    def _refuse_refund(self, params: dict[str, Any]) -> Response | None:
        """Stripe's answers to a refund of an unknown payment, or of more than is left."""
        intent_id = params.get("payment_intent", "")
        intent = self.objects["payment_intents"].get(intent_id)
        if intent is None:
            return stripe_error(
                400,
                "invalid_request_error",
                f"No such payment_intent: '{intent_id}'",
                "resource_missing",
            )
        left = self._unrefunded(intent)
        if left <= 0:
            return stripe_error(
                400,
                "invalid_request_error",
                f"Charge {intent['latest_charge']} has already been refunded.",
                "charge_already_refunded",
            )
        if int(params.get("amount", left)) > left:
            return stripe_error(
                400,
                "invalid_request_error",
                f"Refund amount ({params['amount']}) is greater than unrefunded amount on"
                f" charge ({left}).",
                "amount_too_large",
            )
        return None

    def _unrefunded(self, intent: dict[str, Any]) -> int:
        return int(intent["amount"]) - sum(
            int(r["amount"])
            for r in self.objects["refunds"].values()
            if r.get("payment_intent") == intent["id"] and r.get("status") == "succeeded"
        )

    def _shape_refund(self, obj: dict[str, Any], params: dict[str, Any]) -> None:
        intent = self.objects["payment_intents"].get(params.get("payment_intent", ""))
        if intent is not None and "amount" not in params:
            obj["amount"] = self._unrefunded(intent)  # the refund is not stored yet
        obj.update(status="succeeded", charge=None if intent is None else intent["latest_charge"])

    def _expanded(self, collection: str, obj: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        if collection == "checkout/sessions" and "line_items" in expand:
            url = f"/v1/checkout/sessions/{obj['id']}/line_items"
            items = self.line_items.get(obj["id"], [])
            return {**obj, "line_items": self._page(url, items, {})[1]}
        return obj

    def _list(self, collection: str, params: dict[str, Any]) -> Response:
        newest_first = list(reversed(self.objects[collection].values()))
        matching = [obj for obj in newest_first if _matches(obj, params)]
        return self._page(f"/v1/{collection}", matching, params)

    def _page(self, url: str, items: list[dict[str, Any]], params: dict[str, Any]) -> Response:
        after = params.get("starting_after")
        if after is not None:
            ids = [item["id"] for item in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        limit = int(params.get("limit", 10))
        if self.page_size is not None:
            limit = min(limit, self.page_size)
        body = {"object": "list", "data": items[:limit], "has_more": len(items) > limit, "url": url}
        return 200, body, {}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms ACK wait

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def _answer(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        pairs = parse_qsl(url.query if self.command == "GET" else body, keep_blank_values=True)
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake: FakeStripeApi = self.server.fake  # type: ignore[attr-defined]
        status, payload, extra = fake.handle(self.command, url.path, pairs, headers)
        if fake.take_drop():
            self.close_connection = True
            return
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Request-Id", f"req_fake{uuid.uuid4().hex[:14]}")
        for name, value in extra.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the recorded requests are the log."""


FakeStripeApi.handler = _Handler


def running_fake() -> Iterator[FakeStripeApi]:
    """For a pytest fixture: ``fake_stripe = pytest.fixture(running_fake)``."""
    with FakeStripeApi() as fake:
        yield fake
