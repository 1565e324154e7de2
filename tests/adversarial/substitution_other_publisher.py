"""A node that answers with another publisher's model of the same name: the asked manifest's body (same name,
version and blob) signed by a key it made up. The bundle verifies at level `signed`. Test-only; usage:
substitution_other_publisher.py --config node.toml"""

from dataclasses import replace

from veriml.identity import Signed, SigningKey
from veriml.node.__main__ import main
from veriml.service.service import Service

MALLORY = SigningKey.generate("mallory")
honest_infer_submit = Service.infer_submit


def substituting(self, ref, inputs, request_id=None, **options):  # type: ignore[no-untyped-def]
    asked = ref if isinstance(ref, Signed) else self.resolve(ref)
    forged = Signed.sign(replace(asked.body, publisher=MALLORY.public), MALLORY)
    return honest_infer_submit(self, forged, inputs, request_id, **options)


Service.infer_submit = substituting  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
