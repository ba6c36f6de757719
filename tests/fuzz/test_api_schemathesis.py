"""schemathesis against the app under gunicorn, from openapi.yaml.

Signed in as operators who bought a pack in the sandbox (so spending, tips,
holds, grants and refunds can succeed), with a third user, @alice, to tip.
Each operation is fuzzed on its own (schemathesis's examples, coverage and
fuzzing phases, valid and invalid input), then as linked sequences (a hold
and its capture; an embedded payment, its confirmation and its refund).
Every response must be documented: no 5xx, and a documented status, content
type, headers and body. Afterwards the ledger must still add up, through the
API and by `tokens reconcile`.

The webhook is fuzzed by test_webhook_fuzz.py with signed payloads; logout is
left out because it would sign the fuzzer out, and the sign-in operations are
called as a signed-out visitor: signing in ends the session the cookie names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import schemathesis

from api.json_api.openapi import SPEC_PATH
from services.auth import dev_user_id
from services.payments.checkout import purchase_id_for
from tests.fuzz import support
from tests.support.limits import LOAD_LIMITS
from tests.support.purchases import Buyer, wait_for
from tests.support.server import AppServer

OPERATOR = "fuzzer@example.com"
SEQUENCES = "sequences@example.com"  # its own purchase limits, for the linked sequences
FRIEND = "alice@example.com"
SEED_PURCHASES = {OPERATOR: ("creator", "fuzz-seed-creator"), SEQUENCES: ("pro", "fuzz-seed-pro")}
DEFAULT_EXAMPLES = 40  # per operation; with the coverage phase the module takes under a minute
DEFAULT_SCENARIOS = 40
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


def seed_purchase_ids() -> list[str]:
    return [purchase_id_for(dev_user_id(email), key) for email, (_, key) in SEED_PURCHASES.items()]


def known_values() -> dict[str, Any]:
    """Values the app knows, drawn half the time; random ones otherwise.

    Random pack names, usernames and purchase ids are almost never real, so
    without these most requests would stop at "unknown" and never reach the
    code that moves tokens.
    """
    dictionaries = {
        "packs": ["starter", "popular", "pro", "creator"],
        "people": ["@alice", "alice", "fuzzer", dev_user_id(FRIEND), dev_user_id(OPERATOR)],
        "amounts": [1, 2, 3, 7, 50, 110, 499],
        "cards": ["4242 4242 4242 4242", "4000 0000 0000 0002"],
        "purchases": seed_purchase_ids(),
    }
    bindings = {
        "body.package": "packs",
        "body.recipient": "people",
        "body.user": "people",
        "body.amount": "amounts",
        "body.card_number": "cards",
        "body.purchase_id": "purchases",
        "path.purchase_id": "purchases",
    }
    return {
        "dictionaries": {name: {"values": values} for name, values in dictionaries.items()},
        "parameters": {
            key: {"dictionary": name, "probability": 0.5} for key, name in bindings.items()
        },
    }


def fuzz_config() -> schemathesis.Config:
    fuzz_seed = support.seed()
    return schemathesis.Config.from_dict(
        {
            **({"seed": fuzz_seed} if fuzz_seed is not None else {}),
            **known_values(),
            "request-timeout": 30,
            "suppress-health-check": ["too_slow", "filter_too_much", "data_too_large"],
            "generation": {
                "mode": "all",
                "max-examples": support.examples(DEFAULT_EXAMPLES),
                "deterministic": fuzz_seed is None,
                "database": "none",
                # The session cookie and CSRF token are sent as they are, never generated.
                "with-security-parameters": False,
            },
            "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}},
            "phases": {"stateful": {"max-steps": 10}},
        }
    )


@dataclass
class Target:
    server: AppServer
    operator: Buyer  # signs the per-operation fuzzing in
    sequences: Buyer  # signs the linked sequences in
    friend: Buyer

    def everyone(self) -> list[Buyer]:
        return [self.operator, self.sequences, self.friend]


@pytest.fixture(scope="module")
def target() -> Iterator[Target]:
    server = AppServer({"OPERATOR_EMAILS": f"{OPERATOR},{SEQUENCES}", **LOAD_LIMITS}).start()
    try:
        operator = Buyer(server.url, OPERATOR, "fuzzer")
        sequences = Buyer(server.url, SEQUENCES, "sequences")
        friend = Buyer(server.url, FRIEND, "alice")
        for email, buyer in ((OPERATOR, operator), (SEQUENCES, sequences)):
            pack, key = SEED_PURCHASES[email]
            started = support.pay_in_sandbox(server, buyer, pack, key)
            assert started["purchase_id"] in seed_purchase_ids()
        yield Target(server, operator, sequences, friend)
    finally:
        server.stop()


SIGN_IN_PATHS = frozenset({"/auth/dev-login", "/auth/session"})


def signed_in(buyer: Buyer) -> dict[str, str]:
    """What a browser of ``buyer`` sends: the session cookie and the CSRF token."""
    cookie = buyer.http.cookies.get("session")
    assert cookie, "dev-login set no session cookie"
    return {"Cookie": f"session={cookie}", "X-CSRFToken": buyer.csrf}


def headers_for(case: schemathesis.Case[Any], buyer: Buyer) -> dict[str, str]:
    """Signed in as ``buyer``, but for sign-in itself, which would replace that session."""
    return {} if case.path in SIGN_IN_PATHS else signed_in(buyer)


# The document in the repository; test_openapi.py checks the app serves exactly this.
schema = (
    schemathesis.openapi.from_path(SPEC_PATH, config=fuzz_config())
    .exclude(path="/api/stripe/webhook")
    .exclude(path="/auth/logout")
)


@schema.parametrize()
def test_every_operation_answers_as_documented(
    case: schemathesis.Case[Any], target: Target
) -> None:
    case.call_and_validate(base_url=target.server.url, headers=headers_for(case, target.operator))


# Inputs that once got answers the document does not allow, kept as fixed cases.
REAL_INTENT = "a payment intent made for the test"
FOUND = (
    # 500: str.isdigit() took "²" as a limit that int() then refused (other non-ASCII digits too).
    ("/api/tokens/transactions", "GET", {"query": {"limit": "²"}}),
    ("/api/tokens/transactions", "GET", {"query": {"limit": "\u0661\u0660"}}),
    # 500: a non-ASCII client secret reached hmac.compare_digest, which takes ASCII only.
    (
        "/sandbox/payment-intents/{payment_intent_id}/confirm",
        "POST",
        {
            "path_parameters": {"payment_intent_id": REAL_INTENT},
            "body": {"card_number": "4242 4242 4242 4242", "client_secret": "é"},
        },
    ),
    # An HTML error page: no JSON body, on a sandbox path that is JSON-only.
    (
        "/sandbox/payment-intents/{payment_intent_id}/confirm",
        "POST",
        {"path_parameters": {"payment_intent_id": "0"}},
    ),
)


@pytest.mark.parametrize(("path", "method", "parts"), FOUND)
def test_inputs_the_fuzzing_found_answer_as_documented(
    target: Target, path: str, method: str, parts: dict[str, Any]
) -> None:
    if parts.get("path_parameters") == {"payment_intent_id": REAL_INTENT}:
        intent = target.friend.post(
            "/api/tokens/create-payment-intent", json={"package": "starter"}
        ).json()
        parts = {**parts, "path_parameters": {"payment_intent_id": intent["payment_intent_id"]}}
    case = schema[path][method].Case(**parts)
    response = case.call_and_validate(
        base_url=target.server.url, headers=signed_in(target.operator)
    )
    assert 400 <= response.status_code < 500


def test_linked_sequences_answer_as_documented_and_the_ledger_adds_up(target: Target) -> None:
    """Runs last in this module, so the checks below also cover the per-operation run."""

    class Sequences(schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: schemathesis.Case[Any]) -> dict[str, object]:
            return {"base_url": target.server.url, "headers": headers_for(case, target.sequences)}

    Sequences.run(settings=support.hypothesis_settings(support.examples(DEFAULT_SCENARIOS)))
    # Payments and refunds the sequences made reach the ledger by webhook: let them land.
    wait_for(lambda: support.pending_deliveries(target.server) == 0, "sandbox deliveries", 60)

    support.assert_accounts_add_up(target.everyone())
    support.assert_reconciles(target.server)
    # Signed in for real: beyond the seeded purchase, the fuzzing moved both users' tokens.
    for buyer in (target.operator, target.sequences):
        kinds = [entry["type"] for entry in support.history(buyer)]
        assert len(kinds) > 1 and kinds[-1] == "purchase", kinds
