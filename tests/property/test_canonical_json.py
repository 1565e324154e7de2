"""The fast canonical-JSON writer must agree with the rfc8785 package byte for byte, on any JSON value."""

import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from veriml.codec import Fragment, canonical_json, canonical_json_of_plain

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


def ours(value, write=canonical_json):
    try:
        return write(value)
    except Exception:
        return None


@given(no_float_values)
def test_fast_path_matches_rfc8785(value):
    assert ours(value) == reference(value)


@given(values)
def test_every_value_matches_rfc8785(value):
    assert ours(value) == reference(value)


def ours_of_plain(value):
    return ours(value, canonical_json_of_plain)


@given(values)
def test_the_msgspec_path_matches_rfc8785(value):
    assert ours_of_plain(value) == reference(value)


@given(st.integers(-(2**60), 2**60))
def test_the_msgspec_path_hands_large_integers_on(number):
    assert ours_of_plain({"n": number}) == ours({"n": number})


def test_the_msgspec_path_writes_fragments_as_they_are():
    fragment = Fragment(b'{"b":"\\u001f","a":[1,2]}')
    assert canonical_json_of_plain({"z": fragment, "a": "é"}) == canonical_json({"z": fragment, "a": "é"})


@given(st.dictionaries(st.sampled_from(['a"', "b\\", "c", 'd\\"']), st.floats(allow_nan=False, allow_infinity=False)
                       | st.sampled_from(['1.5"', '\\"2.5', "x", 'y\\\\"'])))
def test_the_msgspec_path_sees_numbers_beside_escaped_quotes(value):
    assert ours_of_plain(value) == reference(value)


@given(st.dictionaries(st.text(alphabet="aé—\ud7ff\ue000\uffff\U00010000\U0001f600", max_size=3), st.integers(0, 9)))
def test_the_msgspec_path_sorts_keys_as_jcs_does(value):
    assert ours_of_plain(value) == reference(value)
