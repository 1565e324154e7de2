"""The fast canonical-JSON writer must agree with the rfc8785 package byte for byte, on any JSON value."""

import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from veriml.codec import canonical_json

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
keys = st.text()
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)
no_float_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)


def reference(value):
    try:
        return rfc8785.dumps(value)
    except Exception:  # lone surrogates and the like: both sides must refuse
        return None


def ours(value):
    try:
        return canonical_json(value)
    except Exception:
        return None


@given(no_float_values)
def test_fast_path_matches_rfc8785(value):
    assert ours(value) == reference(value)


@given(values)
def test_every_value_matches_rfc8785(value):
    assert ours(value) == reference(value)
