"""Anyone, forging results in the name of a node whose key is a point of small order. Under such a key OpenSSL's
Ed25519 check (and so the `cryptography` package's) passes signatures nobody made: with the neutral point as key,
R = the neutral point and S = 0 verify for every message. A node that chose such a key could disown every receipt
it served ("anyone could have signed that"), and anyone could serve answers in its name: this script takes an
honest bundle and writes one with outputs of its choosing, "signed" by the neutral key. Test-only; usage:
weak_key_forger.py HONEST_BUNDLE FORGED_BUNDLE"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from veriml.codec import canonical_json, tensors_digest, tensors_to_json
from veriml.receipts.commitment import commit, parse_salt

NEUTRAL = bytes([1]) + bytes(31)  # the neutral point (y = 1): order 1
SIGNS_ANYTHING = NEUTRAL + bytes(32)  # R = the neutral point, S = 0
ORDER_8 = bytes.fromhex("26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05")
# The y coordinates of the points of order dividing 8, and the two non-canonical ones (y = p, p + 1), as
# libsodium lists them; each with either sign of x.
SMALL_ORDER_Y = [
    bytes(32), NEUTRAL, ORDER_8,
    bytes.fromhex("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a"),
    *(bytes.fromhex(low + "ff" * 30 + "7f") for low in ("ec", "ed", "ee")),
]  # fmt: skip
SMALL_ORDER = [y[:31] + bytes([y[31] | sign]) for y in SMALL_ORDER_Y for sign in (0, 0x80)]


def weak_key(name: str, public: bytes = NEUTRAL, sig_type: int = 0x01) -> str:
    """A C2SP verifier key text for `public`, written by hand: veriml's own key type refuses to hold such a key."""
    raw = bytes([sig_type]) + public
    key_hash = hashlib.sha256(name.encode() + b"\n" + raw).digest()[:4].hex()
    return f"{name}+{key_hash}+{base64.b64encode(raw).decode()}"


def forge(honest: dict, outputs: dict[str, np.ndarray], node_name: str = "forged-node") -> dict:
    forged = json.loads(json.dumps(honest))
    body = forged["receipt"]["body"]
    body["node"] = weak_key(node_name)
    forged["outputs"] = tensors_to_json(outputs)
    body["output_commitment"] = str(commit(parse_salt(forged["salt"]), tensors_digest(outputs)))
    forged["receipt"]["signature"] = base64.b64encode(SIGNS_ANYTHING).decode()
    forged["log_proof"] = None  # the honest node's log does not hold this receipt; level "signed" needs no log
    return forged


if __name__ == "__main__":
    honest = json.loads(Path(sys.argv[1]).read_text())
    chosen = {name: np.full(tensor["shape"], 42.0, np.float32) for name, tensor in honest["outputs"].items()}
    Path(sys.argv[2]).write_bytes(canonical_json(forge(honest, chosen)))
