"""The SDK over HTTP: `Client` (sync) and `AsyncClient`, over one or more nodes.

    client = veriml.Client(nodes=["http://127.0.0.1:8700", "http://127.0.0.1:8701", "http://127.0.0.1:8702"])
    bundle = client.infer("alice/mlp", {"x": x}, verify="quorum:3")

Every call returns a bundle that `veriml verify` checks offline. A node that cannot be reached or answers 5xx is
skipped for the next; a 4xx is the caller's error and is raised as the matching veriml error.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx

from veriml.client.chat import ChatResult, chat_body, checked_bundle, error_of, reply_of, sse_events
from veriml.client.protocol import (
    STALE_CONNECTION,
    Disagreement,
    VerifyLevel,
    infer_body,
    judge_quorum,
    parse_infer,
    raise_for_openai_error,
    raise_for_problem,
)
from veriml.codec import Digest
from veriml.errors import InvalidInput, NotFound, Unavailable, VerificationFailed, VerimlError
from veriml.hub import ComparisonPolicy, ModelRef, SignedManifest, parse_signed_manifest
from veriml.hub.blobs import CHUNK
from veriml.identity import SigningKey
from veriml.receipts import Bundle
from veriml.service.publish import sign_next_version
from veriml.tlog import TlogProof
from veriml.verify import verify_bundle

__all__ = ["AsyncClient", "Client", "Disagreement"]


class _Nodes:
    """The node list, with a rotating start so load spreads, and what each node said about itself."""

    def __init__(self, nodes: Sequence[str]) -> None:
        if not nodes:
            raise InvalidInput("client: give at least one node URL")
        self.urls = [url.rstrip("/") for url in nodes]
        self._start = itertools.count()
        self.infos: dict[str, dict[str, Any]] = {}

    def order(self, model: str | None = None) -> list[str]:
        offset = next(self._start) % len(self.urls)
        rotated = self.urls[offset:] + self.urls[:offset]
        if model is None:
            return rotated
        name = model.split("@", 1)[0]
        return sorted(rotated, key=lambda url: name not in self.infos.get(url, {}).get("models", []))

    def witness_keys(self, except_url: str) -> list[str]:
        return [info["witness"] for url, info in self.infos.items() if url != except_url and "witness" in info]


class Client:
    def __init__(
        self,
        nodes: Sequence[str],
        admin_token: str | None = None,
        timeout: float = 30.0,
        log_wait: float = 15.0,
        proof_wait: float = 600.0,
    ) -> None:
        self.nodes = _Nodes(nodes)
        self.admin_token = admin_token
        self.log_wait = log_wait
        self.proof_wait = proof_wait
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- transport --------------------------------------------------------------------------------------

    def _request(self, url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempts = 2 if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                response = self._http.request(method, url + path, **kwargs)
                break
            except httpx.HTTPError as exc:
                if attempt == attempts or not isinstance(exc, STALE_CONNECTION):
                    raise Unavailable(f"node {url}: {type(exc).__name__}: {exc}") from exc
        raise_for_problem(url, response)
        return response

    def _first(self, method: str, path: str, model: str | None = None, **kwargs: Any) -> tuple[str, httpx.Response]:
        """The first node, in rotation, that answers; connection errors and 5xx move on to the next."""
        failures = []
        for url in self.nodes.order(model):
            try:
                return url, self._request(url, method, path, **kwargs)
            except Unavailable as exc:
                failures.append(str(exc))
        raise Unavailable(f"no node answered {method} {path}: {'; '.join(failures)}")

    def _admin(self) -> dict[str, str]:
        if not self.admin_token:
            raise InvalidInput("client: this call needs the nodes' admin token (Client(admin_token=...))")
        return {"Authorization": f"Bearer {self.admin_token}"}

    # ---- calls ------------------------------------------------------------------------------------------

    def refresh(self) -> dict[str, dict[str, Any]]:
        """Ask every node who it is and what it hosts (used to pick nodes and to know witness keys)."""
        for url in self.nodes.urls:
            try:
                self.nodes.infos[url] = self._request(url, "GET", "/v1/info").json()
            except VerimlError:
                self.nodes.infos.pop(url, None)
        return self.nodes.infos

    def manifest(self, ref: str) -> SignedManifest:
        parsed = ModelRef.parse(ref)
        if parsed.manifest_id is not None:
            _, response = self._first("GET", f"/v1/manifests/{parsed.manifest_id}")
        else:
            query = {} if parsed.version is None else {"version": parsed.version}
            _, response = self._first("GET", f"/v1/models/{parsed.name}", model=parsed.name, params=query)
        return parse_signed_manifest(response.json()).verified()

    def publish(
        self,
        model_path: Path,
        name: str,
        publisher: SigningKey,
        policy: ComparisonPolicy | None = None,
        description: str = "",
        license: str = "",
        node: str | None = None,
    ) -> SignedManifest:
        """Sign the manifest of the next version of `name` and push blob and manifest to one node."""
        url = (node or self.nodes.urls[0]).rstrip("/")
        try:
            latest = parse_signed_manifest(self._request(url, "GET", f"/v1/models/{name}").json())
        except NotFound:
            latest = None
        signed = sign_next_version(
            Path(model_path),
            name=name,
            latest=latest,
            publisher=publisher,
            policy=policy,
            description=description,
            license=license,
        )
        return self.push(signed, Path(model_path), url)

    def push(self, signed: SignedManifest, model_path: Path, node: str | None = None) -> SignedManifest:
        """Upload a model's bytes and its already signed manifest to one node (admin); the manifest stored
        there (this one, or the version the same bytes already are)."""
        url = (node or self.nodes.urls[0]).rstrip("/")
        with open(model_path, "rb") as handle:
            self._request(url, "PUT", f"/v1/blobs/{signed.body.blob}", content=iter(lambda: handle.read(CHUNK), b""),
                          headers=self._admin())  # fmt: skip
        answer = self._request(url, "POST", "/v1/manifests", json=signed.to_json(), headers=self._admin()).json()
        return self.manifest(answer["manifest_id"]) if not answer["created"] else signed

    def pin(self, ref: str, node: str) -> dict[str, Any]:
        return self._request(node.rstrip("/"), "POST", "/v1/pin", json={"model": ref}, headers=self._admin()).json()

    def infer(
        self,
        ref: str,
        inputs: Mapping[str, Any],
        verify: str = "signed",
        request_id: str | None = None,
        logged: bool = False,
        progress: Callable[[str], None] | None = None,
    ) -> Bundle:
        """Run `ref` on `inputs` at a verification level: `signed` (receipt checked), `logged` (also waits for
        a checkpoint covering the receipt, cosigned by another node), `quorum:K` (K distinct nodes in
        parallel; the agreed output with all K receipts, or Disagreement naming the nodes), or `proven` (waits
        for the node's zero-knowledge proof and checks it here; `progress` hears each proof-job status).
        `logged=True` with `quorum:K` also waits for the first node's log proof."""
        level = VerifyLevel.parse(verify)
        if not self.nodes.infos:
            self.refresh()
        if level.kind == "quorum":
            url, bundle, index = self._quorum(ref, inputs, level.nodes, request_id)
        elif level.kind == "proven":
            return self._proven(ref, inputs, request_id, progress)
        else:
            url, bundle, index = self._infer_once(ref, inputs, request_id, self.nodes.order(ref))
        if level.kind == "logged" or logged:
            bundle = self._wait_logged(url, bundle, index)
        return bundle

    def _proven(
        self, ref: str, inputs: Mapping[str, Any], request_id: str | None, progress: Callable[[str], None] | None
    ) -> Bundle:
        """Ask a node that has the circuit for a proof, wait for the proof job, and check it here against the
        verification key named in the publisher-signed ZK document (fetched by content address)."""
        body = infer_body(ref, inputs, request_id, verify="proven")
        url, response = self._first("POST", "/v1/infer", model=ref, json=body)
        bundle, _ = parse_infer(url, response.json())
        deadline = time.monotonic() + self.proof_wait
        while True:
            job = self._request(url, "GET", f"/v1/proofs/{bundle.receipt.id}").json()
            if progress is not None:
                progress(job["status"])
            if job["status"] == "done":
                break
            if job["status"] == "failed":
                raise VerificationFailed(f"node {url}: proof failed: {job['error']}")
            if time.monotonic() > deadline:
                raise Unavailable(f"node {url}: no proof within {self.proof_wait:.0f} s")
            time.sleep(0.5)
        proven = replace(bundle, zk_proof=job["zk_proof"])

        def load_blob(digest: Digest) -> bytes:
            return self._request(url, "GET", f"/v1/blobs/{digest}").content

        report = verify_bundle(proven, level="signed", load_blob=load_blob)
        zk = report.check("zk.proof")
        if not report.consistent or zk.status != "pass":
            raise VerificationFailed(f"node {url}: proven bundle does not verify: {zk.detail}")
        return proven

    def push_zk(self, document: Any, load_blob: Any, node: str | None = None) -> None:
        """Upload a ZK document's artifacts (by content address) and the document itself to a node (admin)."""
        url = (node or self.nodes.urls[0]).rstrip("/")
        for blob in document.body.artifacts.values():
            self._request(url, "PUT", f"/v1/blobs/{blob}", content=load_blob(blob), headers=self._admin())
        self._request(url, "POST", "/v1/zk-documents", json=document.to_json(), headers=self._admin())

    def _infer_once(
        self, ref: str, inputs: Mapping[str, Any], request_id: str | None, urls: Sequence[str]
    ) -> tuple[str, Bundle, int]:
        body = infer_body(ref, inputs, request_id)
        failures = []
        for url in urls:
            try:
                response = self._request(url, "POST", "/v1/infer", json=body)
            except Unavailable as exc:
                failures.append(str(exc))
                continue
            bundle, index = parse_infer(url, response.json())
            return url, bundle, index
        raise Unavailable(f"no node could run {ref}: {'; '.join(failures)}")

    def _quorum(self, ref: str, inputs: Mapping[str, Any], k: int, request_id: str | None) -> tuple[str, Bundle, int]:
        if k > len(self.nodes.urls):
            raise InvalidInput(f"quorum:{k} needs {k} nodes; the client knows {len(self.nodes.urls)}")
        results, indices = self._gather(ref, inputs, k, request_id)
        versions = {bundle.manifest.body.version for _, bundle in results}
        if ModelRef.parse(ref).version is None and len(versions) > 1:
            # Nodes disagree on which version is the latest: ask all of them for the newest one.
            newest = max((bundle for _, bundle in results), key=lambda b: b.manifest.body.version)
            results, indices = self._gather(newest.manifest.body.ref, inputs, k, request_id)
        first = results[0][0]
        return first, judge_quorum(results), indices[first]

    def _gather(
        self, ref: str, inputs: Mapping[str, Any], k: int, request_id: str | None
    ) -> tuple[list[tuple[str, Bundle]], dict[str, int]]:
        """Answers from k distinct nodes, asked in parallel; a node that fails is replaced by the next one."""
        results: list[tuple[str, Bundle]] = []
        indices: dict[str, int] = {}
        failures: list[str] = []
        with ThreadPoolExecutor(max_workers=k) as pool:
            pending = self.nodes.order(ref)
            while len(results) < k and pending:
                batch, pending = pending[: k - len(results)], pending[k - len(results) :]
                futures = {url: pool.submit(self._infer_once, ref, inputs, request_id, [url]) for url in batch}
                for url, future in futures.items():
                    try:
                        _, bundle, indices[url] = future.result()
                        results.append((url, bundle))
                    except VerimlError as exc:  # unreachable, refusing or lying: ask the next node
                        failures.append(str(exc))
        if len(results) < k:
            raise Unavailable(f"quorum:{k}: only {len(results)} nodes answered ({'; '.join(failures)})")
        return results, indices

    def chat(
        self,
        ref: str,
        messages: str | Sequence[Mapping[str, Any]],
        *,
        verify: str = "signed",
        max_tokens: int = 64,
        temperature: float = 0.0,
        seed: int | None = None,
        stop: Sequence[str] | None = None,
        on_text: Callable[[str], None] | None = None,
        logged: bool = False,
        **extra: Any,
    ) -> ChatResult:
        """Ask a language model through the nodes' OpenAI-compatible endpoint: the reply text with the bundle that
        proves it. `messages` is a user prompt or OpenAI chat messages; `on_text` receives the text as it streams
        (from the first node). `verify="quorum:K"` asks K nodes and returns only tokens they all generated;
        greedy decoding (`temperature=0`) is exact, and sampling uses one seed for all of them.

            result = client.chat("smol/lm", "What is 2+2?", verify="quorum:3")
            print(result.text, result.bundle.receipt.id)
        """
        level = VerifyLevel.parse(verify)
        if level.kind == "proven":
            raise InvalidInput("chat: verify='proven' is not available for language models")
        if not self.nodes.infos:
            self.refresh()
        body = chat_body(ref, messages, max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop,
                         stream=False, extra=extra)  # fmt: skip
        if level.kind != "quorum":
            result = self._chat_first(ref, body, on_text)
        else:
            result = self._chat_quorum(ref, body, level.nodes, on_text)
        if level.kind == "logged" or logged:
            result = replace(result, bundle=self._wait_logged(result.node, result.bundle, result.log_index))
        return result

    def _chat_first(self, ref: str, body: dict[str, Any], on_text: Callable[[str], None] | None) -> ChatResult:
        failures = []
        for url in self.nodes.order(ref):
            try:
                return self._chat_one(url, body, on_text)
            except Unavailable as exc:
                failures.append(str(exc))
        raise Unavailable(f"no node could run {ref}: {'; '.join(failures)}")

    def _chat_quorum(self, ref: str, body: dict[str, Any], k: int, on_text: Callable[[str], None] | None) -> ChatResult:
        if k > len(self.nodes.urls):
            raise InvalidInput(f"quorum:{k} needs {k} nodes; the client knows {len(self.nodes.urls)}")
        urls = self.nodes.order(ref)[:k]
        with ThreadPoolExecutor(max_workers=k) as pool:
            futures = [pool.submit(self._chat_one, url, body, None if n else on_text) for n, url in enumerate(urls)]
            results, failures = [], []
            for future in futures:
                try:
                    results.append(future.result())
                except VerimlError as exc:
                    failures.append(str(exc))
        if len(results) < k:
            raise Unavailable(f"quorum:{k}: only {len(results)} nodes answered ({'; '.join(failures)})")
        agreed = judge_quorum([(r.node, r.bundle) for r in results])
        return replace(results[0], bundle=agreed)

    def _chat_one(self, url: str, body: dict[str, Any], on_text: Callable[[str], None] | None) -> ChatResult:
        if on_text is None:
            try:
                response = self._http.post(url + "/v1/chat/completions", json=body)
            except httpx.HTTPError as exc:
                raise Unavailable(f"node {url}: {type(exc).__name__}: {exc}") from exc
            raise_for_openai_error(url, response)
            text, finish, veriml = reply_of(url, response.json())
        else:
            text, finish, veriml = self._chat_stream(url, {**body, "stream": True}, on_text)
        index = int(veriml["log_index"])
        bundle_json = self._request(url, "GET", f"/v1/log/entries/{index}/bundle").json()
        return ChatResult(text, finish, checked_bundle(url, bundle_json, veriml), url, index)

    def _chat_stream(
        self, url: str, body: dict[str, Any], on_text: Callable[[str], None]
    ) -> tuple[str, str, dict[str, Any]]:
        pieces: list[str] = []
        try:
            with self._http.stream("POST", url + "/v1/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_openai_error(url, response)
                for event in sse_events(response.iter_lines()):
                    if (message := error_of(event)) is not None:
                        raise Unavailable(f"node {url}: generation failed: {message}")
                    choice = event["choices"][0]
                    piece = choice.get("delta", {}).get("content")
                    if piece:
                        pieces.append(piece)
                        on_text(piece)
                    if choice.get("finish_reason") is not None:
                        return "".join(pieces), choice["finish_reason"], event["veriml"]
        except httpx.HTTPError as exc:
            raise Unavailable(f"node {url}: {type(exc).__name__}: {exc}") from exc
        except (KeyError, IndexError, TypeError) as exc:
            raise VerificationFailed(f"node {url}: malformed event in the stream ({exc!r})") from exc
        raise VerificationFailed(f"node {url}: the stream ended without its receipt")

    def _wait_logged(self, url: str, bundle: Bundle, index: int) -> Bundle:
        deadline = time.monotonic() + self.log_wait
        while True:
            entry = self._request(url, "GET", f"/v1/log/entries/{index}").json()
            proven = _proven(self.nodes, url, bundle, index, entry, time.monotonic() > deadline, self.log_wait)
            if proven is not None:
                return proven
            time.sleep(0.1)


def _proven(
    nodes: _Nodes, url: str, bundle: Bundle, index: int, entry: dict[str, Any], late: bool, wait: float
) -> Bundle | None:
    """The bundle with its log proof once a checkpoint covering it is cosigned by another known node; None to
    keep waiting; Unavailable once `late`."""
    witnesses = nodes.witness_keys(except_url=url)
    if not witnesses:
        raise Unavailable(f"logged: no other node is known to witness {url}'s log; give the client more nodes")
    quorum = 1
    if entry.get("proof") is not None:
        proven = replace(bundle, log_proof=entry["proof"])
        report = verify_bundle(proven, level="logged", trusted_witnesses=witnesses, witness_quorum=quorum)
        if report.consistent:
            return proven
        if TlogProof.parse(entry["proof"]).checkpoint.checkpoint.size <= index:
            raise VerificationFailed(f"node {url}: proof does not cover entry {index}")
    if late:
        raise Unavailable(
            f"node {url}: no checkpoint covering entry {index} cosigned by {quorum} witness(es) within {wait:.0f} s"
        )
    return None


class AsyncClient:
    """`infer` at every level, for asyncio programs (publishing and pinning stay on the sync client)."""

    def __init__(self, nodes: Sequence[str], timeout: float = 30.0, log_wait: float = 15.0) -> None:
        self.nodes = _Nodes(nodes)
        self.log_wait = log_wait
        self._http = httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(self, url: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        attempts = 2 if method == "GET" else 1
        for attempt in range(1, attempts + 1):
            try:
                response = await self._http.request(method, url + path, **kwargs)
                break
            except httpx.HTTPError as exc:
                if attempt == attempts or not isinstance(exc, STALE_CONNECTION):
                    raise Unavailable(f"node {url}: {type(exc).__name__}: {exc}") from exc
        raise_for_problem(url, response)
        return response

    async def _infer_once(self, ref: str, inputs: Mapping[str, Any], request_id: str | None, urls: Sequence[str]):  # type: ignore[no-untyped-def]
        body = infer_body(ref, inputs, request_id)
        failures = []
        for url in urls:
            try:
                response = await self._request(url, "POST", "/v1/infer", json=body)
            except Unavailable as exc:
                failures.append(str(exc))
                continue
            bundle, index = parse_infer(url, response.json())
            return url, bundle, index
        raise Unavailable(f"no node could run {ref}: {'; '.join(failures)}")

    async def refresh(self) -> dict[str, dict[str, Any]]:
        for url in self.nodes.urls:
            try:
                self.nodes.infos[url] = (await self._request(url, "GET", "/v1/info")).json()
            except VerimlError:
                self.nodes.infos.pop(url, None)
        return self.nodes.infos

    async def infer(
        self,
        ref: str,
        inputs: Mapping[str, Any],
        verify: str = "signed",
        request_id: str | None = None,
        logged: bool = False,
    ) -> Bundle:
        """As `Client.infer` (proofs: use `Client`)."""
        level = VerifyLevel.parse(verify)
        if level.kind == "proven":
            raise InvalidInput("AsyncClient: verify='proven' is not supported; use Client")
        if not self.nodes.infos:
            await self.refresh()
        if level.kind != "quorum":
            url, bundle, index = await self._infer_once(ref, inputs, request_id, self.nodes.order(ref))
        else:
            url, bundle, index = await self._quorum(ref, inputs, level.nodes, request_id)
        if level.kind == "logged" or logged:
            bundle = await self._wait_logged(url, bundle, index)
        return bundle

    async def _quorum(self, ref: str, inputs: Mapping[str, Any], k: int, request_id: str | None):  # type: ignore[no-untyped-def]
        if k > len(self.nodes.urls):
            raise InvalidInput(f"quorum:{k} needs {k} nodes; the client knows {len(self.nodes.urls)}")
        urls = self.nodes.order(ref)[:k]
        answers = await asyncio.gather(*(self._infer_once(ref, inputs, request_id, [u]) for u in urls),
                                       return_exceptions=True)  # fmt: skip
        done = [answer for answer in answers if isinstance(answer, tuple)]
        if len(done) < k:
            errors = [str(a) for a in answers if isinstance(a, BaseException)]
            raise Unavailable(f"quorum:{k}: only {len(done)} nodes answered ({'; '.join(errors)})")
        first_url, _, first_index = done[0]
        return first_url, judge_quorum([(url, bundle) for url, bundle, _ in done]), first_index

    async def _wait_logged(self, url: str, bundle: Bundle, index: int) -> Bundle:
        deadline = time.monotonic() + self.log_wait
        while True:
            entry = (await self._request(url, "GET", f"/v1/log/entries/{index}")).json()
            proven = _proven(self.nodes, url, bundle, index, entry, time.monotonic() > deadline, self.log_wait)
            if proven is not None:
                return proven
            await asyncio.sleep(0.1)
