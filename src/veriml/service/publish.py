"""The publisher's side of publishing: read and check the model, hash it, and sign its manifest."""

from __future__ import annotations

from pathlib import Path

from veriml.codec import Digest
from veriml.codec.clock import utc_timestamp
from veriml.codec.digest import new_hasher
from veriml.hub import ComparisonPolicy, Manifest, SignedManifest, check_model_name, describe_onnx
from veriml.hub.blobs import CHUNK
from veriml.identity import Signed, SigningKey


def hash_file(path: Path) -> tuple[Digest, int]:
    hasher, size = new_hasher(), 0
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return Digest.from_hasher(hasher), size


def sign_manifest(
    model_path: Path,
    *,
    name: str,
    version: int,
    parent: Digest | None,
    publisher: SigningKey,
    policy: ComparisonPolicy | None = None,
    description: str = "",
    license: str = "",
) -> SignedManifest:
    """Describe an ONNX file (onnx.checker first) and sign its manifest for `name@version`."""
    check_model_name(name)
    model_path = Path(model_path)
    description_from_file = describe_onnx(model_path)
    blob, size = hash_file(model_path)
    manifest = Manifest(
        name=name,
        version=version,
        blob=blob,
        size=size,
        format="onnx",
        opset=description_from_file.opset,
        inputs=description_from_file.inputs,
        outputs=description_from_file.outputs,
        publisher=publisher.public,
        created=utc_timestamp(),
        policy=policy or ComparisonPolicy(),
        description=description or description_from_file.doc,
        license=license,
        parent=parent,
    )
    return Signed.sign(manifest, publisher)


def sign_next_version(
    model_path: Path,
    *,
    name: str,
    latest: SignedManifest | None,
    publisher: SigningKey,
    policy: ComparisonPolicy | None = None,
    description: str = "",
    license: str = "",
) -> SignedManifest:
    """The signed manifest of the version after `latest` (version 1 when there is none), naming it as parent."""
    return sign_manifest(
        model_path,
        name=name,
        version=1 if latest is None else latest.body.version + 1,
        parent=None if latest is None else latest.id,
        publisher=publisher,
        policy=policy,
        description=description,
        license=license,
    )
