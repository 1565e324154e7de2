"""The model version manifest (DESIGN §2): the small document a publisher signs for each version of a model."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, ClassVar

from veriml.codec import Digest, TensorSpec, canonical_json_of_plain, expect_document
from veriml.errors import InvalidInput, shown
from veriml.hub.policy import ComparisonPolicy
from veriml.hub.refs import check_model_name
from veriml.identity import Domain, Signed, VerifyingKey

FORMAT_VERSION = 1
FORMATS = ("onnx", "gguf")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z")
_FIELDS = {
    "format_version", "name", "version", "blob", "size", "format", "opset", "inputs", "outputs", "policy",
    "zk", "description", "license", "parent", "created", "publisher",
}  # fmt: skip
_LLM_FIELDS = {"architecture", "context_length", "chat_template"}
_CHAIN_ACCOUNT = re.compile(r"0x[0-9a-f]{40}")


@dataclass(frozen=True, slots=True)
class LlmSection:
    """What a language model's manifest adds, read from the GGUF metadata: a client renders chat prompts with
    the template and sizes requests by the context length without fetching the weights."""

    architecture: str
    context_length: int
    chat_template: str

    def __post_init__(self) -> None:
        if not isinstance(self.architecture, str) or not self.architecture:
            raise InvalidInput("manifest llm: architecture must be a non-empty string")
        if type(self.context_length) is not int or self.context_length < 1:
            raise InvalidInput(
                f"manifest llm: context_length must be a positive integer, got {shown(self.context_length)}"
            )
        if not isinstance(self.chat_template, str):
            raise InvalidInput("manifest llm: chat_template must be text")

    def to_json(self) -> dict[str, Any]:
        return {
            "architecture": self.architecture,
            "context_length": self.context_length,
            "chat_template": self.chat_template,
        }

    @classmethod
    def from_json(cls, obj: object) -> LlmSection:
        if not isinstance(obj, dict) or set(obj) != _LLM_FIELDS:
            raise InvalidInput(f"manifest llm: expected exactly the fields {sorted(_LLM_FIELDS)}")
        return cls(obj["architecture"], obj["context_length"], obj["chat_template"])


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    version: int
    blob: Digest
    size: int
    format: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    publisher: VerifyingKey
    created: str
    policy: ComparisonPolicy = field(default_factory=ComparisonPolicy)
    description: str = ""
    license: str = ""
    parent: Digest | None = None
    # Filled by the ZK issue: the id of a publisher-signed ZK document naming the circuit artifacts.
    zk: dict[str, Any] | None = None
    # Language models (format gguf) only; absent from an ONNX manifest's JSON, so those keep their bytes.
    llm: LlmSection | None = None
    # The EVM account (lowercase 0x hex) that alone may register this version on chain (contracts/ModelRegistry.vy).
    # Absent from the JSON when None, so manifests without it keep their bytes; they just cannot be registered.
    chain_account: str | None = None

    DOMAIN: ClassVar[Domain] = Domain.MANIFEST

    def __post_init__(self) -> None:
        check_model_name(self.name)
        if type(self.version) is not int or not 1 <= self.version < 10**9:
            raise InvalidInput(f"manifest {self.name}: version must be a positive integer, got {shown(self.version)}")
        if (self.version == 1) != (self.parent is None):
            raise InvalidInput(f"manifest {self.name}@{self.version}: version 1 has no parent; later ones must")
        if self.format not in FORMATS:
            raise InvalidInput(f"manifest {self.name}: format must be one of {FORMATS}, got {shown(self.format)}")
        if type(self.size) is not int or self.size < 0 or type(self.opset) is not int or self.opset < 0:
            raise InvalidInput(f"manifest {self.name}: size and opset must be non-negative integers")
        if not self.inputs or not self.outputs:
            raise InvalidInput(f"manifest {self.name}: a model needs at least one input and one output")
        for group in (self.inputs, self.outputs):
            names = [spec.name for spec in group]
            if len(set(names)) != len(names):
                raise InvalidInput(f"manifest {self.name}: tensor names repeat: {names}")
        if not isinstance(self.created, str) or not _TIMESTAMP.fullmatch(self.created):
            raise InvalidInput(f"manifest {self.name}: created must be an RFC 3339 UTC time, got {shown(self.created)}")
        if not isinstance(self.description, str) or not isinstance(self.license, str):
            raise InvalidInput(f"manifest {self.name}: description and license must be strings")
        if self.zk is not None and not isinstance(self.zk, dict):
            raise InvalidInput(f"manifest {self.name}: zk must be an object or null")
        if (self.format == "gguf") != (self.llm is not None):
            raise InvalidInput(f"manifest {self.name}: a gguf manifest has an llm section, and only a gguf one")
        if self.chain_account is not None and (
            not isinstance(self.chain_account, str) or not _CHAIN_ACCOUNT.fullmatch(self.chain_account)
        ):
            raise InvalidInput(f"manifest {self.name}: chain account must be 0x and 40 lowercase hex digits")

    @property
    def signer(self) -> VerifyingKey:
        return self.publisher

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def input(self, name: str) -> TensorSpec | None:
        return next((spec for spec in self.inputs if spec.name == name), None)

    def to_canonical_bytes(self) -> bytes:
        return canonical_json_of_plain(self.to_json())

    def to_json(self) -> dict[str, Any]:
        body = self._common_json()
        if self.llm is not None:
            body["llm"] = self.llm.to_json()
        if self.chain_account is not None:  # exact is the policy's, copied where a contract can read it
            body["chain"] = {"account": self.chain_account, "exact": self.policy.kind == "exact"}
        return body

    def _common_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "version": self.version,
            "blob": str(self.blob),
            "size": self.size,
            "format": self.format,
            "opset": self.opset,
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
            "policy": self.policy.to_json(),
            "zk": self.zk,
            "description": self.description,
            "license": self.license,
            "parent": None if self.parent is None else str(self.parent),
            "created": self.created,
            "publisher": self.publisher.vkey,
        }

    @classmethod
    def from_json(cls, obj: object) -> Manifest:
        optional = {key for key in ("llm", "chain") if isinstance(obj, dict) and key in obj}
        has_llm = "llm" in optional
        obj = expect_document(obj, _FIELDS | optional, "manifest", FORMAT_VERSION)
        for group in ("inputs", "outputs"):
            if not isinstance(obj[group], list):
                raise InvalidInput(f"manifest: {group} must be a list")
        return cls(
            name=obj["name"],
            version=obj["version"],
            blob=Digest.parse(obj["blob"], "manifest blob"),
            size=obj["size"],
            format=obj["format"],
            opset=obj["opset"],
            inputs=tuple(TensorSpec.from_json(s, "manifest input") for s in obj["inputs"]),
            outputs=tuple(TensorSpec.from_json(s, "manifest output") for s in obj["outputs"]),
            policy=ComparisonPolicy.from_json(obj["policy"]),
            zk=obj["zk"],
            description=obj["description"],
            license=obj["license"],
            parent=None if obj["parent"] is None else Digest.parse(obj["parent"], "manifest parent"),
            created=obj["created"],
            publisher=VerifyingKey.parse(obj["publisher"], "manifest publisher"),
            llm=LlmSection.from_json(obj["llm"]) if has_llm else None,
            chain_account=_chain_account(obj["chain"], obj["policy"]) if "chain" in optional else None,
        )


def _chain_account(section: object, policy: object) -> str:
    """The chain section's account; its `exact` must be the policy's (the contract reads the copy)."""
    if not isinstance(section, dict) or set(section) != {"account", "exact"}:
        raise InvalidInput("manifest chain: expected exactly the fields ['account', 'exact']")
    if not isinstance(section["account"], str):
        raise InvalidInput("manifest chain: account must be a string")
    exact = isinstance(policy, dict) and policy.get("kind") == "exact"
    if section["exact"] is not exact:
        raise InvalidInput("manifest chain: exact must equal the policy's kind == 'exact'")
    return section["account"]


SignedManifest = Signed[Manifest]


def parse_signed_manifest(obj: object) -> SignedManifest:
    return Signed.from_json(Manifest, obj, "manifest")
