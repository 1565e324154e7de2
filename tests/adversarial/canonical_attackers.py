"""Test-only attacker: a node that signs receipts whose runtime fingerprint holds the values where a fast JSON
writer and RFC 8785 part ways (keys past U+E000, which JCS sorts by UTF-16 units; floats JCS writes in its own
number form; integers near 2^53), hoping that veriml computes another id than a JCS verifier (the browser's, a
contract's), or that a second byte form of the same receipt passes."""

from __future__ import annotations

import base64
from typing import Any

import msgspec

from veriml.codec import Digest
from veriml.identity import SigningKey
from veriml.receipts import SignedReceipt, sign_receipt
from veriml.runtime import RuntimeFingerprint

# Every zone where msgspec's output and JCS's may differ, one fingerprint each: a zone alone must be caught by its
# own guard, not by another zone's sending the whole document down the reference path.
HOSTILE_ZONES: dict[str, dict[str, Any]] = {
    "keys past U+E000": {"\U0001f600": "astral: UTF-16 D83D DE00 sorts before U+E000", "\ue000": "private use",
                         "\uffff": "last BMP", "a": "ascii"},
    "floats": {"large": 1e21, "one": 1.0, "negative zero": -0.0, "ten^16": 1e16, "small": 5e-7},
    "integers near 2^53": {"edge": 2**53 - 1, "negative edge": -(2**53) + 1, "long": 1234567890123456},
    "escapes": {"quote \"\\": "escaped \" quote and \\ backslash 1.5e3", "controls": "\x00\x1f\x7f",
                "z\u2028": "\u2028"},
}


def hostile_receipt(key: SigningKey, zone: str) -> SignedReceipt:
    digest = Digest.of(b"anything")
    fields = {"engine": "onnxruntime", **HOSTILE_ZONES[zone]}
    return sign_receipt(key, manifest=digest, blob=digest, input_commitment=digest, output_commitment=digest,
                        runtime=RuntimeFingerprint(fields))  # fmt: skip


def malleated(key: SigningKey, receipt: SignedReceipt) -> dict[str, Any]:
    """The same receipt body, signed over the bytes a writer without JCS's rules gives it (code point key order,
    shortest float repr): a second byte form the attacker hopes a verifier accepts as the same receipt."""
    body = receipt.body.to_json()
    other = msgspec.json.encode(body, order="sorted")
    if other == receipt.canonical:  # this zone's values are written alike: a byte form of its own, then
        other = msgspec.json.encode(body)
    signature = key.sign(receipt.body.DOMAIN, other)
    return {"body": body, "signature": base64.b64encode(signature).decode()}
