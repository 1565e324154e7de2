"""Receipts and bundles: what a node signs for each inference, and what a user keeps to check it."""

from veriml.receipts.attestation import (
    Attestation,
    SignedAttestation,
    parse_signed_attestation,
    sign_attestation,
)
from veriml.receipts.bundle import Bundle
from veriml.receipts.commitment import DEFAULT_PRIVACY, PRIVACY_MODES, check_privacy, commit, new_salt, parse_salt
from veriml.receipts.leaf import LEAF_SIZE, ReceiptLeaf
from veriml.receipts.receipt import Receipt, SignedReceipt, parse_signed_receipt, sign_receipt

__all__ = [
    "DEFAULT_PRIVACY",
    "LEAF_SIZE",
    "PRIVACY_MODES",
    "Attestation",
    "Bundle",
    "Receipt",
    "ReceiptLeaf",
    "SignedAttestation",
    "SignedReceipt",
    "check_privacy",
    "commit",
    "new_salt",
    "parse_salt",
    "parse_signed_attestation",
    "parse_signed_receipt",
    "sign_attestation",
    "sign_receipt",
]
