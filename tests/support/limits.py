"""Request limits for the tests that drive load through a few users from one address.

The storm, crash and fuzz tests measure correctness under load, not the
limits, so they raise every group through the settings (the limits stay on);
tests/integration/test_rate_limits.py checks the limits themselves.
"""

from __future__ import annotations

LOAD_LIMITS = {
    "RATELIMIT_SIGNIN": "100000 per minute",
    "RATELIMIT_WRITES": "100000 per minute",
    "RATELIMIT_CHECKOUT": "100000 per minute",
    "RATELIMIT_ADMIN": "100000 per minute",
}
