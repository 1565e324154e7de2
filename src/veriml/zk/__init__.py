"""Zero-knowledge proofs of model outputs with EZKL: one-time setup per model version, a publisher-signed ZK
document naming the circuit artifacts, proving, and verification against the signed verification key."""

from veriml.zk.document import (
    ARTIFACTS,
    SRS_KINDS,
    SignedZkDocument,
    ZkDocument,
    parse_signed_zk_document,
    sign_zk_document,
)

__all__ = ["ARTIFACTS", "SRS_KINDS", "SignedZkDocument", "ZkDocument", "parse_signed_zk_document", "sign_zk_document"]
