"""A node that ignores the salt the client chose and salts the commitments with one of its own (always the same,
so that its log links every request with equal inputs). Test-only; usage: substitution_own_salt.py --config
node.toml"""

from veriml.node.__main__ import main
from veriml.service.service import Service

OWN_SALT = bytes(32)
honest_infer_submit = Service.infer_submit


def own_salt(self, ref, inputs, request_id=None, **options):  # type: ignore[no-untyped-def]
    return honest_infer_submit(self, ref, inputs, request_id, **{**options, "salt": OWN_SALT})


Service.infer_submit = own_salt  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
