"""The SDK over HTTP: `Client` (sync) and `AsyncClient`, over one or more nodes.

    client = veriml.Client(nodes=["http://127.0.0.1:8700", "http://127.0.0.1:8701", "http://127.0.0.1:8702"])
    bundle = client.infer("alice/mlp", {"x": x}, verify="quorum:3", publisher=alice_vkey)

Every call returns a bundle that `veriml verify` checks offline, and that answers the request: the client resolves
the model reference once to a signed manifest (pinned to a publisher when given), converts the inputs itself,
chooses the request id, and refuses any answer for another manifest, other inputs or another request id
(`protocol.check_answer`), trying the next node. A node that cannot be reached or answers 5xx is skipped for the
next; a 4xx is the caller's error and is raised as the matching veriml error.

The sync client sends its one hot request, POST /v1/infer, over `wire.Wire` (keep-alive sockets, no httpx) where
that serves the node, and asks a quorum's nodes at once from the calling thread; everything else goes through
httpx. The answers are checked exactly as strictly either way (`protocol.parse_infer`).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import httpx

from veriml.client.blob_fetch import stream_blob
from veriml.client.chat import (
    ChatAsked,
    ChatResult,
    StreamedChat,
    chat_ask,
    chat_body,
    chat_result,
    check_chat_level,
    judge_chat_quorum,
    reply_of,
    sse_event,
    tokenizer_unavailable,
)
from veriml.client.protocol import (
    STALE_CONNECTION,
    Asked,
    Disagreement,
    Nodes,
    Resolved,
    VerifyLevel,
    ask,
    check_resolved,
    infer_body,
    infer_payload,
    judge_quorum,
    manifest_request,
    newest,
    no_answer,
    parse_infer,
    parse_infer_bytes,
    publisher_keys,
    raise_for_openai_error,
    raise_for_problem,
    resolved_answer,
)
from veriml.client.tokenizer import Tokenizer, Tokenizers
from veriml.client.wire import Exchange, Reply, Wire
from veriml.codec import Digest
from veriml.errors import InvalidInput, NotFound, Unavailable, VerificationFailed, VerimlError
from veriml.hub import ComparisonPolicy, SignedManifest, parse_signed_manifest
from veriml.hub.blobs import CHUNK
from veriml.identity import SigningKey, VerifyingKey
from veriml.receipts import DEFAULT_PRIVACY, Bundle
from veriml.service.publish import sign_next_version
from veriml.tlog import TlogProof
from veriml.verify import verify_bundle

__all__ = ["AsyncClient", "Client", "Disagreement"]

Publishers = str | VerifyingKey | Sequence[str | VerifyingKey] | None
_JSON = {"Content-Type": "application/json"}
# A node asked to pin a model it has not heard of asks its peers; a busy peer may not answer in time, and the node
# says so (503) rather than that nobody holds it. Pinning is idempotent: it is asked again after these pauses.
PIN_RETRY_PAUSES = (1.0, 3.0)


class Client:
    """`publishers` pins whose models this client accepts (verifier keys, compared by public key bytes): a model
    reference by name then resolves only to a manifest one of them signed. `cache_dir` keeps the language-model
    vocabularies the client checks chat answers with (default ~/.cache/veriml/client). A bare name resolves to
    the newest version the nodes know (by the pinned publishers, else by the first answer's publisher) and is
    reused for `resolve_ttl` seconds; a manifest id or `owner/name@N` resolves once."""

    def __init__(
        self,
        nodes: Sequence[str],
        admin_token: str | None = None,
        timeout: float = 30.0,
        log_wait: float = 15.0,
        proof_wait: float = 600.0,
        publishers: Publishers = None,
        cache_dir: Path | None = None,
        resolve_ttl: float = 5.0,
    ) -> None:
        self.nodes = Nodes(nodes)
        self.admin_token = admin_token
        self.log_wait = log_wait
        self.proof_wait = proof_wait
        self.publishers = publisher_keys(publishers)
        self.tokenizers = Tokenizers(cache_dir)
        self._resolved = Resolved(resolve_ttl)
        self._http = httpx.Client(timeout=timeout)
        self._timeout = timeout
        # POST /v1/infer, the hot request, goes over a lean transport where it serves the node (plain http, no
        # proxy): one per thread using this client, as httpx's pool is shared by threads.
        self._wires: list[Wire] = []
        self._wire_of = threading.local()
        self._wires_lock = threading.Lock()
        self._quorum_pool: ThreadPoolExecutor | None = None  # made on the first threaded quorum, kept for the next

    def close(self) -> None:
        if self._quorum_pool is not None:
            self._quorum_pool.shutdown(wait=False)
        with self._wires_lock:
            for wire in self._wires:
                wire.close()
            self._wires.clear()
        self._http.close()

    @property
    def _wire(self) -> Wire:
        wire = getattr(self._wire_of, "wire", None)
        if wire is None:
            wire = self._wire_of.wire = Wire(self._timeout)
            with self._wires_lock:
                self._wires.append(wire)
        return wire

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

    def manifest(self, ref: str, publisher: Publishers = None) -> SignedManifest:
        """Resolve a model reference to the signed manifest every node will be asked for: its content address
        when `ref` is a manifest id, else the name (and pinned version) it names, signed by a pinned publisher
        (`publisher`, else the client's `publishers`) when any is pinned. A node answering otherwise is skipped."""
        pins = publisher_keys(publisher) or self.publishers
        held = self._resolved.get(ref, pins)
        if held is not None:
            return held
        path, query = manifest_request(ref)
        failures: list[VerimlError] = []
        answers: list[SignedManifest] = []
        for url in self.nodes.order(ref):
            try:
                answers.append(resolved_answer(url, ref, self._request(url, "GET", path, params=query), pins))
            except (Unavailable, NotFound, VerificationFailed) as exc:
                failures.append(exc)
                continue
            if not self._resolved.asks_all(ref):
                break
        if not answers:
            raise no_answer(f"model {ref}", failures)
        return self._resolved.put(ref, pins, newest(answers, pins))

    resolve = manifest

    def publish(
        self,
        model_path: Path,
        name: str,
        publisher: SigningKey,
        policy: ComparisonPolicy | None = None,
        description: str = "",
        license: str = "",
        node: str | None = None,
        chain_account: str | None = None,
        progress: Callable[[int], None] | None = None,
        format: str | None = None,
    ) -> SignedManifest:
        """Sign the manifest of the next version of `name` here, with `publisher`, and push manifest and blob to
        one node by open publishing: the signature is the credential (no admin token). `progress` hears the
        number of bytes each uploaded chunk held."""
        url = (node or self.nodes.urls[0]).rstrip("/")
        signed = self.sign_next(model_path, name, publisher, node=url, policy=policy, description=description,
                                license=license, chain_account=chain_account, format=format)  # fmt: skip
        return self.push(signed, Path(model_path), url, progress)

    def sign_next(
        self, model_path: Path, name: str, publisher: SigningKey, node: str | None = None, **fields: Any
    ) -> SignedManifest:
        """The signed manifest of the version after the one `node` holds of `name` (version 1 if none)."""
        url = (node or self.nodes.urls[0]).rstrip("/")
        try:
            latest = check_resolved(url, name, parse_signed_manifest(self._request(url, "GET", f"/v1/models/{name}")
                                                                     .json()), frozenset())  # fmt: skip
        except NotFound:
            latest = None
        return sign_next_version(Path(model_path), name=name, latest=latest, publisher=publisher, **fields)

    def push(
        self,
        signed: SignedManifest,
        model_path: Path,
        node: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> SignedManifest:
        """Publish an already signed manifest and its model's bytes on one node (open publishing: the node checks
        the signature, the name's owner, the version and the publisher's quotas first; the bytes are sent only
        if it does not hold them). The manifest stored there: this one, or the version these bytes already are."""
        url = (node or self.nodes.urls[0]).rstrip("/")
        answer = self._request(url, "POST", "/v1/publish", json=signed.to_json())
        body = answer.json()
        if answer.status_code == 202:
            with open(model_path, "rb") as handle:

                def chunks() -> Iterator[bytes]:
                    while chunk := handle.read(CHUNK):
                        if progress is not None:
                            progress(len(chunk))
                        yield chunk

                body = self._request(url, "PUT", body["upload"], content=chunks()).json()
        return self.manifest(body["manifest_id"]) if not body["created"] else signed

    def models(self, query: str = "", node: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Browse a node's hub (public, read-only): the latest version of each model whose name or description
        contains `query`. Each entry names its manifest id; `manifest(id)` fetches and checks the signed manifest."""
        url = (node or self.nodes.urls[0]).rstrip("/")
        return self._request(url, "GET", "/v1/hub/models", params={"q": query, "limit": limit}).json()["models"]

    def pin(self, ref: str, node: str) -> dict[str, Any]:
        """Have `node` hold `ref` (fetching it from its peers); asked again while the node answers 503."""
        url, body, headers = node.rstrip("/"), {"model": ref}, self._admin()
        for pause in PIN_RETRY_PAUSES:
            try:
                return self._request(url, "POST", "/v1/pin", json=body, headers=headers).json()
            except Unavailable:
                time.sleep(pause)
        return self._request(url, "POST", "/v1/pin", json=body, headers=headers).json()

    def infer(
        self,
        ref: str,
        inputs: Mapping[str, Any],
        verify: str = "signed",
        request_id: str | None = None,
        logged: bool = False,
        progress: Callable[[str], None] | None = None,
        publisher: Publishers = None,
        privacy: str = DEFAULT_PRIVACY,
    ) -> Bundle:
        """Run `ref` on `inputs` at a verification level: `signed` (receipt checked), `logged` (also waits for
        a checkpoint covering the receipt, cosigned by another node), `quorum:K` (K distinct nodes in
        parallel; the agreed output with all K receipts, or Disagreement naming the nodes), or `proven` (waits
        for the node's zero-knowledge proof and checks it here; `progress` hears each proof-job status).
        `logged=True` with `quorum:K` also waits for the first node's log proof. At every level the answer is
        for the manifest `ref` resolved to (by `publisher` when pinned), the inputs sent and a fresh request id
        (or `request_id`), salted with a fresh salt of the client's (one for all nodes of a quorum) and recorded
        with the `privacy` asked; a node answering anything else is refused and the next one asked."""
        level = VerifyLevel.parse(verify)
        if not self.nodes.infos:
            self.refresh()
        asked = ask(self.manifest(ref, publisher), inputs, request_id, privacy)
        if level.kind == "quorum":
            url, bundle, index = self._quorum(asked, level.nodes)
        elif level.kind == "proven":
            return self._proven(asked, progress)
        else:
            url, bundle, index = self._infer_once(asked, self.nodes.order(asked.manifest.body.name))
        if level.kind == "logged" or logged:
            bundle = self._wait_logged(url, bundle, index)
        return bundle

    def _proven(self, asked: Asked, progress: Callable[[str], None] | None) -> Bundle:
        """Ask a node that has the circuit for a proof, wait for the proof job, and check it here against the
        verification key named in the publisher-signed ZK document (fetched by content address)."""
        url, bundle, _ = self._infer_once(asked, self.nodes.order(asked.manifest.body.name), verify="proven")
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
        self, asked: Asked, urls: Sequence[str], verify: str | None = None, lean: bool = True
    ) -> tuple[str, Bundle, int]:
        """The first acceptable answer from `urls` in order: unreachable nodes and refused answers (for another
        manifest, other inputs, another request id, or not validly signed) move on to the next node. `lean`: over
        this thread's `Wire` where it serves the node, else httpx."""
        payload = infer_payload(asked, verify)
        failures: list[VerimlError] = []
        for url in urls:
            try:
                bundle, index = parse_infer_bytes(url, self._post_infer(url, payload, lean), asked)
            except (Unavailable, NotFound, VerificationFailed) as exc:  # another node may hold it, or be honest
                failures.append(exc)
                continue
            self._accepted(asked, url, bundle, index)
            return url, bundle, index
        raise no_answer(f"no node could run {asked.manifest.body.ref}", failures)

    def _accepted(self, asked: Asked, url: str, bundle: Bundle, index: int) -> None:
        """Called with every answer bound to its request, alone or as a quorum member (before the quorum counts
        it): a subclass may note where it sits."""

    def _post_infer(self, url: str, payload: bytes, lean: bool) -> bytes:
        """The answer's body, after a problem answer is raised as the matching veriml error."""
        wire = self._wire
        if lean and wire.serves(url):
            return _content(url, wire.post(url, "/v1/infer", payload))
        return self._request(url, "POST", "/v1/infer", content=payload, headers=_JSON).content

    def _quorum(self, asked: Asked, k: int) -> tuple[str, Bundle, int]:
        if k > len(self.nodes.urls):
            raise InvalidInput(f"quorum:{k} needs {k} nodes; the client knows {len(self.nodes.urls)}")
        order = self.nodes.order(asked.manifest.body.name)
        if all(self._wire.serves(url) for url in order):
            results, indices = self._gather_wire(asked, k, order)
        else:
            results, indices = self._gather(asked, k, order)
        first = results[0][0]
        return first, judge_quorum(results), indices[first]

    def _gather_wire(self, asked: Asked, k: int, order: list[str]) -> tuple[list[tuple[str, Bundle]], dict[str, int]]:
        """As `_gather`, from this thread: the request body is made once, sent to k nodes at once, and each answer
        is checked as it arrives while the others are still computing theirs."""
        payload = infer_payload(asked)
        wire = self._wire
        results: list[tuple[str, Bundle]] = []
        indices: dict[str, int] = {}
        failures: list[VerimlError] = []
        keys: set[bytes] = set()
        pending = list(order)
        asking: dict[Exchange, str] = {}
        try:
            while True:
                while len(results) + len(asking) < k and pending:
                    url = pending.pop(0)
                    asking[wire.start(url, "/v1/infer", payload)] = url
                if not asking:
                    break
                exchange = wire.wait(asking)
                url = asking.pop(exchange)
                try:
                    bundle, index = parse_infer_bytes(url, _content(url, wire.result(exchange)), asked)
                except VerimlError as exc:  # unreachable, refusing or lying: ask the next node
                    failures.append(exc)
                    continue
                self._accepted(asked, url, bundle, index)
                if not _count_once(keys, url, bundle, failures):
                    continue
                results.append((url, bundle))
                indices[url] = index
        finally:
            for exchange in asking:
                wire.abandon(exchange)
        if len(results) < k:
            raise no_answer(f"quorum:{k}: only {len(results)} distinct nodes answered acceptably", failures)
        results.sort(key=lambda result: order.index(result[0]))
        return results, indices

    def _gather(self, asked: Asked, k: int, order: list[str]) -> tuple[list[tuple[str, Bundle]], dict[str, int]]:
        """Acceptable answers from k distinct nodes (distinct node keys), asked in parallel; a node that fails,
        substitutes or repeats a key already counted is replaced by the next one as soon as it does, and the
        quorum is judged as soon as k have answered. Results keep the nodes' order (the first is the answer)."""
        results: list[tuple[str, Bundle]] = []
        indices: dict[str, int] = {}
        failures: list[VerimlError] = []
        keys: set[bytes] = set()
        if self._quorum_pool is None:  # threads kept across calls: starting k threads per call costs milliseconds
            self._quorum_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="veriml-quorum")
        pending = list(order)
        asking: dict[Future[tuple[str, Bundle, int]], str] = {}
        while True:
            while len(results) + len(asking) < k and pending:
                url = pending.pop(0)
                asking[self._quorum_pool.submit(self._infer_once, asked, [url], None, False)] = url
            if not asking:
                break
            done, _ = wait(asking, return_when=FIRST_COMPLETED)
            for future in done:
                url = asking.pop(future)
                try:
                    _, bundle, index = future.result()
                except VerimlError as exc:  # unreachable, refusing or lying: ask the next node
                    failures.append(exc)
                    continue
                if not _count_once(keys, url, bundle, failures):
                    continue
                results.append((url, bundle))
                indices[url] = index
        if len(results) < k:
            raise no_answer(f"quorum:{k}: only {len(results)} distinct nodes answered acceptably", failures)
        results.sort(key=lambda result: order.index(result[0]))
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
        publisher: Publishers = None,
        check_text: bool = True,
        privacy: str = DEFAULT_PRIVACY,
        **extra: Any,
    ) -> ChatResult:
        """Ask a language model through the nodes' OpenAI-compatible endpoint: the reply text with the bundle that
        proves it. `messages` is a user prompt or OpenAI chat messages; `on_text` receives the text as it streams
        (from the first node). `verify="quorum:K"` asks K nodes and returns only tokens they all generated;
        greedy decoding (`temperature=0`) is exact, and sampling uses one seed for all of them.

        The answer is checked here: the signed prompt tokens must be the tokenization of `messages` (the
        publisher's chat template rendered by the client), and the text returned is what the signed tokens decode
        to. Streamed pieces are provisional: if the streamed text differs from that decoding, VerificationFailed
        is raised at the end. The check needs the model's vocabulary (llama.cpp, the `llm` extra; the blob is
        fetched once by content address and cached): without it the call raises Unavailable, unless
        `check_text=False`, which returns the node's text with `text_checked=False`.

            result = client.chat("smol/lm", "What is 2+2?", verify="quorum:3")
            print(result.text, result.bundle.receipt.id)
        """
        level = VerifyLevel.parse(verify)
        check_chat_level(level.kind)
        if not self.nodes.infos:
            self.refresh()
        manifest = self.manifest(ref, publisher)
        tokenizer = self.tokenizer(manifest) if check_text else None
        asked = chat_ask(manifest, messages, max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop,
                         extra=extra, tokenizer=tokenizer, privacy=privacy)  # fmt: skip
        if level.kind != "quorum":
            result = self._chat_first(asked, on_text)
        else:
            result = self._chat_quorum(asked, level.nodes, on_text)
        if level.kind == "logged" or logged:
            result = replace(result, bundle=self._wait_logged(result.node, result.bundle, result.log_index))
        return result

    def tokenizer(self, manifest: SignedManifest) -> Tokenizer:
        """The model's vocabulary, from its blob fetched by content address from a node (once; cached)."""
        nodes = partial(self.nodes.order, manifest.body.name)  # asked only for a fetch (see Tokenizers.get)
        try:
            return self.tokenizers.get(manifest, nodes, partial(stream_blob, self._http))
        except Unavailable as exc:
            raise tokenizer_unavailable(manifest, exc) from exc

    def _chat_first(self, asked: ChatAsked, on_text: Callable[[str], None] | None) -> ChatResult:
        failures: list[VerimlError] = []
        for url in self.nodes.order(asked.manifest.body.name):
            try:
                return self._chat_one(url, asked, on_text)
            except (Unavailable, NotFound, VerificationFailed) as exc:  # another node may hold it, or be honest
                failures.append(exc)
        raise no_answer(f"no node could run {asked.manifest.body.ref}", failures)

    def _chat_quorum(self, asked: ChatAsked, k: int, on_text: Callable[[str], None] | None) -> ChatResult:
        if k > len(self.nodes.urls):
            raise InvalidInput(f"quorum:{k} needs {k} nodes; the client knows {len(self.nodes.urls)}")
        urls = self.nodes.order(asked.manifest.body.name)[:k]
        results: list[ChatResult] = []
        failures: list[VerimlError] = []
        keys: set[bytes] = set()
        with ThreadPoolExecutor(max_workers=k) as pool:
            futures = [pool.submit(self._chat_one, url, asked, None if n else on_text) for n, url in enumerate(urls)]
            for future in futures:
                try:
                    result = future.result()
                except VerimlError as exc:
                    failures.append(exc)
                    continue
                if _count_once(keys, result.node, result.bundle, failures):
                    results.append(result)
        if len(results) < k:
            raise no_answer(f"quorum:{k}: only {len(results)} distinct nodes answered acceptably", failures)
        return judge_chat_quorum(results)

    def _chat_one(self, url: str, asked: ChatAsked, on_text: Callable[[str], None] | None) -> ChatResult:
        if on_text is None:
            try:
                response = self._http.post(url + "/v1/chat/completions", json=chat_body(asked, stream=False))
            except httpx.HTTPError as exc:
                raise Unavailable(f"node {url}: {type(exc).__name__}: {exc}") from exc
            raise_for_openai_error(url, response)
            text, finish, veriml = reply_of(url, response.json())
        else:
            text, finish, veriml = self._chat_stream(url, asked, on_text)
        return chat_result(url, veriml, text, finish, asked)

    def _chat_stream(
        self, url: str, asked: ChatAsked, on_text: Callable[[str], None]
    ) -> tuple[str, str, dict[str, Any]]:
        """Stream the text to `on_text` as it comes, each chunk checked first (`chat.StreamedChat`)."""
        stream = StreamedChat(url, on_text, asked)
        try:
            with self._http.stream(
                "POST", url + "/v1/chat/completions", json=chat_body(asked, stream=True)
            ) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for_openai_error(url, response)
                for line in response.iter_lines():
                    if (answer := stream.feed(sse_event(line))) is not None:
                        return answer
        except httpx.HTTPError as exc:
            raise Unavailable(f"node {url}: {type(exc).__name__}: {exc}") from exc
        raise stream.ended()

    def _wait_logged(self, url: str, bundle: Bundle, index: int) -> Bundle:
        deadline = time.monotonic() + self.log_wait
        while True:
            entry = self._request(url, "GET", f"/v1/log/entries/{index}").json()
            proven = _proven(self.nodes, url, bundle, index, entry, time.monotonic() > deadline, self.log_wait)
            if proven is not None:
                return proven
            time.sleep(0.1)


def _content(url: str, reply: Reply) -> bytes:
    if reply.status_code >= 400:
        raise_for_problem(url, reply.as_httpx())
    return reply.content


def _count_once(keys: set[bytes], url: str, bundle: Bundle, failures: list[VerimlError]) -> bool:
    """Count a quorum member once per Ed25519 key: one node under two URLs, or a key renamed, is one member."""
    key = bundle.receipt.body.node.public
    if key in keys:
        failures.append(VerificationFailed(f"node {url}: its key {bundle.receipt.body.node.key_id} is already counted"))
        return False
    keys.add(key)
    return True


def _proven(
    nodes: Nodes, url: str, bundle: Bundle, index: int, entry: dict[str, Any], late: bool, wait: float
) -> Bundle | None:
    """The bundle with its log proof once a checkpoint covering it is cosigned by another known node; None to
    keep waiting; Unavailable once `late`."""
    witnesses = nodes.witness_keys(serving=bundle.receipt.body.node.public)
    if not witnesses:
        raise Unavailable(f"logged: no other node (another key) is known to witness {url}'s log; give the client "
                          "more nodes")  # fmt: skip
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
    """`infer` at every level but `proven`, and `chat`, for asyncio programs, with the same request binding and
    answer checks as `Client` (the shared layers in `protocol` and `chat`: only the transport differs); publishing,
    pinning and proofs stay on the sync client."""

    def __init__(
        self,
        nodes: Sequence[str],
        timeout: float = 30.0,
        log_wait: float = 15.0,
        publishers: Publishers = None,
        resolve_ttl: float = 5.0,
        cache_dir: Path | None = None,
    ) -> None:
        self.nodes = Nodes(nodes)
        self.log_wait = log_wait
        self.publishers = publisher_keys(publishers)
        self.tokenizers = Tokenizers(cache_dir)
        self._resolved = Resolved(resolve_ttl)
        self._http = httpx.AsyncClient(timeout=timeout)
        self._timeout = timeout

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

    async def refresh(self) -> dict[str, dict[str, Any]]:
        for url in self.nodes.urls:
            try:
                self.nodes.infos[url] = (await self._request(url, "GET", "/v1/info")).json()
            except VerimlError:
                self.nodes.infos.pop(url, None)
        return self.nodes.infos

    async def manifest(self, ref: str, publisher: Publishers = None) -> SignedManifest:
        """As `Client.manifest`."""
        pins = publisher_keys(publisher) or self.publishers
        held = self._resolved.get(ref, pins)
        if held is not None:
            return held
        path, query = manifest_request(ref)
        failures: list[VerimlError] = []
        answers: list[SignedManifest] = []
        for url in self.nodes.order(ref):
            try:
                answers.append(resolved_answer(url, ref, await self._request(url, "GET", path, params=query), pins))
            except (Unavailable, NotFound, VerificationFailed) as exc:
                failures.append(exc)
                continue
            if not self._resolved.asks_all(ref):
                break
        if not answers:
            raise no_answer(f"model {ref}", failures)
        return self._resolved.put(ref, pins, newest(answers, pins))

    async def _infer_once(self, asked: Asked, urls: Sequence[str]) -> tuple[str, Bundle, int]:
        body = infer_body(asked)
        failures: list[VerimlError] = []
        for url in urls:
            try:
                response = await self._request(url, "POST", "/v1/infer", json=body)
                bundle, index = parse_infer(url, response.json(), asked)
            except (Unavailable, NotFound, VerificationFailed) as exc:  # another node may hold it, or be honest
                failures.append(exc)
                continue
            return url, bundle, index
        raise no_answer(f"no node could run {asked.manifest.body.ref}", failures)

    async def infer(
        self,
        ref: str,
        inputs: Mapping[str, Any],
        verify: str = "signed",
        request_id: str | None = None,
        logged: bool = False,
        publisher: Publishers = None,
        privacy: str = DEFAULT_PRIVACY,
    ) -> Bundle:
        """As `Client.infer` (proofs: use `Client`)."""
        level = VerifyLevel.parse(verify)
        if level.kind == "proven":
            raise InvalidInput("AsyncClient: verify='proven' is not supported; use Client")
        if not self.nodes.infos:
            await self.refresh()
        asked = ask(await self.manifest(ref, publisher), inputs, request_id, privacy)
        if level.kind != "quorum":
            url, bundle, index = await self._infer_once(asked, self.nodes.order(asked.manifest.body.name))
        else:
            url, bundle, index = await self._quorum(asked, level.nodes)
        if level.kind == "logged" or logged:
            bundle = await self._wait_logged(url, bundle, index)
        return bundle

    async def _quorum(self, asked: Asked, k: int) -> tuple[str, Bundle, int]:
        """Acceptable answers from k distinct node keys, asked in parallel; failed or refused nodes are replaced
        by the next ones."""
        if k > len(self.nodes.urls):
            raise InvalidInput(f"quorum:{k} needs {k} nodes; the client knows {len(self.nodes.urls)}")
        done: list[tuple[str, Bundle, int]] = []
        failures: list[VerimlError] = []
        keys: set[bytes] = set()
        pending = self.nodes.order(asked.manifest.body.name)
        while len(done) < k and pending:
            batch, pending = pending[: k - len(done)], pending[k - len(done) :]
            answers = await asyncio.gather(*(self._infer_once(asked, [url]) for url in batch), return_exceptions=True)
            for answer in answers:
                if isinstance(answer, VerimlError):
                    failures.append(answer)
                elif isinstance(answer, BaseException):
                    raise answer
                elif _count_once(keys, answer[0], answer[1], failures):
                    done.append(answer)
        if len(done) < k:
            raise no_answer(f"quorum:{k}: only {len(done)} distinct nodes answered acceptably", failures)
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

    async def chat(
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
        publisher: Publishers = None,
        check_text: bool = True,
        privacy: str = DEFAULT_PRIVACY,
        **extra: Any,
    ) -> ChatResult:
        """As `Client.chat`: the reply text with the bundle that proves it, checked here against the request and
        the signed tokens (the text returned is what they decode to).

            async with AsyncClient(nodes) as client:
                result = await client.chat("smol/lm", "What is 2+2?", verify="quorum:3")
        """
        level = VerifyLevel.parse(verify)
        check_chat_level(level.kind)
        if not self.nodes.infos:
            await self.refresh()
        manifest = await self.manifest(ref, publisher)
        tokenizer = await self.tokenizer(manifest) if check_text else None
        asked = chat_ask(manifest, messages, max_tokens=max_tokens, temperature=temperature, seed=seed, stop=stop,
                         extra=extra, tokenizer=tokenizer, privacy=privacy)  # fmt: skip
        if level.kind != "quorum":
            result = await self._chat_first(asked, on_text)
        else:
            result = await self._chat_quorum(asked, level.nodes, on_text)
        if level.kind == "logged" or logged:
            result = replace(result, bundle=await self._wait_logged(result.node, result.bundle, result.log_index))
        return result

    async def tokenizer(self, manifest: SignedManifest) -> Tokenizer:
        """As `Client.tokenizer`, in a worker thread: the fetch and llama.cpp's load of the vocabulary keep off the
        event loop."""
        try:
            return await asyncio.to_thread(self._load_tokenizer, manifest)
        except Unavailable as exc:
            raise tokenizer_unavailable(manifest, exc) from exc

    def _load_tokenizer(self, manifest: SignedManifest) -> Tokenizer:
        # bounded_stream reads with a sync HTTP client in a worker of its own, which this client's async one cannot
        # serve: one is made for a fetch, only when there is one (making it costs more than a cached vocabulary).
        made: list[httpx.Client] = []

        def stream(node: str, blob: Digest, size: int, write: Callable[[bytes], None]) -> None:
            if not made:
                made.append(httpx.Client(timeout=self._timeout))
            stream_blob(made[0], node, blob, size, write)

        try:
            return self.tokenizers.get(manifest, partial(self.nodes.order, manifest.body.name), stream)
        finally:
            for http in made:
                http.close()

    async def _chat_first(self, asked: ChatAsked, on_text: Callable[[str], None] | None) -> ChatResult:
        failures: list[VerimlError] = []
        for url in self.nodes.order(asked.manifest.body.name):
            try:
                return await self._chat_one(url, asked, on_text)
            except (Unavailable, NotFound, VerificationFailed) as exc:  # another node may hold it, or be honest
                failures.append(exc)
        raise no_answer(f"no node could run {asked.manifest.body.ref}", failures)

    async def _chat_quorum(self, asked: ChatAsked, k: int, on_text: Callable[[str], None] | None) -> ChatResult:
        if k > len(self.nodes.urls):
            raise InvalidInput(f"quorum:{k} needs {k} nodes; the client knows {len(self.nodes.urls)}")
        urls = self.nodes.order(asked.manifest.body.name)[:k]
        answers = await asyncio.gather(
            *(self._chat_one(url, asked, None if n else on_text) for n, url in enumerate(urls)), return_exceptions=True
        )
        results: list[ChatResult] = []
        failures: list[VerimlError] = []
        keys: set[bytes] = set()
        for answer in answers:
            if isinstance(answer, VerimlError):
                failures.append(answer)
            elif isinstance(answer, BaseException):
                raise answer
            elif _count_once(keys, answer.node, answer.bundle, failures):
                results.append(answer)
        if len(results) < k:
            raise no_answer(f"quorum:{k}: only {len(results)} distinct nodes answered acceptably", failures)
        return judge_chat_quorum(results)

    async def _chat_one(self, url: str, asked: ChatAsked, on_text: Callable[[str], None] | None) -> ChatResult:
        if on_text is None:
            try:
                response = await self._http.post(url + "/v1/chat/completions", json=chat_body(asked, stream=False))
            except httpx.HTTPError as exc:
                raise Unavailable(f"node {url}: {type(exc).__name__}: {exc}") from exc
            raise_for_openai_error(url, response)
            text, finish, veriml = reply_of(url, response.json())
        else:
            text, finish, veriml = await self._chat_stream(url, asked, on_text)
        return chat_result(url, veriml, text, finish, asked)

    async def _chat_stream(
        self, url: str, asked: ChatAsked, on_text: Callable[[str], None]
    ) -> tuple[str, str, dict[str, Any]]:
        stream = StreamedChat(url, on_text, asked)
        body = chat_body(asked, stream=True)
        try:
            async with self._http.stream("POST", url + "/v1/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for_openai_error(url, response)
                async for line in response.aiter_lines():
                    if (answer := stream.feed(sse_event(line))) is not None:
                        return answer
        except httpx.HTTPError as exc:
            raise Unavailable(f"node {url}: {type(exc).__name__}: {exc}") from exc
        raise stream.ended()
