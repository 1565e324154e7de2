"""A quorum member whose answers are honest but for one bit of the manifest's signature: the same manifest body
(so the same manifest id) with a signature that is not the publisher's. The client parses a manifest once per
exact JSON value and verifies a signature once per exact bytes; this member's manifest is different bytes and
must be checked, and refused, on its own. Test-only; usage: quorum_other_manifest_signature.py --config node.toml"""

from dataclasses import replace

from veriml.node.__main__ import main
from veriml.service.service import Service

honest_infer_submit = Service.infer_submit


def other_signature(self, ref, inputs, request_id=None, **options):  # type: ignore[no-untyped-def]
    bundle, logged = honest_infer_submit(self, ref, inputs, request_id, **options)
    manifest = bundle.manifest
    flipped = bytes([manifest.signature[0] ^ 1]) + manifest.signature[1:]
    # A new document: none of the honest one's cached JSON (which would write the honest signature) carried over.
    forged = type(manifest)(manifest.body, flipped, manifest.canonical)
    return replace(bundle, manifest=forged), logged


Service.infer_submit = other_signature  # type: ignore[method-assign]

if __name__ == "__main__":
    raise SystemExit(main())
