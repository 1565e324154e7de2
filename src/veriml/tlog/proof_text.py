"""C2SP tlog-proof: an offline-verifiable proof that an entry is in a log, with the (cosigned) checkpoint.

c2sp.org/tlog-proof@v1
[extra <base64>]
index <N>
<base64 hash>            (the inclusion proof, leaf side first)
...
<blank line>
<signed checkpoint note>
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from veriml.errors import InvalidInput, VerificationFailed
from veriml.identity import VerifyingKey
from veriml.tlog import merkle
from veriml.tlog.checkpoint import SignedCheckpoint, TrustPolicy, b64, parse_decimal, parse_hash

HEADER = "c2sp.org/tlog-proof@v1"
MAX_PROOF_HASHES = 63


@dataclass(frozen=True, slots=True)
class TlogProof:
    index: int
    hashes: tuple[bytes, ...]
    checkpoint: SignedCheckpoint
    extra: bytes | None = None

    def to_text(self) -> str:
        return proof_text(self.index, [b64(h) for h in self.hashes], self.checkpoint, self.extra)

    @classmethod
    def parse(cls, text: str, what: str = "tlog proof") -> TlogProof:
        if not isinstance(text, str):
            raise InvalidInput(f"{what}: expected text")
        head, separator, note = text.partition("\n\n")
        if not separator:
            raise InvalidInput(f"{what}: no blank line before the checkpoint")
        lines = head.split("\n")
        if lines[0] != HEADER:
            raise InvalidInput(f"{what}: the first line must be {HEADER!r}")
        position, extra = 1, None
        if len(lines) > 1 and lines[1].startswith("extra "):
            try:
                extra = base64.b64decode(lines[1][6:].encode("ascii"), validate=True)
            except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
                raise InvalidInput(f"{what}: extra data is not valid base64") from exc
            position = 2
        if len(lines) <= position or not lines[position].startswith("index "):
            raise InvalidInput(f"{what}: expected an 'index <N>' line")
        index = parse_decimal(lines[position][6:], f"{what} index")
        hash_lines = lines[position + 1 :]
        if len(hash_lines) > MAX_PROOF_HASHES:
            raise InvalidInput(f"{what}: {len(hash_lines)} proof hashes, more than {MAX_PROOF_HASHES}")
        hashes = tuple(parse_hash(line, f"{what} proof hash {n}") for n, line in enumerate(hash_lines))
        return cls(index, hashes, SignedCheckpoint.parse(note, f"{what} checkpoint"), extra)

    def verify(self, leaf: bytes, policy: TrustPolicy) -> list[VerifyingKey]:
        """Raise VerificationFailed unless `leaf` is the entry at `index` under a checkpoint trusted by
        `policy`; return the witnesses that cosigned it."""
        cosigners = policy.check(self.checkpoint)
        checkpoint = self.checkpoint.checkpoint
        if self.index >= checkpoint.size:
            raise VerificationFailed(
                f"tlog proof: index {self.index} is outside the checkpoint of size {checkpoint.size}"
            )
        merkle.verify_inclusion(self.index, checkpoint.size, merkle.leaf_hash(leaf), self.hashes, checkpoint.root)
        return cosigners


def proof_text(index: int, hash_lines: list[str], checkpoint: SignedCheckpoint, extra: bytes | None = None) -> str:
    """A tlog-proof's text from its hashes already in base64 (leaf side first)."""
    head = HEADER if extra is None else f"{HEADER}\nextra {b64(extra)}"
    return "\n".join((head, f"index {index}", *hash_lines)) + "\n\n" + checkpoint.to_text()
