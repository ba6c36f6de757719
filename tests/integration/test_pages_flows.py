"""The pages people use, driven through Flask's test client: sign-in, packs, checkout form,
success page (hosted and embedded), history with filter and pages, and the tip form."""

from __future__ import annotations

import re

import pytest

from services.payments.errors import Kind, PaymentsError
from tests.support.pages_site import Site, Visitor, form_field, text

ROW = re.compile(r'<tr data-testid="history-row" data-type="([a-z_]+)">')


# -- sign-in and protected pages ----------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/buy-tokens", "/tokens/history?type=grant", "/token-purchase-success?session_id=cs_1"],
)
def test_protected_pages_send_signed_out_visitors_to_sign_in_and_back(
    site: Site, path: str
) -> None:
    visitor = site.visitor()
    response = visitor.get(path)
    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith("/signin?next=")
    page = text(visitor.get(location))
    next_path = form_field(page, "next").replace("&amp;", "&")
    assert next_path == path
    assert visitor.sign_in("back@example.com", next_path=next_path).headers["Location"] == path


def test_a_form_posted_while_signed_out_goes_to_sign_in(site: Site) -> None:
    visitor = site.visitor()
    response = visitor.post("/tokens/tip", data={"csrf_token": visitor.csrf()})
    assert response.headers["Location"] == "/signin?next=/tokens/history"


def test_the_sandbox_sign_in_form_is_labelled_as_development_only(site: Site) -> None:
    page = text(site.visitor().get("/signin"))
    assert "Development sign-in (sandbox only)" in page
    assert '<label for="signin-email">Email</label>' in page
    assert '<label for="signin-username">Username (optional)</label>' in page


def test_a_bad_email_is_explained_and_nobody_is_signed_in(site: Site) -> None:
    visitor = site.visitor()
    response = visitor.post("/signin", data={"csrf_token": visitor.csrf(), "email": "nope"})
    assert response.status_code == 400
    assert 'role="alert">A valid email address is required.' in text(response)
    assert not visitor.signed_in()


def test_the_header_shows_balance_name_and_sign_out(site: Site, alice: Visitor) -> None:
    page = text(alice.get("/buy-tokens"))
    assert re.search(r'data-testid="header-balance">\s*<span[^>]*>100</span> tokens', page)
    assert 'class="account__name"' in page and ">alice<" in page
    assert 'action="/auth/logout"' in page and ">Sign out</button>" in page
    signed_out = text(site.visitor().get("/"))
    assert "header-balance" not in signed_out and ">Sign in</a>" in signed_out


# -- /buy-tokens and the checkout form ---------------------------------------------------------


def test_the_packs_page_shows_every_pack_with_unit_price_and_badges(alice: Visitor) -> None:
    page = text(alice.get("/buy-tokens"))
    assert re.findall(r'data-testid="pack-card" data-pack="(\w+)"', page) == [
        "starter",
        "popular",
        "pro",
        "creator",
    ]
    assert "$9.08 per 100 tokens" in page  # popular: 999 cents for 110 tokens
    assert "$7.14 per 100 tokens" in page
    assert ">Most popular</span>" in page and ">Best value</span>" in page
    assert "Includes 200 bonus tokens" in page
    assert page.count(">Buy</button>") == 4
    assert 'data-testid="buy-error" role="alert" hidden' in page


def test_the_home_page_lists_the_packs_to_anyone(site: Site) -> None:
    response = site.visitor().get("/")
    assert response.status_code == 200
    assert "Popular" in text(response) and "$49.99" in text(response)


def buy(visitor: Visitor, pack: str, key: str) -> tuple[int, str, str]:
    token = visitor.csrf("/buy-tokens")
    response = visitor.post(
        "/buy-tokens/checkout", data={"csrf_token": token, "package": pack, "idempotency_key": key}
    )
    return response.status_code, response.headers.get("Location", ""), text(response)


def test_the_buy_form_starts_one_checkout_however_often_it_is_posted(
    site: Site, alice: Visitor
) -> None:
    first = buy(alice, "popular", "card-1")
    again = buy(alice, "popular", "card-1")
    assert first[0] == 303
    assert "/sandbox/checkout/" in first[1]
    assert again[1] == first[1]
    assert len(list(site.services.store.iter_purchases())) == 1


def test_buy_form_errors_are_shown_in_the_page(alice: Visitor) -> None:
    status, _, page = buy(alice, "gold", "k-gold")
    assert status == 400
    assert 'data-testid="buy-error" role="alert">That pack is not available any more.' in page
    for n in range(5):
        assert buy(alice, "starter", f"k{n}")[0] == 303
    status, _, page = buy(alice, "starter", "k-over")
    assert status == 429
    assert "You&#39;ve reached the purchase limit for now. You can buy again in about" in page


def test_the_limit_page_says_when_to_retry(site: Site, alice: Visitor) -> None:
    for n in range(5):
        buy(alice, "starter", f"k{n}")
    token = alice.csrf("/buy-tokens")
    form = {"csrf_token": token, "package": "starter", "idempotency_key": "k6"}
    response = alice.post("/buy-tokens/checkout", data=form)
    assert 0 < int(response.headers["Retry-After"]) <= 3600


# -- success and cancel pages ------------------------------------------------------------------


def start_embedded(visitor: Visitor, pack: str = "popular") -> dict[str, str]:
    headers = {"X-CSRFToken": visitor.csrf("/buy-tokens"), "Idempotency-Key": f"pi-{pack}"}
    response = visitor.post(
        "/api/tokens/create-payment-intent", json={"package": pack}, headers=headers
    )
    assert response.status_code == 200, text(response)
    body: dict[str, str] = response.get_json()
    return body


def confirm(visitor: Visitor, intent: dict[str, str], card: str) -> int:
    headers = {"X-CSRFToken": visitor.csrf("/buy-tokens")}
    body = {"card_number": card, "client_secret": intent["client_secret"]}
    url = f"/sandbox/payment-intents/{intent['payment_intent_id']}/confirm"
    return visitor.post(url, json=body, headers=headers).status_code


def success_page(visitor: Visitor, intent: dict[str, str]) -> str:
    response = visitor.get(f"/token-purchase-success?payment_intent={intent['payment_intent_id']}")
    assert response.status_code == 200
    return text(response)


def test_an_embedded_payment_is_credited_by_the_success_page(site: Site, alice: Visitor) -> None:
    intent = start_embedded(alice)
    assert confirm(alice, intent, "4242 4242 4242 4242") == 200
    page = success_page(alice, intent)
    assert 'data-testid="purchase-state">paid<' in page
    assert 'data-testid="balance">210<' in page  # 100 granted + 110 bought
    assert f'data-testid="receipt">{intent["purchase_id"]}<' in page
    assert 'data-testid="celebration">' in page  # shown, not hidden
    assert 'data-testid="confirming" role="status" hidden' in page
    assert site.balance(alice.user_id) == 210
    success_page(alice, intent)  # loading it again credits nothing more
    assert site.balance(alice.user_id) == 210


def test_an_unpaid_payment_shows_confirming(alice: Visitor) -> None:
    intent = start_embedded(alice)
    assert confirm(alice, intent, "4000 0000 0000 0002") == 402
    page = success_page(alice, intent)
    assert 'data-testid="purchase-state">pending<' in page
    assert 'data-testid="confirming" role="status">' in page
    assert 'data-testid="celebration" hidden' in page
    assert "success.js" in page  # the poller


@pytest.mark.parametrize(
    ("kind", "status", "message"),
    [
        (Kind.TRANSIENT, 503, "Payments are temporarily unavailable."),
        (Kind.REFUSED, 409, "The payment provider could not start this payment."),
        (Kind.FAILED, 502, "The payment provider could not start this payment."),
    ],
)
def test_the_buy_form_answers_a_provider_error_with_its_own_status(
    site: Site,
    alice: Visitor,
    monkeypatch: pytest.MonkeyPatch,
    kind: Kind,
    status: int,
    message: str,
) -> None:
    def provider_error(**kwargs: object) -> None:
        raise PaymentsError("provider detail", kind)

    monkeypatch.setattr(site.services.payments, "create_checkout_session", provider_error)
    answered, _, page = buy(alice, "popular", f"k-{kind.name}")
    assert answered == status
    assert f'data-testid="buy-error" role="alert">{message}' in page
    assert "provider detail" not in page


def test_the_success_page_survives_a_payment_provider_outage(
    site: Site, alice: Visitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    intent = start_embedded(alice)

    def down(payment_intent_id: str) -> dict[str, str]:
        raise PaymentsError("stripe is down")

    monkeypatch.setattr(site.services.payments, "retrieve_payment_intent", down)
    page = success_page(alice, intent)
    assert 'data-testid="purchase-state">pending<' in page
    assert "Confirming your payment" in page


def test_someone_else_s_payment_is_not_found(alice: Visitor, bob: Visitor) -> None:
    intent = start_embedded(alice)
    response = bob.get(f"/token-purchase-success?payment_intent={intent['payment_intent_id']}")
    assert response.status_code == 404
    assert intent["purchase_id"] not in text(response)


def test_the_cancel_page_leads_back_to_the_packs(site: Site) -> None:
    page = text(site.visitor().get("/token-purchase-cancel"))
    assert '<a class="btn btn--primary" href="/buy-tokens">Back to the token packs</a>' in page


# -- history -----------------------------------------------------------------------------------


def test_history_filters_by_type_and_pages_with_older_and_newest(
    site: Site, alice: Visitor, bob: Visitor
) -> None:
    for n in range(24):
        site.grant(alice.user_id, 1, f"g{n}")
    tip(alice, "bob", "5")
    first = text(alice.get("/tokens/history"))
    types = ROW.findall(first)
    assert len(types) == 20 and types[0] == "transfer"
    older = re.search(r'href="(/tokens/history\?cursor=[^"]+)" rel="next">Older</a>', first)
    assert older, "an Older link"
    second = text(alice.get(older.group(1).replace("&amp;", "&")))
    assert len(ROW.findall(second)) == 6  # 26 entries in all
    assert 'href="/tokens/history">Newest</a>' in second
    assert "Older</a>" not in second
    tips = text(alice.get("/tokens/history?type=transfer"))
    assert ROW.findall(tips) == ["transfer"]
    assert '<option value="transfer" selected>' in tips
    grants = text(alice.get("/tokens/history?type=grant"))
    assert set(ROW.findall(grants)) == {"grant"}
    assert 'href="/tokens/history?type=grant&amp;cursor=' in grants  # the filter survives paging


def test_history_amounts_carry_a_sign_and_words_not_only_colour(
    alice: Visitor, bob: Visitor
) -> None:
    tip(alice, "bob", "30")
    page = text(alice.get("/tokens/history"))
    assert re.search(r'amount--out">\s*<span class="visually-hidden">Debit </span>\u221230', page)
    assert re.search(r'amount--in">\s*<span class="visually-hidden">Credit </span>\+100', page)
    assert "Tip to @bob" in page


def test_an_unknown_history_type_is_a_clear_400(alice: Visitor) -> None:
    response = alice.get("/tokens/history?type=bogus")
    assert response.status_code == 400
    assert "Unknown transaction type" in text(response)


# -- tips --------------------------------------------------------------------------------------


def tip(visitor: Visitor, recipient: str, amount: str, key: str | None = None) -> tuple[int, str]:
    page = text(visitor.get("/tokens/history"))
    form = {
        "csrf_token": form_field(page, "csrf_token"),
        "idempotency_key": key or form_field(page, "idempotency_key"),
        "recipient": recipient,
        "amount": amount,
        "note": "thanks",
    }
    response = visitor.post("/tokens/tip", data=form)
    return response.status_code, response.headers.get("Location") or text(response)


def test_a_tip_through_the_form_moves_tokens_and_says_so(
    site: Site, alice: Visitor, bob: Visitor
) -> None:
    assert tip(alice, "@bob", "30", key="tip-1") == (303, "/tokens/history")
    page = text(alice.get("/tokens/history"))
    assert 'data-testid="tip-result" role="status">Sent 30 tokens to @bob.' in page
    assert (site.balance(alice.user_id), site.balance(bob.user_id)) == (70, 30)
    assert "Tip from @alice" in text(bob.get("/tokens/history"))
    assert tip(alice, "bob", "30", key="tip-1")[0] == 303  # the same form again: one tip
    assert (site.balance(alice.user_id), site.balance(bob.user_id)) == (70, 30)


@pytest.mark.parametrize(
    ("recipient", "amount", "status", "message"),
    [
        ("bob", "", 400, "Enter how many tokens to send."),
        ("bob", "abc", 400, "The amount must be a whole number of tokens, like 25."),
        ("bob", "2.5", 400, "The amount must be a whole number of tokens, like 25."),
        ("bob", "-5", 400, "The amount must be a whole number of tokens, like 25."),
        ("bob", "0", 400, "Send at least 1 token."),
        ("bob", "\u0661\u0662", 400, "The amount must be a whole number of tokens, like 25."),
        ("bob", "1000", 402, "Not enough tokens for this tip: 100 tokens available, 1000 needed."),
        ("nobody", "5", 404, "Nobody is called \u201cnobody\u201d."),
        ("alice", "5", 400, "You can&#39;t tip yourself"),
    ],
)
def test_bad_tips_are_explained_and_move_nothing(
    site: Site, alice: Visitor, bob: Visitor, recipient: str, amount: str, status: int, message: str
) -> None:
    code, page = tip(alice, recipient, amount)
    assert code == status
    assert re.search(r'data-testid="tip-error" role="alert">[^<]*' + re.escape(message), page)
    assert f'value="{amount}"' in page  # what they typed is kept
    assert (site.balance(alice.user_id), site.balance(bob.user_id)) == (100, 0)
