"""The node's HTTP API (/v1, described by its OpenAPI document), the C2SP tlog-tiles read paths and the C2SP
tlog-witness endpoint. A thin skin: each route calls one `Node` or `Service` method."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from functools import partial
from typing import Any

import msgspec
from fastapi import Depends, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from veriml.codec import Digest, canonical_json, tensors_from_json
from veriml.codec.canonical import MAX_JSON_DEPTH, check_json_depth
from veriml.errors import InvalidInput, NotFound, PermissionDenied, VerimlError
from veriml.explorer import create_router as explorer_router
from veriml.hub import parse_signed_manifest
from veriml.node import openai_api, problems, publishing
from veriml.node.limits import ConcurrencyCap, check_reexecution
from veriml.node.node import Node
from veriml.receipts import DEFAULT_PRIVACY, parse_salt, parse_signed_receipt
from veriml.receipts.commitment import check_privacy
from veriml.tlog import StaleOldSize, parse_tile_path, read_checkpoint, read_tile
from veriml.tlog.witness import MAX_REQUEST_BYTES
from veriml.zk import parse_signed_zk_document

events = logging.getLogger("veriml.node")
API_VERSION = "1.0.0"
OUTER = "veriml.outer"  # set in the scope of a request the fast path's own limit and log layers already took


class InferRequest(BaseModel):
    model: str = Field(description="owner/name, owner/name@N, or a manifest id", examples=["alice/mnist@1"])
    inputs: dict[str, Any] = Field(description="input name -> nested lists, or {dtype, shape, data(base64)}")
    request_id: str | None = Field(default=None, description="echoed into the receipt; 1-128 of [A-Za-z0-9._:-]")
    verify: str | None = Field(default=None, description="'proven' queues a zero-knowledge proof of the result")
    privacy: str = Field(default=DEFAULT_PRIVACY, description="'private' (never disclosed, not kept), 'auditable' "
                         "(disclosed only to authenticated auditors) or 'public' (readable by anyone)")  # fmt: skip
    salt: str | None = Field(default=None, description="64 hex digits salting the receipt's commitments; "
                             "drawn by the node when absent (the answer's bundle carries it)")  # fmt: skip


class InferResponse(BaseModel):
    bundle: dict[str, Any] = Field(description="the signed bundle: manifest, receipt, inputs, outputs")
    log_index: int = Field(description="where the receipt sits in this node's log")
    proof_job: str | None = Field(default=None, description="with verify=proven: GET /v1/proofs/{proof_job}")


class AttestRequest(BaseModel):
    receipt: dict[str, Any] = Field(description="another node's signed receipt")
    salt: str = Field(description="the salt that opens the receipt's commitments (64 hex digits)")
    inputs: dict[str, Any] = Field(description="the inputs it names, in the tensor JSON form")
    outputs: dict[str, Any] = Field(description="the outputs it names, in the tensor JSON form")


class PinRequest(BaseModel):
    model: str = Field(description="owner/name, owner/name@N")


class BodyLimit:
    """Refuse request bodies over a limit with 413 while they stream in, so nothing oversized is buffered."""

    def __init__(self, app: ASGIApp, json_limit: int, blob_limit: int) -> None:
        self.app, self.json_limit, self.blob_limit = app, json_limit, blob_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or OUTER in scope:
            await self.app(scope, receive, send)
            return
        limit = self.blob_limit if scope["path"].startswith(("/v1/blobs/", "/v1/publish/")) else self.json_limit
        headers = dict(scope.get("headers", []))
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            await problems.problem(413, "too-large", f"request body over the {limit}-byte limit")(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body over the {limit}-byte limit")
            return message

        await self.app(scope, limited, send)


class RequestLog:
    """Give each request an id (X-Request-Id, from the client or made here) and log one JSON line for it.
    A plain ASGI middleware: Starlette's BaseHTTPMiddleware costs more than a small model's inference."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or OUTER in scope:
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers", [])).get(b"x-request-id", b"")[:64]
        request_id = given.decode("ascii", "replace") if given else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            line = {"event": "request", "request_id": request_id, "method": scope["method"], "path": scope["path"],
                    "status": status, "ms": round((time.perf_counter() - start) * 1000, 2)}  # fmt: skip
            events.info("request", extra={"fields": line})  # JsonLines writes the fields as they are


class _InferBody(msgspec.Struct):
    """The fast path's view of an InferRequest: exactly the same fields and types; anything it does not decode as
    these (or asks for `proven`) goes to the FastAPI route, which answers it as before."""

    model: str
    inputs: dict[str, Any]
    request_id: str | None = None
    verify: str | None = None
    privacy: str = DEFAULT_PRIVACY
    salt: str | None = None


_decode_infer = msgspec.json.Decoder(_InferBody).decode


async def signed_answer(node: Node, request: InferRequest | _InferBody) -> bytes:
    """The answer to an inference at level `signed`: the bundle, with its inclusion proof, and its log index."""
    if request.verify not in (None, "signed"):
        raise InvalidInput(f"verify {request.verify!r}: the node takes 'signed' or 'proven'")
    salt = None if request.salt is None else parse_salt(request.salt, "salt")
    privacy = check_privacy(request.privacy)
    bundle, index = await node.infer_async(request.model, request.inputs, request.request_id, salt, privacy)
    # The bundle's canonical bytes are written as they are: no second encoding pass over the same data.
    return b'{"bundle":' + bundle.to_bytes() + b',"log_index":' + str(index).encode() + b"}"


class InferFastPath:
    """POST /v1/infer at level `signed`, answered without FastAPI's request machinery (its validation and
    dependency layers cost more than a small model's inference): the body is decoded once with msgspec into the
    route's own fields, and the route's answer is written. A body it does not take as is (another shape or type,
    `proven`, not JSON) is handed to the FastAPI app unchanged, so errors read exactly as the route's do. It sits
    outside FastAPI's own layers, behind its own BodyLimit and RequestLog, so limits, request ids and request lines
    apply as to every route (a request handed on is marked, so they are not applied twice)."""

    PATH = "/v1/infer"

    def __init__(self, app: ASGIApp, node: Node, config: Any) -> None:
        self.app, self.node = app, node
        self.hot = RequestLog(BodyLimit(self._infer, config.max_json_bytes, config.max_blob_bytes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        await self.hot(scope, receive, send)

    async def _infer(self, scope: Scope, receive: Receive, send: Send) -> None:
        chunks, more = [], True
        try:
            while more:
                message = await receive()
                if message["type"] != "http.request":  # the client went away
                    return
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
        except HTTPException as exc:  # BodyLimit: over the limit while streaming in
            await (await problems.http_error(Request(scope), exc))(scope, receive, send)
            return
        body = b"".join(chunks)
        request = None
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"application/json")
        # FastAPI reads a body as JSON only then; a body nested deeper than any veriml document goes to the route's
        # guarded parser untouched.
        if b"json" in content_type and _shallow(body):
            with contextlib.suppress(msgspec.DecodeError, RecursionError, ValueError):  # ValueError: bad UTF-8
                request = _decode_infer(body)
        if request is None or request.verify == "proven":
            scope[OUTER] = True
            await self.app(scope, _replay(body), send)
            return
        try:
            answer = await signed_answer(self.node, request)
        except VerimlError as exc:
            await (await problems.veriml_error(Request(scope), exc))(scope, receive, send)
            return
        except Exception as exc:  # outside FastAPI's error layer: answer as it would, and log the traceback
            events.exception("POST %s failed", self.PATH)
            await (await problems.unexpected_error(Request(scope), exc))(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]})  # fmt: skip
        await send({"type": "http.response.body", "body": answer})


def _shallow(body: bytes) -> bool:
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return True
    try:
        check_json_depth(body.decode("utf-8"))
    except (InvalidInput, UnicodeDecodeError):
        return False
    return True


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


class NodeApp(FastAPI):
    """The node's FastAPI app, with POST /v1/infer at level `signed` taken before FastAPI sees it (its per-request
    work, its telemetry check among it, costs more than a small model's inference); everything else, and anything
    the fast path hands on, goes through FastAPI as it is."""

    fast_path: InferFastPath | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_path is None:
            await super().__call__(scope, receive, send)
        else:
            await self.fast_path(scope, receive, send)


def create_app(node: Node) -> FastAPI:
    config = node.config
    app = NodeApp(
        title="veriml node",
        version=API_VERSION,
        description="Host, run and verify models: signed receipts, a transparency log, witnessing.",
        openapi_url="/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
    )
    app.add_exception_handler(VerimlError, problems.veriml_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, problems.validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(HTTPException, problems.http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, problems.unexpected_error)
    app.add_middleware(BodyLimit, json_limit=config.max_json_bytes, blob_limit=config.max_blob_bytes)
    app.add_middleware(RequestLog)
    app.fast_path = InferFastPath(partial(FastAPI.__call__, app), node, config)

    def admin(authorization: str | None = Header(default=None)) -> None:
        if config.admin_token is None:
            raise PermissionDenied("admin writes are disabled on this node (no admin_token configured)")
        given = (authorization or "").encode("latin-1", "replace")  # headers arrive as latin-1 text
        if not secrets.compare_digest(given, f"Bearer {config.admin_token}".encode("latin-1", "replace")):
            raise PermissionDenied("admin writes need `Authorization: Bearer <admin token>`")

    @app.get("/v1/health", tags=["node"])
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/info", tags=["node"])
    def info() -> dict[str, Any]:
        """Who this node is: its keys (node and witness), log origin and size, models hosted, peers."""
        return node.info()

    @app.get("/v1/models", tags=["models", "openai"])
    def list_models() -> dict[str, Any]:
        """Every model held here (`models`), and the language models in OpenAI's list shape (`object`, `data`),
        so that OpenAI clients can list them too."""
        registry = node.service.hub.registry
        models = []
        for name in registry.names():
            latest = registry.get(name)
            models.append({"name": name, "version": latest.body.version, "manifest_id": str(latest.id),
                           "format": latest.body.format})  # fmt: skip
        return {"object": "list", "data": openai_api.model_list(node), "models": models}

    @app.get("/v1/models/{owner}/{name}", tags=["models"])
    def show_model(owner: str, name: str, version: int | None = None) -> dict[str, Any]:
        """The signed manifest of `owner/name` (latest) or of `?version=N`."""
        ref = f"{owner}/{name}" + (f"@{version}" if version is not None else "")
        return node.resolve(ref).to_json()

    @app.get("/v1/models/{owner}/{name}/versions", tags=["models"])
    def model_versions(owner: str, name: str) -> dict[str, Any]:
        """Every version's signed manifest, oldest first: what a replicating peer takes in."""
        return {"versions": [m.to_json() for m in node.service.hub.registry.versions(f"{owner}/{name}")]}

    @app.get("/v1/manifests/{manifest_id}", tags=["models"])
    def show_manifest(manifest_id: str) -> dict[str, Any]:
        return node.service.hub.registry.by_id(Digest.parse(manifest_id, "manifest id")).to_json()

    @app.put("/v1/blobs/{blob_id}", tags=["models"], dependencies=[Depends(admin)], status_code=201)
    async def upload_blob(blob_id: str, request: Request) -> dict[str, Any]:
        """Upload a model's bytes (admin); streamed to disk while hashed, kept only if they hash to `blob_id`."""
        expected = Digest.parse(blob_id, "blob id")
        with node.service.hub.blobs.writer(expected=expected) as writer:
            async for chunk in request.stream():
                writer.write(chunk)
            digest = writer.commit()
        return {"blob": str(digest), "size": writer.size}

    @app.get("/v1/blobs/{blob_id}", tags=["models"], response_class=FileResponse)
    def download_blob(blob_id: str) -> FileResponse:
        """A model's bytes, streamed."""
        path = node.service.hub.blobs.path(Digest.parse(blob_id, "blob id"))
        if not path.is_file():
            raise NotFound(f"blob {blob_id}: not held here")
        return FileResponse(path, media_type="application/octet-stream")

    @app.post("/v1/manifests", tags=["models"], dependencies=[Depends(admin)], status_code=201)
    def publish_manifest(signed_manifest: dict[str, Any]) -> dict[str, Any]:
        """Publish a signed manifest whose blob was uploaded (admin). Ownership, version and parent rules apply;
        the same bytes again answer with the version they already are."""
        published = node.service.hub.publish(parse_signed_manifest(signed_manifest), None)
        return {"manifest_id": str(published.manifest.id), "ref": published.manifest.body.ref,
                "created": published.created}  # fmt: skip

    @app.post("/v1/pin", tags=["models"], dependencies=[Depends(admin)])
    def pin(request: PinRequest) -> dict[str, Any]:
        """Replicate a model from peers now, rather than on its first inference (admin)."""
        manifest = node.pin(request.model)
        return {"manifest_id": str(manifest.id), "ref": manifest.body.ref, "blob": str(manifest.body.blob)}

    @app.post("/v1/infer", tags=["inference"], response_model=InferResponse)
    async def infer(request: InferRequest) -> Response:
        """Run a model and answer with the signed bundle; the receipt is in the log before the answer leaves.
        The bundle carries its inclusion proof (`log_proof`) under the checkpoint signed with its batch; one under a
        witnessed checkpoint is at /v1/log/entries/{log_index} once the next checkpoint is published."""
        if request.verify != "proven":
            return Response(await signed_answer(node, request), media_type="application/json")
        salt = None if request.salt is None else parse_salt(request.salt, "salt")
        privacy = check_privacy(request.privacy)
        manifest = node.held(request.model) or await run_in_threadpool(node.resolve, request.model)
        await run_in_threadpool(node.ensure_zk, manifest)  # 404 unless the circuit is here or at a peer
        with node.proofs.slot():  # 503 before any work when the proof queue is full
            # A proven result is the circuit's (fixed point), not onnxruntime's: the proof carries exactly it.
            circuit_run = partial(node.service.infer_logged, manifest, request.inputs, request.request_id,
                                  salt=salt, privacy=privacy, circuit=True)  # fmt: skip
            bundle, index = await run_in_threadpool(circuit_run)
            proof = b',"proof_job":"' + node.proofs.submit(bundle).encode() + b'"'
        body = b'{"bundle":' + bundle.to_bytes() + b',"log_index":' + str(index).encode() + proof + b"}"
        return Response(body, media_type="application/json")

    @app.get("/v1/proofs/{receipt_id}", tags=["verification"])
    def proof_status(receipt_id: str) -> dict[str, Any]:
        """A proof job: queued, running, done (with the bundle's zk_proof) or failed (with why)."""
        return node.proofs.status(Digest.parse(receipt_id, "receipt id"))

    @app.post("/v1/zk-documents", tags=["verification"], dependencies=[Depends(admin)], status_code=201)
    def add_zk_document(signed_document: dict[str, Any]) -> dict[str, Any]:
        """Register a publisher-signed ZK document (admin); its artifacts must be uploaded as blobs first."""
        manifest = node.service.add_zk_document(parse_signed_zk_document(signed_document))
        return {"manifest_id": str(manifest.id)}

    @app.get("/v1/zk-documents/{manifest_id}", tags=["verification"])
    def zk_document(manifest_id: str) -> dict[str, Any]:
        manifest = node.service.hub.registry.by_id(Digest.parse(manifest_id, "manifest id"))
        return node.service.zk_document(manifest).to_json()

    @app.get("/v1/log/entries/{index}", tags=["log"])
    def log_entry(index: int, request: Request) -> dict[str, Any]:
        """The signed receipt at a log index and its C2SP tlog-proof once a checkpoint covers it. Its salt, inputs
        and outputs come too for a `public` receipt, for the request's own client (header X-Veriml-Salt) and, for an
        `auditable` receipt, for an authenticated auditor (a registered peer's signed request; each disclosure
        is recorded); never for a `private` one. `data` says which case applied."""
        return node.auditor.disclosure.entry(index, "GET", request.url.path, request.headers)

    @app.get("/v1/log/entries", tags=["log"])
    def log_entries(indices: str, request: Request) -> dict[str, Any]:
        """Several entries at once, as `/v1/log/entries/{index}` answers each (`indices`: up to 64 distinct log
        indices, comma-separated), for a signed auditor request only: what an auditor asks a round's sample in. The
        signature covers the path with its query, so it is worth nothing for other indices; each entry counts
        against the auditor's rate limit. An entry that cannot be answered is `{index, status, detail}`."""
        parsed = [int(part) for part in indices.split(",") if part.isascii() and part.isdigit() and len(part) <= 15]
        if len(parsed) != len(indices.split(",")):
            raise InvalidInput("indices: comma-separated log indices (decimal digits), e.g. 3,17,42")
        path = request.url.path + "?" + request.scope["query_string"].decode("latin-1")
        return {"entries": node.auditor.disclosure.entries(parsed, "GET", path, request.headers)}

    @app.get("/v1/disputes/{dispute_id}/entry", tags=["log"])
    def dispute_entry(dispute_id: int, request: Request) -> dict[str, Any]:
        """For a member of an on-chain dispute's committee (a signed auditor request), from the dispute's
        challenger: the disputed entry's receipt, salt, inputs and outputs as this node's auditor was disclosed
        them, so that a disputed node withholding them from its committee gains nothing (docs/chain.md)."""
        if node.disputes is None:
            raise NotFound("this node takes no part in disputes (no chain with a dispute contract)")
        return node.disputes.serve_entry(dispute_id, "GET", request.url.path, request.headers)

    @app.get("/v1/log/entries/{index}/bundle", tags=["log"])
    def log_entry_bundle(index: int, request: Request) -> Response:
        """The bundle of the receipt at a log index: manifest, signed receipt, salt, inputs and outputs, and its
        C2SP tlog-proof once a checkpoint covers it; for the same callers as the entry's data. What an OpenAI
        answer's `veriml.bundle_url` points at."""
        bundle = node.auditor.disclosure.bundle(index, "GET", request.url.path, request.headers)
        return Response(bundle.to_bytes(), media_type="application/json")

    @app.get("/v1/disclosures", tags=["verification"], dependencies=[Depends(admin)])
    def disclosures(limit: int = 100) -> dict[str, Any]:
        """Every disclosure of a request's data to an auditor, newest first: when, to which key, which entry
        (admin)."""
        return {"disclosures": node.auditor.disclosure.disclosures(limit=max(1, min(limit, 1000)))}

    attests = ConcurrencyCap(config.max_concurrent_attests, "re-executions for /v1/attest")

    @app.post("/v1/attest", tags=["verification"])
    def attest(request: AttestRequest) -> dict[str, Any]:
        """Re-execute another node's receipt here and answer with a signed attestation: agree, disagree, or
        not comparable. Bounded as the node's own requests are (docs/limits.md): a generation's size by the
        node's limits, checked before anything runs, and at most `max_concurrent_attests` at once (503 beyond)."""
        receipt = parse_signed_receipt(request.receipt).verified()
        salt = parse_salt(request.salt, "salt")
        inputs = tensors_from_json(request.inputs, "inputs")
        outputs = tensors_from_json(request.outputs, "outputs")
        with attests.hold():
            manifest = node.resolve(str(receipt.body.manifest))
            check_reexecution(config, manifest, inputs)  # before the model is fetched or loaded
            node.ensure_blob(manifest)
            attestation = node.service.attest(manifest, receipt, salt, inputs, outputs)
        return attestation.to_json()

    @app.get("/v1/attestations", tags=["verification"])
    def attestations(limit: int = 100) -> dict[str, Any]:
        """The attestations this node signed while auditing its peers, newest first."""
        return {"attestations": node.auditor.store.attestations(limit=max(1, min(limit, 1000)))}

    @app.get("/v1/evidence", tags=["verification"])
    def evidence(limit: int = 100) -> dict[str, Any]:
        """What audit found: disagreements (a peer's signed receipt beside this node's signed attestation),
        refusals (a sampled entry a peer did not serve with its data, or not as the entry at that index of its
        signed checkpoint, beside that checkpoint) that are still unanswered, the count of a peer's refusals past
        the 100,000 kept one by one, and forks (two checkpoints a peer signed that are not one history)."""
        limit = max(1, min(limit, 1000))
        store = node.auditor.store
        return {"evidence": store.attestations("disagree", limit=limit), "refusals": store.refusals(limit=limit),
                "refusals_over_cap": store.refusals_over_cap(), "forks": store.forks(limit=limit)}  # fmt: skip

    app.include_router(openai_api.create_router(node))
    app.include_router(explorer_router(node))  # HTML pages at / (docs/explorer.md); not in the OpenAPI document
    app.include_router(publishing.create_router(node))

    @app.get("/checkpoint", tags=["tlog-tiles"], response_class=PlainTextResponse)
    def checkpoint() -> Response:
        return Response(read_checkpoint(node.service.log), media_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})  # fmt: skip

    @app.get("/tile/{path:path}", tags=["tlog-tiles"])
    def tile(path: str) -> Response:
        ref = parse_tile_path(f"tile/{path}")
        return Response(read_tile(node.service.log, ref), media_type="application/octet-stream",
                        headers={"Cache-Control": "public, max-age=31536000, immutable"})  # fmt: skip

    @app.post("/add-checkpoint", tags=["tlog-witness"], response_class=PlainTextResponse)
    async def add_checkpoint(request: Request) -> Response:
        """C2SP tlog-witness: cosign a peer's checkpoint given a consistency proof from the last one cosigned."""
        body = await request.body()
        if len(body) > MAX_REQUEST_BYTES:
            raise InvalidInput(f"add-checkpoint: request larger than {MAX_REQUEST_BYTES} bytes")
        try:
            # Off the event loop: an unknown origin makes the node ask its peers, and the witness commits.
            cosignatures = await run_in_threadpool(node.add_checkpoint, body)
        except StaleOldSize as stale:
            return Response(f"{stale.size}\n", status_code=409, media_type="text/x.tlog.size")
        return Response(cosignatures, media_type="text/plain; charset=utf-8")

    return app


def openapi_document(app: FastAPI) -> bytes:
    return canonical_json(app.openapi())
