"""One receipt, one byte form (issue 12 moved canonical JSON onto msgspec; issue 10's soundness must hold): a node
signing a receipt whose fingerprint holds every value where msgspec and RFC 8785 differ gets exactly the bytes the
rfc8785 package writes, so veriml and any JCS verifier compute the same receipt id; the same receipt signed over
another byte form is refused."""

from __future__ import annotations

import pytest
import rfc8785

from tests.adversarial.canonical_attackers import HOSTILE_ZONES, hostile_receipt, malleated
from veriml.codec import canonical_json
from veriml.errors import VerificationFailed
from veriml.identity import SigningKey
from veriml.receipts import parse_signed_receipt


@pytest.fixture
def key():
    return SigningKey.generate("veriml.local/node-hostile")


@pytest.mark.parametrize("zone", list(HOSTILE_ZONES))
def test_hostile_fingerprints_get_the_jcs_bytes_and_id(key, zone):
    receipt = hostile_receipt(key, zone)
    body = receipt.body.to_json()
    assert receipt.canonical == rfc8785.dumps(body)  # what the browser verifier and other JCS code hash
    assert receipt.body.runtime.canonical == rfc8785.dumps(body["runtime"])
    parsed = parse_signed_receipt(receipt.to_json()).verified()
    assert parsed.id == receipt.id and parsed.canonical == canonical_json(body)


@pytest.mark.parametrize("zone", list(HOSTILE_ZONES))
def test_a_receipt_signed_over_another_byte_form_is_refused(key, zone):
    receipt = hostile_receipt(key, zone)
    forged = malleated(key, receipt)
    with pytest.raises(VerificationFailed, match="signature"):
        parse_signed_receipt(forged).verified()
