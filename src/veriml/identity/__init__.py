"""Who signed what: Ed25519 keys named in the C2SP signed-note form, and domain-separated signatures."""

from veriml.identity.domain import Domain
from veriml.identity.keys import SigningKey, VerifyingKey
from veriml.identity.signed import Signed, SignedBody

__all__ = ["Domain", "Signed", "SignedBody", "SigningKey", "VerifyingKey"]
