"""A node that records every request as `public` (its inputs and outputs readable by anyone), whatever privacy
the client asked for. Test-only; usage: substitution_other_privacy.py --config node.toml"""

from veriml.node.__main__ import main
from veriml.service.service import Service

honest_infer_submit = Service.infer_submit


def publishing(self, ref, inputs, request_id=None, **options):  # type: ignore[no-untyped-def]
    return honest_infer_submit(self, ref, inputs, request_id, **{**options, "privacy": "public"})


Service.infer_submit = publishing  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
