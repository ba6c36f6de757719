"""Time on every store: purchase limits and holds at their window edges, UTC storage.

A hand-moved clock stands in for ``utc_now``, so each edge is hit to the
microsecond. The semantics pinned here:

* a purchase counts toward a window while ``now - created_at < window``: the
  hour and day windows are half-open, a purchase leaves exactly 3600 s
  (86400 s) after it started;
* a pending checkout counts while ``now - created_at < open_session_s`` (35 min);
  one awaiting a bank debit counts for the whole window;
* ``retry_after_s`` is ``floor(wait) + 1`` where ``wait`` is the time until the
  oldest counted purchase leaves the window: never early, one second late when
  the wait is a whole number of seconds;
* a hold is active while ``now < expires_at``: at exactly ``expires_at`` it no
  longer counts, cannot be captured, and ``release_expired_holds`` releases it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.errors import HoldNotFound, InsufficientBalance, InvalidAmount, PurchaseLimitReached
from services.ledger.model import TxnType, format_time
from services.payments.model import Purchase, PurchaseLimits, PurchaseState, User
from services.security import SecurityService
from services.store.port import Store
from services.tokens import TokenLedger
from tests.contract.conftest import StoreFactory
from tests.support.clock import Clock
from tests.support.records import purchase_record

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
LIMITS = PurchaseLimits()
BUYER = "buyer"
# What format_time writes: UTC, microseconds, "Z".
UTC_STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|\+00:00)$")


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def store(store_factory: StoreFactory) -> Store:
    made = store_factory()
    made.ensure_user(User(id=BUYER, created_at=format_time(T0)), T0)
    return made


@pytest.fixture
def ledger(store: Store, clock: Clock) -> TokenLedger:
    made = TokenLedger(store, clock)
    made.credit(BUYER, 100, key="fund", type=TxnType.GRANT)
    return made


def new_purchase(n: int, at: datetime) -> Purchase:
    return purchase_record(f"pur_{n}", BUYER, at)


def start(store: Store, clock: Clock, n: int, state: PurchaseState | None = None) -> Purchase:
    """Start checkout ``n`` now under the default limits; ``state`` then moves it on."""
    now = clock()
    started = store.start_purchase(new_purchase(n, now), LIMITS, now)
    assert started.id == f"pur_{n}" and started.created_at == format_time(now)
    if state is None:
        return started
    return store.update_purchase(
        started.id, lambda p: p.with_changes(format_time(now), state=state)
    )


def refused(store: Store, clock: Clock, n: int) -> PurchaseLimitReached:
    with pytest.raises(PurchaseLimitReached) as caught:
        start(store, clock, n)
    assert store.get_purchase(f"pur_{n}") is None  # a refusal writes nothing
    return caught.value


def test_the_default_limits_are_the_designed_ones() -> None:
    assert (LIMITS.per_hour, LIMITS.per_day, LIMITS.open_session_s) == (5, 20, 35 * 60)


# -- the hour ------------------------------------------------------------------------


def five_paid_in_the_first_40_minutes(store: Store, clock: Clock) -> None:
    """At T0, +10, +20, +30 and +40 min: the one at T0 is the first to leave the hour."""
    for n in range(5):
        clock.at(600 * n)
        start(store, clock, n, PurchaseState.PAID)


@pytest.mark.parametrize(
    ("offset_s", "retry_after_s"),
    [(3599, 2), (3599.5, 1), (3599.999999, 1), (3600, None), (3601, None)],
)
def test_the_hour_window_moves_exactly_3600_seconds_after_the_first_purchase(
    store: Store, clock: Clock, offset_s: float, retry_after_s: int | None
) -> None:
    five_paid_in_the_first_40_minutes(store, clock)
    clock.at(offset_s)
    if retry_after_s is not None:
        refusal = refused(store, clock, 5)
        assert "per hour" in refusal.message
        assert refusal.retry_after_s == retry_after_s
        clock.advance(refusal.retry_after_s)  # the hint is never early
    start(store, clock, 5)
    # The 6th now fills the hour again until the purchase of T0 + 10 min leaves it.
    second = refused(store, clock, 6)
    wait = (T0 + timedelta(seconds=600 + 3600) - clock()).total_seconds()
    assert second.retry_after_s == int(wait) + 1


def test_retry_after_is_one_second_late_for_a_whole_second_wait(store: Store, clock: Clock) -> None:
    five_paid_in_the_first_40_minutes(store, clock)
    clock.at(3599)
    assert refused(store, clock, 5).retry_after_s == 2
    clock.advance(1)  # Retry-After said 2, yet 1 is enough
    start(store, clock, 5)


# -- the day ---------------------------------------------------------------------------


def twenty_paid_every_15_minutes(store: Store, clock: Clock) -> None:
    """Four an hour, never five in one: only the day's limit is ever in play."""
    for n in range(20):
        clock.at(900 * n)
        start(store, clock, n, PurchaseState.PAID)


@pytest.mark.parametrize(
    ("offset_s", "retry_after_s"), [(86399, 2), (86399.999999, 1), (86400, None), (86401, None)]
)
def test_the_day_window_moves_exactly_86400_seconds_after_the_first_purchase(
    store: Store, clock: Clock, offset_s: float, retry_after_s: int | None
) -> None:
    twenty_paid_every_15_minutes(store, clock)
    clock.at(offset_s)
    if retry_after_s is not None:
        refusal = refused(store, clock, 20)
        assert "per day" in refusal.message
        assert refusal.retry_after_s == retry_after_s
        clock.advance(refusal.retry_after_s)
    start(store, clock, 20)
    # Twenty in the day again, until the purchase of T0 + 15 min leaves it.
    second = refused(store, clock, 21)
    assert "per day" in second.message
    wait = (T0 + timedelta(seconds=900 + 86400) - clock()).total_seconds()
    assert second.retry_after_s == int(wait) + 1


# -- open checkouts --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "offset_s", "retry_after_s"),
    [
        (PurchaseState.PENDING, 2099.999999, 1501),
        (PurchaseState.PENDING, 2100, None),
        (PurchaseState.AWAITING_PAYMENT, 2100, 1501),
        (PurchaseState.AWAITING_PAYMENT, 3600, None),
    ],
)
def test_an_unpaid_checkout_stops_counting_after_35_minutes_a_bank_debit_does_not(
    store: Store, clock: Clock, state: PurchaseState, offset_s: float, retry_after_s: int | None
) -> None:
    for n in range(5):
        start(store, clock, n, None if state is PurchaseState.PENDING else state)
    clock.at(offset_s)
    if retry_after_s is None:
        start(store, clock, 5)
        return
    # The hint names the hour's edge even when the counted purchases are checkouts
    # that stop counting sooner: they could still be paid, and then count all hour.
    assert refused(store, clock, 5).retry_after_s == retry_after_s


# -- holds -------------------------------------------------------------------------------


def test_a_hold_expires_at_now_plus_its_ttl(ledger: TokenLedger, clock: Clock) -> None:
    hold = ledger.hold(BUYER, 30, key="h", ttl_s=60)
    account = ledger.balance(BUYER)
    assert account.holds[hold.id] == (30, format_time(T0 + timedelta(seconds=60)))
    for offset_s, held in ((59, 30), (59.999999, 30), (60, 0), (61, 0)):
        now = format_time(clock.at(offset_s))
        assert (account.held(now), account.available(now)) == (held, 100 - held), offset_s


@pytest.mark.parametrize(("offset_s", "spendable"), [(59.999999, False), (60, True)])
def test_the_store_stops_reserving_a_hold_at_its_expiry(
    ledger: TokenLedger, clock: Clock, offset_s: float, spendable: bool
) -> None:
    ledger.hold(BUYER, 30, key="h", ttl_s=60)
    clock.at(offset_s)
    if spendable:
        ledger.spend(BUYER, 100, key="all")
        assert ledger.balance(BUYER).balance == 0
        return
    with pytest.raises(InsufficientBalance):
        ledger.spend(BUYER, 71, key="too-much")
    ledger.spend(BUYER, 70, key="the-rest")
    assert ledger.balance(BUYER).balance == 30


@pytest.mark.parametrize(("offset_s", "captured"), [(59, True), (60, False), (61, False)])
def test_a_hold_can_be_captured_until_just_before_its_expiry(
    ledger: TokenLedger, clock: Clock, offset_s: float, captured: bool
) -> None:
    hold = ledger.hold(BUYER, 30, key="h", ttl_s=60)
    clock.at(offset_s)
    if captured:
        ledger.capture(BUYER, hold.id, 10)
        assert ledger.balance(BUYER).balance == 90
        return
    with pytest.raises(HoldNotFound):
        ledger.capture(BUYER, hold.id, 10)
    assert ledger.balance(BUYER).balance == 100
    assert [e.type for e in ledger.history(BUYER).entries] == [TxnType.HOLD, TxnType.GRANT]


def test_release_expired_holds_releases_a_hold_at_its_expiry_and_not_before(
    ledger: TokenLedger, clock: Clock
) -> None:
    short = ledger.hold(BUYER, 30, key="short", ttl_s=60)
    long = ledger.hold(BUYER, 20, key="long", ttl_s=120)
    clock.at(59.999999)
    assert ledger.release_expired_holds() == 0
    clock.at(60)
    assert ledger.release_expired_holds() == 1
    account = ledger.balance(BUYER)
    assert set(account.holds) == {long.id}
    assert account.available(format_time(clock())) == 80
    released = ledger.history(BUYER).entries[0]
    assert (released.type, released.created_at) == (TxnType.HOLD_RELEASE, format_time(clock()))
    assert ledger.release_expired_holds() == 0  # released once
    with pytest.raises(HoldNotFound):
        ledger.capture(BUYER, short.id, 1)
    clock.at(120)
    assert ledger.release_expired_holds() == 1
    assert ledger.balance(BUYER).holds == {}


@pytest.mark.parametrize(("ttl_s", "ok"), [(1, True), (86_400, True), (0, False), (86_401, False)])
def test_a_hold_lasts_one_second_to_one_day(ledger: TokenLedger, ttl_s: int, ok: bool) -> None:
    if ok:
        hold = ledger.hold(BUYER, 1, key="h", ttl_s=ttl_s)
        expires = format_time(T0 + timedelta(seconds=ttl_s))
        assert ledger.balance(BUYER).holds[hold.id] == (1, expires)
        return
    with pytest.raises(InvalidAmount):
        ledger.hold(BUYER, 1, key="h", ttl_s=ttl_s)
    assert ledger.balance(BUYER).holds == {}


# -- UTC ---------------------------------------------------------------------------------


@pytest.fixture
def tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process runs nine hours ahead of UTC, as a server in Tokyo might."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    assert time.localtime(0).tm_hour == 9  # the zone really took effect
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("tokyo")
def test_every_stored_time_is_utc_whatever_the_process_and_clock_zones(store: Store) -> None:
    # 18:00 in Tokyo is 09:00 UTC: a clock in another zone is normalised, not copied.
    clock = Clock(datetime(2026, 3, 1, 18, 0, tzinfo=ZoneInfo("Asia/Tokyo")))
    store.ensure_user(User(id="ann", created_at=format_time(clock())), clock())
    ledger = TokenLedger(store, clock)
    ledger.credit("ann", 100, key="fund", type=TxnType.GRANT)
    hold = ledger.hold("ann", 10, key="h", ttl_s=60)
    store.ensure_user(User(id=BUYER), clock())
    start(store, clock, 1)
    clock.advance(30)
    store.update_purchase(
        "pur_1", lambda p: p.with_changes(format_time(clock()), state=PurchaseState.PAID)
    )
    SecurityService(store, clock=clock).alert("amount_mismatch", "warning", user_id="ann")

    user, account = store.get_user("ann"), store.get_account("ann")
    purchase = store.get_purchase("pur_1")
    assert user is not None and purchase is not None
    entries = store.list_entries("ann", 10, None, None)
    alerts = [a for a in store.list_alerts() if a.user_id == "ann"]
    txn = store.get_transaction(hold.id)
    assert txn is not None and len(entries) == 2 and len(alerts) == 1
    start_utc, later_utc = "2026-03-01T09:00:00.000000Z", "2026-03-01T09:00:30.000000Z"
    stamps = {
        "user.created_at": (user.created_at, start_utc),
        "account.created_at": (account.created_at, start_utc),
        "hold expires_at": (account.holds[hold.id][1], "2026-03-01T09:01:00.000000Z"),
        "transaction.created_at": (txn.created_at, start_utc),
        "purchase.created_at": (purchase.created_at, start_utc),
        "purchase.updated_at": (purchase.updated_at, later_utc),
        "alert.created_at": (alerts[0].created_at, later_utc),
        **{f"entry {e.type}.created_at": (e.created_at, start_utc) for e in entries},
    }
    for name, (stored, expected) in stamps.items():
        assert UTC_STAMP.match(stored), (name, stored)
        assert stored == expected, name


@pytest.mark.usefixtures("tokyo")
def test_a_naive_time_is_refused_rather_than_read_in_the_local_zone() -> None:
    # Read in the process's zone, 09:00 would be stored nine hours off (00:00Z).
    with pytest.raises(ValueError, match="aware datetime"):
        format_time(datetime(2026, 3, 1, 9, 0))
    assert format_time(datetime(2026, 3, 1, 9, 0, tzinfo=UTC)) == "2026-03-01T09:00:00.000000Z"
