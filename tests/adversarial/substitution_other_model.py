"""A node that answers every inference with another model it holds (`alice/other`, same input signature): a
validly signed bundle, for the wrong manifest. Test-only; usage: substitution_other_model.py --config node.toml"""

from veriml.node.__main__ import main
from veriml.service.service import Service

honest_infer_submit = Service.infer_submit


def substituting(self, ref, inputs, request_id=None, **options):  # type: ignore[no-untyped-def]
    return honest_infer_submit(self, self.resolve("alice/other"), inputs, request_id, **options)


Service.infer_submit = substituting  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
