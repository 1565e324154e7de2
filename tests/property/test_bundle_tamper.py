"""A byte changed anywhere in a bundle file must never leave it verified."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veriml.errors import InvalidInput
from veriml.receipts import Bundle
from veriml.verify import verify_bundle


@pytest.fixture
def bundle_bytes(bundle) -> bytes:
    return bundle.to_bytes()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_single_byte_change_verifies(bundle_bytes, data):
    at = data.draw(st.integers(0, len(bundle_bytes) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda b: b != bundle_bytes[at]))
    tampered = bundle_bytes[:at] + bytes([value]) + bundle_bytes[at + 1 :]
    try:
        bundle = Bundle.from_bytes(tampered)
    except InvalidInput:
        return
    assert not verify_bundle(bundle).consistent, f"byte {at} changed to {value} still verifies"
