"""A node that cheats on some requests and answers an auditor's question about a cheated entry with an honest one:
it perturbs the outputs of every request whose first input value is positive, and when an auditor asks for such
an entry (one by one or several at once) it serves the nearest honest entry before it instead: its receipt, data
and a valid proof, under the 'index' field asked for, hoping the auditor re-executes the honest request and
records the cheated entry as examined. For the audit attack tests only.
Usage: audit_substituting_node.py --config node.toml
"""

from typing import Any

import positive_liar

from veriml.codec import tensors_from_json
from veriml.node.__main__ import main
from veriml.node.disclosure import Disclosure

honest_answer = Disclosure._answer


def lied(stored_inputs: Any) -> bool:
    return positive_liar.lies_on(tensors_from_json(stored_inputs, "inputs"))


def substituting_answer(self, index, auditor, headers, stored=None):  # type: ignore[no-untyped-def]
    answer = honest_answer(self, index, auditor, headers, stored)
    if answer.get("data") != "disclosed" or not lied(answer["inputs"]):
        return answer
    for other in range(index - 1, -1, -1):  # the node reads its own store: no auditor signature needed
        stored = self._stored(other)
        if "inputs" in stored and not lied(stored["inputs"]):
            return {"index": index, "receipt": stored["receipt"], "proof": self.log.prove(other).to_text(),
                    "data": "disclosed", **{k: stored[k] for k in ("salt", "inputs", "outputs")}}  # fmt: skip
    return answer


positive_liar.install()
Disclosure._answer = substituting_answer  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
