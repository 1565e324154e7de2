"""What the sync and async clients share: request bodies, response parsing, error mapping, quorum judging.
Only the transport differs between them (as in httpx)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import httpx
import numpy as np

from veriml.codec import tensors_digest, tensors_to_json
from veriml.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
    VerificationFailed,
    VerimlError,
)
from veriml.hub import compare_outputs
from veriml.receipts import DEFAULT_PRIVACY, Bundle, new_salt
from veriml.verify import verify_bundle

_KINDS: dict[str, type[VerimlError]] = {
    "invalid-input": InvalidInput,
    "not-found": NotFound,
    "conflict": Conflict,
    "permission-denied": PermissionDenied,
    "verification-failed": VerificationFailed,
    "unavailable": Unavailable,
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


def infer_body(
    model: str,
    inputs: Mapping[str, Any],
    request_id: str | None,
    verify: str | None = None,
    *,
    salt: bytes | None = None,
    privacy: str = DEFAULT_PRIVACY,
) -> dict[str, Any]:
    """The /v1/infer body. The salt is the client's: one per call, the same for every node of a quorum."""
    arrays = {k: v for k, v in inputs.items() if isinstance(v, np.ndarray)}
    plain = {k: v for k, v in inputs.items() if not isinstance(v, np.ndarray)}
    body = {"model": model, "inputs": {**plain, **tensors_to_json(arrays)}, "request_id": request_id,
            "salt": (new_salt() if salt is None else salt).hex(), "privacy": privacy}  # fmt: skip
    if verify is not None:
        body["verify"] = verify
    return body


def parse_infer(node: str, body: Any) -> tuple[Bundle, int]:
    try:
        bundle = Bundle.from_json(body["bundle"])
        index = int(body["log_index"])
    except (KeyError, TypeError, ValueError) as exc:
        raise VerificationFailed(f"node {node}: malformed inference answer ({exc})") from exc
    report = verify_bundle(bundle, level="signed")
    if not report.consistent:
        raise VerificationFailed(f"node {node}: bundle does not verify: {report.failures()}")
    return bundle, index


def attestation(bundle: Bundle) -> dict[str, Any]:
    """Another node's signed receipt for the same inference, with its outputs, carried in the bundle."""
    return {"receipt": bundle.receipt.to_json(), "salt": bundle.salt.hex(), "outputs": tensors_to_json(bundle.outputs)}


def judge_quorum(results: Sequence[tuple[str, Bundle]]) -> Bundle:
    """The first bundle with the others as attestations, if every output agrees with the first under the
    manifest's policy; otherwise Disagreement naming the nodes. Never returns an output without agreement."""
    (first_node, first), others = results[0], results[1:]
    manifest_ids = {str(bundle.manifest.id) for _, bundle in results}
    if len(manifest_ids) != 1:
        raise Disagreement(f"nodes ran different manifests: {sorted(manifest_ids)}", [n for n, _ in results])
    nodes = {bundle.receipt.body.node.vkey for _, bundle in results}
    if len(nodes) != len(results):
        raise Disagreement("the quorum repeats a node key", [n for n, _ in results])
    policy = first.manifest.body.policy
    classes = {bundle.receipt.body.runtime.runtime_class for _, bundle in results}
    if policy.kind == "exact" and len(classes) > 1:
        # Bitwise results are expected only within one runtime class: this is neither agreement nor disagreement.
        raise VerificationFailed(f"quorum: not comparable: the nodes ran different runtime classes {sorted(classes)}")
    disagreeing = []
    for node, bundle in others:
        if tensors_digest(bundle.inputs) != tensors_digest(first.inputs):
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
