"""The one path every integration (MCP, LangChain, the OpenGradient drop-in) takes to the network: a veriml
`Client`, which binds every answer to its request or raises `VerificationFailed`, plus the verdict each result
carries, computed here from the bundle at the level that was asked (never taken from a node's word)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from veriml.client import ChatResult, Client
from veriml.client.blob_fetch import fetch_blob
from veriml.client.protocol import Asked, VerifyLevel
from veriml.codec import Digest
from veriml.errors import InvalidInput, Unavailable
from veriml.hub import SignedManifest
from veriml.receipts import DEFAULT_PRIVACY, Bundle, check_privacy
from veriml.tlog import TlogProof
from veriml.verify import Report, verify_bundle

LEVELS_HELP = "signed, logged, quorum:K or proven"
OFFLINE_LEVELS = ("signed", "logged", "reexecuted", "proven")


def parse_level(text: str) -> VerifyLevel:
    """A client level (`signed`, `logged`, `quorum:K`, `proven`), refused with one line otherwise."""
    return VerifyLevel.parse(text)


class _IndexedClient(Client):
    """The SDK client, unchanged, that also remembers where each answer it accepted sits (node URL and log index,
    by request id and receipt id), so that a result can name its log entry. It records only what the client hands
    its `_accepted` hook, that is answers already bound to their request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._positions: dict[str, dict[str, tuple[str, int]]] = {}
        self._lock = threading.Lock()

    def _accepted(self, asked: Asked, url: str, bundle: Bundle, index: int) -> None:
        with self._lock:
            self._positions.setdefault(asked.request_id, {})[str(bundle.receipt.id)] = (url, index)

    def log_position(self, bundle: Bundle) -> tuple[str, int] | None:
        """Where `bundle`'s receipt sits (a quorum's members are forgotten with it)."""
        with self._lock:
            return self._positions.pop(bundle.receipt.body.request_id, {}).get(str(bundle.receipt.id))


@dataclass(frozen=True)
class InferResult:
    """An ONNX inference the client accepted: the bundle, where its receipt sits (node, log index) and the verdict
    at the level asked."""

    bundle: Bundle
    node: str | None
    log_index: int | None
    level: str
    report: Report

    @property
    def outputs(self) -> dict[str, np.ndarray]:
        return dict(self.bundle.outputs)

    @property
    def reference(self) -> str:
        """The receipt id and log index, in the node's `Veriml-Receipt` header form."""
        return reference(self.bundle, self.log_index)

    def verification(self) -> dict[str, Any]:
        return verification(self.level, self.report)


@dataclass(frozen=True)
class ChatOutcome:
    """A chat answer the client accepted (its text is what the signed tokens decode to) and its verdict."""

    result: ChatResult
    level: str
    report: Report

    @property
    def reference(self) -> str:
        return reference(self.result.bundle, self.result.log_index)

    def verification(self) -> dict[str, Any]:
        return verification(self.level, self.report)


def reference(bundle: Bundle, log_index: int | None) -> str:
    receipt = str(bundle.receipt.id)
    return receipt if log_index is None else f"{receipt}; log-index={log_index}"


def verification(level: str, report: Report) -> dict[str, Any]:
    """What a result says about how it was checked: the level the client enforced (it raises rather than return
    an answer that fails it) and the offline report of the bundle at that level, check by check."""
    return {"level": level, "verdict": report.verdict, "enforced_by_client": True, "report": report.to_json()}


def outputs_json(outputs: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Outputs as plain JSON a tool caller can read: dtype, shape and nested values (the bundle keeps the bytes)."""
    return {name: {"dtype": str(array.dtype), "shape": list(array.shape), "values": array.tolist()}
            for name, array in outputs.items()}  # fmt: skip


def manifest_json(signed: SignedManifest) -> dict[str, Any]:
    body = signed.body
    return {
        "ref": body.ref,
        "manifest_id": str(signed.id),
        "name": body.name,
        "version": body.version,
        "format": body.format,
        "blob": str(body.blob),
        "publisher": body.publisher.vkey,
        "inputs": [spec.to_json() for spec in body.inputs],
        "outputs": [spec.to_json() for spec in body.outputs],
        "policy": body.policy.to_json(),
        "zk": body.zk is not None,
        "description": body.description,
        "license": body.license,
        "signature_checked": True,
    }


class Gateway:
    """The network as the integrations see it. `nodes` are node URLs; `level` is the default verification level;
    `publishers` pins whose models are accepted (verifier keys); `privacy` is the default privacy of requests."""

    def __init__(
        self,
        nodes: Sequence[str],
        *,
        level: str = "signed",
        publishers: Sequence[str] | None = None,
        privacy: str = DEFAULT_PRIVACY,
        timeout: float = 60.0,
        log_wait: float = 15.0,
        cache_dir: Path | None = None,
    ) -> None:
        if not nodes:
            raise InvalidInput("no node given: name at least one node URL")
        parse_level(level)
        self.level = level
        self.privacy = check_privacy(privacy)
        self.publishers = list(publishers or [])
        self.client = _IndexedClient([url.rstrip("/") for url in nodes], timeout=timeout, log_wait=log_wait,
                                     publishers=self.publishers, cache_dir=cache_dir)  # fmt: skip
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.client.close()
        self._http.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- models ---------------------------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """The model names the nodes say they host, with the nodes that host each (names only: `show` and every
        call resolve a name to a manifest whose signature the client checks)."""
        hosts: dict[str, list[str]] = {}
        for url, info in self.client.refresh().items():
            for name in info.get("models", []):
                if isinstance(name, str):
                    hosts.setdefault(name, []).append(url)
        if not self.client.nodes.infos:
            raise Unavailable(f"no node answered: {', '.join(self.client.nodes.urls)}")
        return [{"name": name, "nodes": urls} for name, urls in sorted(hosts.items())]

    def show(self, ref: str) -> dict[str, Any]:
        """The signed manifest `ref` resolves to, checked by the client (and pinned to a publisher when pinned)."""
        return manifest_json(self.client.manifest(ref))

    # ---- inference ------------------------------------------------------------------------------------------

    def infer(
        self, ref: str, inputs: Mapping[str, Any], level: str | None = None, privacy: str | None = None
    ) -> InferResult:
        """Run an ONNX model through the client at `level` (default: the gateway's)."""
        level = level or self.level
        parsed = parse_level(level)
        manifest = self.client.manifest(ref)
        if manifest.body.format != "onnx":
            raise InvalidInput(f"model {manifest.body.ref}: a {manifest.body.format} model; use chat for it")
        privacy = check_privacy(privacy) if privacy is not None else self.privacy
        # The manifest resolved above, by content address: what was shown is what runs.
        bundle = self.client.infer(str(manifest.id), inputs, verify=level, privacy=privacy)
        where = self.client.log_position(bundle)
        node, index = where if where is not None else (None, None)
        if parsed.kind == "proven" and bundle.log_proof is None and node is not None and index is not None:
            bundle = self._logged(node, bundle, index)
        if bundle.log_proof is not None:
            index = TlogProof.parse(bundle.log_proof).index
        return InferResult(bundle, node, index, level, self.report(bundle, parsed))

    def chat(
        self,
        ref: str,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        level: str | None = None,
        max_tokens: int = 64,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        on_text: Callable[[str], None] | None = None,
        privacy: str | None = None,
    ) -> ChatOutcome:
        """Ask a language model through the client (text checked against the signed tokens) at `level`."""
        level = level or self.level
        parsed = parse_level(level)
        result = self.client.chat(ref, messages, verify=level, max_tokens=max_tokens, temperature=temperature,
                                  seed=seed, stop=stop, on_text=on_text, privacy=privacy or self.privacy)  # fmt: skip
        return ChatOutcome(result, level, self.report(result.bundle, parsed))

    def _logged(self, node: str, bundle: Bundle, index: int) -> Bundle:
        """A proven bundle with its log proof too, so that it verifies at level `proven` anywhere (the client returns
        proven bundles without one): waited for as the client waits at `logged`, when another node can witness."""
        if not self.client.nodes.witness_keys(serving=bundle.receipt.body.node.public):
            return bundle  # no witness known: the report says the log inclusion was not checked
        return self.client._wait_logged(node, bundle, index)

    # ---- verdicts -------------------------------------------------------------------------------------------

    def report(self, bundle: Bundle, level: VerifyLevel) -> Report:
        """The offline report of a bundle the client accepted at `level`: signed (and quorum:K, which also needs
        K agreeing distinct nodes), logged (with the other known nodes as witnesses), proven (the proof checked
        against the publisher-signed verification key, fetched by content address)."""
        pins = self.publishers
        if level.kind == "quorum":
            return verify_bundle(bundle, level="signed", trusted_publishers=pins, agreeing_nodes=level.nodes)
        if level.kind == "logged":
            witnesses = self.client.nodes.witness_keys(serving=bundle.receipt.body.node.public)
            return verify_bundle(bundle, level="logged", trusted_publishers=pins, trusted_witnesses=witnesses)
        if level.kind == "proven":
            return verify_bundle(bundle, level="proven", trusted_publishers=pins, load_blob=self.load_blob)
        return verify_bundle(bundle, level="signed", trusted_publishers=pins)

    def verify(
        self,
        bundle: Bundle,
        *,
        level: str = "signed",
        trusted_publishers: Sequence[str] = (),
        trusted_nodes: Sequence[str] = (),
        trusted_witnesses: Sequence[str] = (),
        witness_quorum: int | None = None,
        agreeing_nodes: int = 1,
    ) -> Report:
        """Check a bundle someone holds, at an offline level (signed, logged, reexecuted, proven), relative to the
        keys named (none: the verdict is at best `unanchored`). Blobs the level needs (the model to re-execute, a
        proof's verification key) are fetched from the nodes by content address and checked against it."""
        if level not in OFFLINE_LEVELS:
            raise InvalidInput(f"verification level {level!r}: expected one of {', '.join(OFFLINE_LEVELS)}")
        return verify_bundle(bundle, level=level, load_blob=self.load_blob if level in ("reexecuted", "proven")
                             else None, trusted_publishers=trusted_publishers or self.publishers,
                             trusted_nodes=trusted_nodes, trusted_witnesses=trusted_witnesses,
                             witness_quorum=witness_quorum, agreeing_nodes=agreeing_nodes)  # fmt: skip

    def load_blob(self, digest: Digest) -> bytes:
        """A blob by content address from the first node that serves bytes hashing to `digest` (read up to
        MAX_BLOB bytes: a node cannot make this process hold more)."""
        return fetch_blob(self._http, self.client.nodes.urls, digest)
