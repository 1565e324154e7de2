"""Receipts and bundles: what a node signs for each inference, and what a user keeps to check it."""

from veriml.receipts.bundle import Bundle
from veriml.receipts.leaf import LEAF_SIZE, ReceiptLeaf
from veriml.receipts.receipt import Receipt, SignedReceipt, parse_signed_receipt, sign_receipt

__all__ = ["LEAF_SIZE", "Bundle", "Receipt", "ReceiptLeaf", "SignedReceipt", "parse_signed_receipt", "sign_receipt"]
