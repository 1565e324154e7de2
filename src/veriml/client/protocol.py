"""What the sync and async clients share: request bodies, response parsing, error mapping, quorum judging.
Only the transport differs between them (as in httpx)."""

from __future__ import annotations

import itertools
import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import httpx
import numpy as np

from veriml.codec import Digest, tensors_digest, tensors_to_json
from veriml.codec.tensor import describe_array, dtype_name
from veriml.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
    VerificationFailed,
    VerimlError,
)
from veriml.hub import ModelRef, SignedManifest, compare_outputs, parse_signed_manifest
from veriml.identity import VerifyingKey
from veriml.identity.keys import COSIGNATURE_ED25519
from veriml.receipts import DEFAULT_PRIVACY, Bundle, new_salt
from veriml.receipts.receipt import new_request_id
from veriml.runtime.inputs import coerce_inputs
from veriml.verify import verify_bundle

_KINDS: dict[str, type[VerimlError]] = {
    "invalid-input": InvalidInput,
    "not-found": NotFound,
    "conflict": Conflict,
    "permission-denied": PermissionDenied,
    "verification-failed": VerificationFailed,
    "unavailable": Unavailable,
    # open publishing (node.publishing): specific refusals, each a kind of the general ones above
    "name-owned": PermissionDenied,
    "publisher-not-allowed": PermissionDenied,
    "quota-exceeded": PermissionDenied,
    "publish-rate-limited": Unavailable,
    "version-conflict": Conflict,
    "blob-mismatch": VerificationFailed,
    "model-refused": InvalidInput,
    "no-pending-publish": NotFound,
}
_QUORUM = re.compile(r"quorum:([1-9][0-9]?)")

# What reusing a keep-alive connection the server has just closed looks like; an idempotent request is sent again.
STALE_CONNECTION = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


class Disagreement(VerificationFailed):
    """Nodes asked for the same inference gave outputs that disagree under the manifest's policy."""

    def __init__(self, message: str, nodes: Sequence[str]) -> None:
        super().__init__(message)
        self.nodes = list(nodes)


@dataclass(frozen=True, slots=True)
class VerifyLevel:
    kind: str  # "signed", "logged" or "quorum"
    nodes: int = 1

    @classmethod
    def parse(cls, text: str) -> VerifyLevel:
        if text in ("signed", "logged", "proven"):
            return cls(text)
        match = _QUORUM.fullmatch(text)
        if match:
            return cls("quorum", int(match.group(1)))
        raise InvalidInput(f"verify level {text!r}: expected 'signed', 'logged', 'proven' or 'quorum:K'")


def raise_for_problem(node: str, response: httpx.Response) -> None:
    """Turn a 4xx/5xx problem answer into the veriml error of the same kind, naming the node. Every 5xx is
    Unavailable, which callers that can try another node do."""
    if response.status_code < 400:
        return
    try:
        problem = response.json()
        kind = str(problem.get("type", "")).rsplit("/", 1)[-1]
        detail = problem.get("detail", response.text)
    except ValueError:
        kind, detail = "", response.text[:200]
    if response.status_code >= 500:
        error: type[VerimlError] = Unavailable
    else:
        error = _KINDS.get(kind, InvalidInput)
    raise error(f"node {node}: {detail}")


def raise_for_openai_error(node: str, response: httpx.Response) -> None:
    """The OpenAI-compatible endpoints answer errors in OpenAI's shape: the same mapping, by status."""
    if response.status_code < 400:
        return
    try:
        detail = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        detail = response.text[:200]
    kinds = {400: InvalidInput, 403: PermissionDenied, 404: NotFound, 409: Conflict, 422: VerificationFailed}
    error = Unavailable if response.status_code >= 500 else kinds.get(response.status_code, InvalidInput)
    raise error(f"node {node}: {detail}")


@dataclass(frozen=True)
class Asked:
    """What the client asked, fixed before any node is asked: the manifest it resolved (and so the model version
    and publisher), the input tensors it converted itself, a request id and a salt it chose, and the privacy it
    asked for. Every answer must be for exactly this (`check_answer`), whichever node gave it; the salt is one
    per call, the same for every node of a quorum, so their commitments are equal."""

    manifest: SignedManifest
    inputs: dict[str, np.ndarray]
    request_id: str
    salt: bytes
    privacy: str = DEFAULT_PRIVACY

    @property
    def ref(self) -> str:
        """What is asked of every node: the resolved manifest id, never a name a node could resolve otherwise."""
        return str(self.manifest.id)

    @cached_property
    def inputs_digest(self) -> Digest:
        """The digest of the inputs sent, worked out once for every answer to compare with."""
        return tensors_digest(self.inputs)


def ask(
    manifest: SignedManifest, inputs: Mapping[str, Any], request_id: str | None, privacy: str = DEFAULT_PRIVACY
) -> Asked:
    """Convert the caller's inputs to tensors with the node's own conversion, against the resolved manifest's
    signature, and choose a fresh request id (unless the caller gave one) and a fresh salt."""
    arrays = coerce_inputs(manifest.body.inputs, inputs)
    return Asked(manifest, arrays, new_request_id() if request_id is None else request_id, new_salt(), privacy)


def infer_body(asked: Asked, verify: str | None = None) -> dict[str, Any]:
    body = {"model": asked.ref, "inputs": tensors_to_json(asked.inputs), "request_id": asked.request_id,
            "salt": asked.salt.hex(), "privacy": asked.privacy}  # fmt: skip
    if verify is not None:
        body["verify"] = verify
    return body


def infer_payload(asked: Asked, verify: str | None = None) -> bytes:
    """The request body's bytes, made once per call (a quorum sends the same bytes to every node)."""
    return json.dumps(infer_body(asked, verify), separators=(",", ":"), allow_nan=False).encode()


def publisher_keys(publishers: object) -> frozenset[bytes]:
    """Pinned publishers as Ed25519 public key bytes (a key is its bytes: another name for it is the same key)."""
    if publishers is None:
        return frozenset()
    if isinstance(publishers, str | VerifyingKey):
        publishers = [publishers]
    keys = set()
    for item in publishers:  # type: ignore[attr-defined]
        key = item if isinstance(item, VerifyingKey) else VerifyingKey.parse(item, "publisher key")
        keys.add(key.public)
    return frozenset(keys)


def check_resolved(node: str, ref: str, signed: SignedManifest, publishers: frozenset[bytes]) -> SignedManifest:
    """A manifest a node gave for `ref`: validly signed, the one the reference names (its content address, or
    its name and pinned version), and by a pinned publisher when publishers are pinned."""
    parsed = ModelRef.parse(ref)
    try:
        signed = signed.verified()
    except VerimlError as exc:
        raise VerificationFailed(f"node {node}: manifest for {ref} does not verify: {exc}") from exc
    body = signed.body
    if parsed.manifest_id is not None and signed.id != parsed.manifest_id:
        raise VerificationFailed(f"node {node} answered manifest {signed.id} for {ref}")
    if parsed.name is not None and body.name != parsed.name:
        raise VerificationFailed(f"node {node} answered {body.ref} for {ref}")
    if parsed.version is not None and body.version != parsed.version:
        raise VerificationFailed(f"node {node} answered {body.ref} for {ref}")
    if publishers and body.publisher.public not in publishers:
        raise VerificationFailed(
            f"node {node}: {body.ref} ({signed.id}) is published by {body.publisher.key_id}, not by a pinned publisher"
        )
    return signed


def _first_difference(sent: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray]) -> str:
    if set(sent) != set(got):
        return f"input names {sorted(got)}, sent {sorted(sent)}"
    for name in sorted(sent):
        a, b = sent[name], got[name]
        try:
            if dtype_name(a) != dtype_name(b) or a.shape != b.shape:
                return f"input {name!r} is {describe_array(b)}, sent {describe_array(a)}"
        except VerimlError:
            return f"input {name!r} has an unsupported dtype"
        if tensors_digest({name: a}) != tensors_digest({name: b}):
            return f"input {name!r} holds other values"
    return "the inputs differ"


def check_answer(node: str, bundle: Bundle, asked: Asked) -> None:
    """Raise VerificationFailed unless the bundle answers this request: the manifest resolved, the inputs sent
    (dtype, shape and bytes), the request id chosen, and valid signatures at level `signed`."""
    if bundle.manifest.id != asked.manifest.id:
        raise VerificationFailed(
            f"node {node} answered for manifest {bundle.manifest.id} ({bundle.manifest.body.ref} by "
            f"{bundle.manifest.body.publisher.key_id}), asked {asked.manifest.id} ({asked.manifest.body.ref} by "
            f"{asked.manifest.body.publisher.key_id})"
        )
    try:
        same = tensors_digest(bundle.inputs) == asked.inputs_digest
    except VerimlError:
        same = False
    if not same:
        raise VerificationFailed(
            f"node {node} answered for other inputs: {_first_difference(asked.inputs, bundle.inputs)}"
        )
    if bundle.receipt.body.request_id != asked.request_id:
        raise VerificationFailed(
            f"node {node} answered for request id {bundle.receipt.body.request_id!r}, asked {asked.request_id!r} "
            "(an older or another caller's answer)"
        )
    check_salt_and_privacy(node, bundle, asked.salt, asked.privacy)
    report = verify_bundle(bundle, level="signed")
    if not report.consistent:
        raise VerificationFailed(f"node {node}: bundle does not verify: {report.failures()}")


def check_salt_and_privacy(node: str, bundle: Bundle, salt: bytes, privacy: str) -> None:
    """The commitments are salted with the salt the client chose, and the receipt records the privacy asked."""
    if bundle.salt != salt:
        raise VerificationFailed(
            f"node {node} answered with salt {bundle.salt.hex()[:16]}..., asked {salt.hex()[:16]}..."
        )
    if bundle.receipt.body.privacy != privacy:
        raise VerificationFailed(
            f"node {node} answered with privacy {bundle.receipt.body.privacy!r}, asked {privacy!r}"
        )


# Manifests already parsed, by the exact JSON value they were parsed from (its json.dumps text, which tells apart
# every value json.loads can give, key order included): every answer for a model carries the same manifest, and
# every answer of a quorum. Parsing is a function of that value alone, so a hit gives exactly what parsing it
# again would; a value that fails to parse is not kept, and fails again.
_MANIFESTS: dict[str, SignedManifest] = {}
MANIFESTS_KEPT = 64
_BUNDLE_FIELDS = frozenset(
    ("format_version", "manifest", "receipt", "salt", "inputs", "outputs", "log_proof", "attestations", "zk_proof")
)


def parsed_manifest(obj: object) -> SignedManifest:
    """`parse_signed_manifest(obj)`, once per exact JSON value."""
    try:
        key = json.dumps(obj, separators=(",", ":"))
    except (TypeError, ValueError):
        return parse_signed_manifest(obj)
    held = _MANIFESTS.get(key)
    if held is None:
        held = parse_signed_manifest(obj)
        _MANIFESTS[key] = held
        while len(_MANIFESTS) > MANIFESTS_KEPT:
            try:
                _MANIFESTS.pop(next(iter(_MANIFESTS)))  # the oldest
            except (StopIteration, KeyError, RuntimeError):  # another thread got there first
                break
    return held


def parse_bundle(obj: object) -> Bundle:
    """`Bundle.from_json(obj)` as a node's answer carries it, with the manifest parsed once per exact JSON value
    (`parsed_manifest`)."""
    return Bundle.from_json(obj, parsed_manifest)


def parse_infer(node: str, body: Any, asked: Asked) -> tuple[Bundle, int]:
    try:
        bundle = parse_bundle(body["bundle"])
        index = int(body["log_index"])
    except (KeyError, TypeError, ValueError, VerimlError) as exc:
        raise VerificationFailed(f"node {node}: malformed inference answer ({exc})") from exc
    check_answer(node, bundle, asked)
    return bundle, index


def parse_infer_bytes(node: str, content: bytes, asked: Asked) -> tuple[Bundle, int]:
    try:
        body = json.loads(content)
    except ValueError as exc:
        raise VerificationFailed(f"node {node}: malformed inference answer ({exc})") from exc
    return parse_infer(node, body, asked)


def node_key(info: Mapping[str, Any]) -> bytes | None:
    """The Ed25519 public key bytes a node's /v1/info names (what identifies a node; its URL does not)."""
    try:
        return VerifyingKey.parse(info.get("node"), "node key").public
    except VerimlError:
        return None


def attestation(bundle: Bundle) -> dict[str, Any]:
    """Another node's signed receipt for the same inference, with its outputs, carried in the bundle."""
    return {"receipt": bundle.receipt.to_json(), "salt": bundle.salt.hex(), "outputs": tensors_to_json(bundle.outputs)}


def judge_quorum(results: Sequence[tuple[str, Bundle]]) -> Bundle:
    """The first bundle with the others as attestations, if every output agrees with the first under the
    manifest's policy; otherwise Disagreement naming the nodes. Never returns an output without agreement."""
    (first_node, first), others = results[0], results[1:]
    # A manifest id is the hash of the manifest's canonical bytes: equal bytes, one manifest (hashed only to name
    # them when they differ).
    if len({bundle.manifest.canonical for _, bundle in results}) != 1:
        manifest_ids = {str(bundle.manifest.id) for _, bundle in results}
        raise Disagreement(f"nodes ran different manifests: {sorted(manifest_ids)}", [n for n, _ in results])
    # A node is its key's bytes: the same key under two URLs, or renamed, is one node (counted once).
    nodes = {bundle.receipt.body.node.public for _, bundle in results}
    if len(nodes) != len(results):
        raise Disagreement("the quorum repeats a node key (same Ed25519 key, under another URL or name)",
                           [n for n, _ in results])  # fmt: skip
    policy = first.manifest.body.policy
    classes = {bundle.receipt.body.runtime.runtime_class for _, bundle in results}
    if policy.kind == "exact" and len(classes) > 1:
        # Bitwise results are expected only within one runtime class: this is neither agreement nor disagreement.
        raise VerificationFailed(f"quorum: not comparable: the nodes ran different runtime classes {sorted(classes)}")
    disagreeing = []
    first_inputs = tensors_digest(first.inputs)
    for node, bundle in others:
        if tensors_digest(bundle.inputs) != first_inputs:
            disagreeing.append(f"{node} (different input digest)")
            continue
        comparison = compare_outputs(first.manifest.body.policy, first.outputs, bundle.outputs)
        if not comparison.agree:
            disagreeing.append(f"{node} ({comparison.detail})")
    if disagreeing:
        raise Disagreement(
            f"outputs disagree with {first_node}: {'; '.join(disagreeing)}", [first_node, *[n for n, _ in others]]
        )
    return replace(first, attestations=tuple(attestation(bundle) for _, bundle in others))


def manifest_request(ref: str) -> tuple[str, dict[str, Any]]:
    """The GET path and query that ask a node for the manifest a reference names."""
    parsed = ModelRef.parse(ref)
    if parsed.manifest_id is not None:
        return f"/v1/manifests/{parsed.manifest_id}", {}
    return f"/v1/models/{parsed.name}", {} if parsed.version is None else {"version": parsed.version}


def resolved_answer(node: str, ref: str, response: httpx.Response, publishers: frozenset[bytes]) -> SignedManifest:
    try:
        signed = parse_signed_manifest(response.json())
    except (ValueError, VerimlError) as exc:
        raise VerificationFailed(f"node {node}: malformed manifest for {ref} ({exc})") from exc
    return check_resolved(node, ref, signed, publishers)


def newest(answers: Sequence[SignedManifest], publishers: frozenset[bytes]) -> SignedManifest:
    """The latest version among the nodes' answers for a bare name: by a pinned publisher, or, with none pinned,
    by the publisher of the first answer (nodes that lag behind do not pin the client to an old version, and a
    node naming another publisher's higher version does not move it to that publisher)."""
    trusted = publishers or {answers[0].body.publisher.public}
    return max((m for m in answers if m.body.publisher.public in trusted), key=lambda m: m.body.version)


def no_answer(what: str, failures: Sequence[VerimlError]) -> VerimlError:
    """The error when no node gave an acceptable answer: a refused (substituted or unverifiable) answer is
    VerificationFailed, else NotFound when every node said so, else Unavailable; each node's reason is named."""
    reasons = "; ".join(str(exc) for exc in failures) or "no node to ask"
    if any(isinstance(exc, VerificationFailed) for exc in failures):
        return VerificationFailed(f"{what}: no acceptable answer: {reasons}")
    if failures and all(isinstance(exc, NotFound) for exc in failures):
        return NotFound(f"{what}: {reasons}")
    return Unavailable(f"{what}: {reasons}")


class Nodes:
    """The node list, with a rotating start so load spreads, and what each node said about itself. A node is
    its key: URLs whose /v1/info names the same Ed25519 key are one node, asked and counted once."""

    def __init__(self, nodes: Sequence[str]) -> None:
        if not nodes:
            raise InvalidInput("client: give at least one node URL")
        self.urls = list(dict.fromkeys(url.rstrip("/") for url in nodes))
        self._start = itertools.count()
        self.infos: dict[str, dict[str, Any]] = {}

    def order(self, model: str | None = None) -> list[str]:
        offset = next(self._start) % len(self.urls)
        rotated = self.urls[offset:] + self.urls[:offset]
        seen: set[bytes] = set()
        distinct = []
        for url in rotated:
            key = node_key(self.infos.get(url, {}))
            if key is not None:
                if key in seen:
                    continue
                seen.add(key)
            distinct.append(url)
        if model is None:
            return distinct
        name = model.split("@", 1)[0]
        return sorted(distinct, key=lambda url: name not in self.infos.get(url, {}).get("models", []))

    def witness_keys(self, serving: bytes) -> list[str]:
        """The witness keys of the other known nodes: one per distinct public key, never the serving node's."""
        seen, keys = {serving}, []
        for info in self.infos.values():
            try:
                witness = VerifyingKey.parse(info.get("witness"), "witness key", COSIGNATURE_ED25519)
            except VerimlError:
                continue
            if witness.public not in seen and node_key(info) not in seen:
                seen.add(witness.public)
                keys.append(witness.vkey)
        return keys


class Resolved:
    """Manifests already resolved: by content address or pinned version for good (they name one manifest), by
    bare name for `ttl` seconds (a newer version may be published). Keyed by the publishers pinned too."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._held: dict[tuple[str, frozenset[bytes]], tuple[float, SignedManifest]] = {}

    @staticmethod
    def asks_all(ref: str) -> bool:
        """A bare name asks every node (for the newest version); anything pinned takes the first valid answer."""
        parsed = ModelRef.parse(ref)
        return parsed.manifest_id is None and parsed.version is None

    def get(self, ref: str, publishers: frozenset[bytes]) -> SignedManifest | None:
        held = self._held.get((ref, publishers))
        if held is None:
            return None
        expires, manifest = held
        return manifest if time.monotonic() < expires else None

    def put(self, ref: str, publishers: frozenset[bytes], manifest: SignedManifest) -> SignedManifest:
        lifetime = self.ttl if self.asks_all(ref) else float("inf")
        if lifetime > 0:
            self._held[(ref, publishers)] = (time.monotonic() + lifetime, manifest)
        return manifest
