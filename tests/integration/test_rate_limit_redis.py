"""Two gunicorn servers sharing one Redis spend one request budget per user.

This is how several Cloud Run instances share their limits
(RATELIMIT_STORAGE_URI=redis://..., e.g. Memorystore). In memory, each
process counts on its own: the second half of the test shows the difference.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.firestore_emulator import free_port
from tests.support.pages_site import Site
from tests.support.purchases import Buyer
from tests.support.redis_server import RedisServer
from tests.support.server import AppServer
from tests.support.stores import grant

BUDGET = 4


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    try:
        server.start()
    except RuntimeError as exc:
        pytest.fail(f"could not start redis-server: {exc}", pytrace=False)
    yield server
    server.stop()


def two_servers(tmp_path: Path, storage_uri: str) -> list[AppServer]:
    env = {
        "STORE_URL": f"sqlite:///{tmp_path}/tokens.db",  # one database: the same users
        "RATELIMIT_WRITES": f"{BUDGET} per minute",
        "RATELIMIT_STORAGE_URI": storage_uri,
    }
    return [AppServer(env).start() for _ in range(2)]


def spend_on(server: AppServer, buyer: Buyer) -> int:
    """Spend one token through ``server`` with the buyer's session cookie."""
    response = buyer.http.post(
        f"{server.url}/api/tokens/spend",
        json={"amount": 1, "reason": "render"},
        headers={"X-CSRFToken": buyer.csrf, "Idempotency-Key": uuid.uuid4().hex},
        timeout=30,
    )
    return response.status_code


def alternate(tmp_path: Path, storage_uri: str) -> tuple[list[int], int]:
    servers = two_servers(tmp_path, storage_uri)
    try:
        buyer = Buyer(servers[0].url, f"{uuid.uuid4().hex[:8]}@example.com")
        grant(servers[0], buyer.user_id, 100, key="start")
        codes = [spend_on(servers[n % 2], buyer) for n in range(BUDGET + 2)]
        return codes, buyer.balance()
    finally:
        for server in servers:
            server.stop()


def test_two_servers_on_one_redis_share_the_budget(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    codes, balance = alternate(tmp_path, redis_server.url)
    assert codes == [200] * BUDGET + [429, 429]
    assert balance == 100 - BUDGET
    counters = redis.Redis.from_url(redis_server.url).keys("*token-store*")
    assert counters, "no request counter was written to Redis"


def test_in_memory_each_server_counts_alone(tmp_path: Path) -> None:
    codes, balance = alternate(tmp_path, "memory://")
    assert codes == [200] * (BUDGET + 2)
    assert balance == 100 - BUDGET - 2


def test_a_redis_that_does_not_answer_falls_back_to_counting_in_memory(tmp_path: Path) -> None:
    nothing_listens = f"redis://127.0.0.1:{free_port()}/0"
    site = Site(tmp_path, RATELIMIT_STORAGE_URI=nothing_listens, RATELIMIT_SIGNIN="2 per minute")
    try:
        client = site.visitor().client
        codes = [
            client.post("/auth/dev-login", json={"email": f"u{n}@example.com"}).status_code
            for n in range(3)
        ]
        assert codes == [200, 200, 429]
    finally:
        site.close()
