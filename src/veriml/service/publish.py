"""The publisher's side of publishing: read and check the model, hash it, and sign its manifest."""

from __future__ import annotations

from pathlib import Path

from veriml.codec import Digest
from veriml.codec.clock import utc_timestamp
from veriml.codec.digest import new_hasher
from veriml.errors import InvalidInput
from veriml.hub import (
    ComparisonPolicy,
    LlmSection,
    Manifest,
    SignedManifest,
    check_model_name,
    describe_gguf,
    describe_onnx,
    is_gguf,
)
from veriml.hub.blobs import CHUNK
from veriml.identity import Signed, SigningKey
from veriml.runtime.generation import GENERATION_INPUTS, GENERATION_OUTPUTS

FORMATS = ("onnx", "gguf")


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
    format: str | None = None,
    chain_account: str | None = None,
) -> SignedManifest:
    """Describe a model file and sign its manifest for `name@version`. ONNX files go through onnx.checker; GGUF
    files (language models) have their header and metadata read. `format=None` tells them apart by the magic."""
    check_model_name(name)
    model_path = Path(model_path)
    if format is None:
        format = "gguf" if is_gguf(model_path) else "onnx"
    if format not in FORMATS:
        raise InvalidInput(f"format {format!r}: expected one of {', '.join(FORMATS)}")
    if format == "gguf":
        gguf = describe_gguf(model_path)
        if policy is not None and policy.kind != "exact":
            raise InvalidInput("a gguf model's outputs are token ids: its comparison policy must be exact")
        fields = dict(
            format="gguf",
            opset=gguf.version,
            inputs=GENERATION_INPUTS,
            outputs=GENERATION_OUTPUTS,
            llm=LlmSection(gguf.architecture, gguf.context_length, gguf.chat_template),
            description=description or gguf.model_name,
        )
    else:
        onnx_file = describe_onnx(model_path)
        fields = dict(
            format="onnx",
            opset=onnx_file.opset,
            inputs=onnx_file.inputs,
            outputs=onnx_file.outputs,
            description=description or onnx_file.doc,
        )
    blob, size = hash_file(model_path)
    manifest = Manifest(
        name=name,
        version=version,
        blob=blob,
        size=size,
        publisher=publisher.public,
        created=utc_timestamp(),
        policy=policy or ComparisonPolicy(),
        license=license,
        parent=parent,
        chain_account=chain_account,
        **fields,  # type: ignore[arg-type]
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
    format: str | None = None,
    chain_account: str | None = None,
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
        format=format,
        chain_account=chain_account,
    )
