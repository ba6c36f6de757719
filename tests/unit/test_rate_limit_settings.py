"""Request limits come from the settings, with defaults, and a bad value stops start-up."""

from __future__ import annotations

import pytest

from config.errors import ConfigError
from config.limits import RateLimits
from config.settings import load_settings


def test_defaults_limit_every_group_in_memory() -> None:
    limits = load_settings({}).rate_limits
    assert limits == RateLimits()
    assert limits.storage_uri == "memory://"
    assert limits.proxy_hops == 0
    assert limits.checkout == "20 per minute;100 per hour"


def test_production_trusts_one_proxy_hop_by_default() -> None:
    from tests.unit.test_settings import PRODUCTION

    assert load_settings(PRODUCTION).rate_limits.proxy_hops == 1


def test_limits_and_a_shared_store_are_read_from_the_environment() -> None:
    limits = load_settings(
        {
            "RATELIMIT_SIGNIN": "5 per minute",
            "RATELIMIT_WRITES": "1000 per second",
            "RATELIMIT_CHECKOUT": "50 per hour;200 per day",
            "RATELIMIT_ADMIN": "10/minute",
            "RATELIMIT_STORAGE_URI": "redis://10.0.0.3:6379/0",
            "RATELIMIT_PROXY_HOPS": "2",
        }
    ).rate_limits
    assert (limits.signin, limits.writes, limits.admin) == (
        "5 per minute",
        "1000 per second",
        "10/minute",
    )
    assert (limits.storage_uri, limits.proxy_hops) == ("redis://10.0.0.3:6379/0", 2)


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("RATELIMIT_SIGNIN", "lots", "RATELIMIT_SIGNIN"),
        ("RATELIMIT_WRITES", "0 per minute", "RATELIMIT_WRITES"),
        ("RATELIMIT_ADMIN", "10 per fortnight", "RATELIMIT_ADMIN"),
        # Tighter than the purchase limits (5 an hour, 20 a day): buyers would meet it first.
        ("RATELIMIT_CHECKOUT", "3 per hour", "purchase limits"),
        ("RATELIMIT_CHECKOUT", "100 per hour;10 per day", "purchase limits"),
        ("RATELIMIT_STORAGE_URI", "memcached://cache:11211", "RATELIMIT_STORAGE_URI"),
        ("RATELIMIT_STORAGE_URI", "localhost:6379", "RATELIMIT_STORAGE_URI"),
        ("RATELIMIT_PROXY_HOPS", "-1", "RATELIMIT_PROXY_HOPS"),
    ],
)
def test_a_bad_limit_stops_start_up_naming_it(name: str, value: str, named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({name: value})
    assert named in str(caught.value)
