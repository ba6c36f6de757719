"""Hypothesis strategies for the values a Firestore document holds, shared by the tests
that check the store's own Writes and snapshots against the library's."""

from __future__ import annotations

from datetime import UTC

from hypothesis import strategies as st

# Plain field names and odd ones (empty, spaces, dots, non-ASCII).
FIELD_NAMES = st.one_of(
    st.from_regex(r"[_a-zA-Z][_a-zA-Z0-9]{0,8}", fullmatch=True), st.text(max_size=6)
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.datetimes(timezones=st.just(UTC)),
)
