"""A node that cheats on some requests and shows auditors another history than the one it logs: it perturbs the
outputs of every request whose first input value is positive, and answers an auditor asking for such an entry
with the nearest honest entry before it, proven at the index asked for under a checkpoint it signs for a shadow
tree (its log with each lied leaf replaced by that honest entry's leaf). The proof is valid, signed by the
node's key, for the right index. With --checkpoint it also serves the shadow tree's checkpoint at /checkpoint,
while its witnesses are sent the real one. For the audit attack tests only.
Usage: audit_forking_node.py [--checkpoint] --config node.toml
"""

import sys
from typing import Any

import positive_liar

from veriml.codec import tensors_from_json
from veriml.node import app as node_app
from veriml.node.__main__ import main
from veriml.node.disclosure import Disclosure
from veriml.tlog import Checkpoint, SignedCheckpoint, TlogProof, merkle, sign_note

honest_answer = Disclosure._answer
honest_read_checkpoint = node_app.read_checkpoint


def lied(stored: dict[str, Any]) -> bool:
    return "inputs" in stored and positive_liar.lies_on(tensors_from_json(stored["inputs"], "inputs"))


def shadow(log: Any, stored_of: Any, size: int) -> tuple[list[bytes], dict[int, int]]:
    """The shadow tree's leaf hashes, and for each lied index the honest index whose leaf stands in for it."""
    hashes, stand_ins, honest = [], {}, None
    for index in range(size):
        leaf, _ = log.entry(index)
        if lied(stored_of(index)) and honest is not None:
            stand_ins[index] = honest
            leaf, _ = log.entry(honest)
        elif not lied(stored_of(index)):
            honest = index
        hashes.append(merkle.leaf_hash(leaf))
    return hashes, stand_ins


def signed_shadow(log: Any, hashes: list[bytes]) -> tuple[SignedCheckpoint, Any]:
    def read(keys):  # type: ignore[no-untyped-def]
        return [merkle.root_of_leaves(hashes[i << level : (i + 1) << level]) for level, i in keys]

    checkpoint = Checkpoint(log.origin, len(hashes), merkle.root_hash(len(hashes), read))
    return SignedCheckpoint(checkpoint, sign_note(checkpoint.text(), log.key)), read


def forking_answer(self, index, auditor, headers, stored=None):  # type: ignore[no-untyped-def]
    answer = honest_answer(self, index, auditor, headers, stored)
    if answer.get("data") != "disclosed" or not lied(answer):
        return answer
    hashes, stand_ins = shadow(self.log, self._stored, self.log.latest_checkpoint().checkpoint.size)
    if index not in stand_ins:
        return answer
    checkpoint, read = signed_shadow(self.log, hashes)
    proof = TlogProof(index, tuple(merkle.inclusion_proof(index, len(hashes), read)), checkpoint)
    other = self._stored(stand_ins[index])
    return {"index": index, "receipt": other["receipt"], "proof": proof.to_text(), "data": "disclosed",
            **{k: other[k] for k in ("salt", "inputs", "outputs")}}  # fmt: skip


def shadow_read_checkpoint(log):  # type: ignore[no-untyped-def]
    disclosure = forking_answer.disclosure  # type: ignore[attr-defined]
    size = log.latest_checkpoint().checkpoint.size
    hashes, stand_ins = shadow(log, disclosure._stored, size)
    if not stand_ins:
        return honest_read_checkpoint(log)
    return signed_shadow(log, hashes)[0].to_text().encode("utf-8")


honest_init = Disclosure.__init__


def remembered_init(self, *args, **kwargs):  # type: ignore[no-untyped-def]
    honest_init(self, *args, **kwargs)
    forking_answer.disclosure = self  # type: ignore[attr-defined]


positive_liar.install()
Disclosure._answer = forking_answer  # type: ignore[method-assign]
if "--checkpoint" in sys.argv:
    sys.argv.remove("--checkpoint")
    Disclosure.__init__ = remembered_init  # type: ignore[method-assign]
    node_app.read_checkpoint = shadow_read_checkpoint

if __name__ == "__main__":
    raise SystemExit(main())
