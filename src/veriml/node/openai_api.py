"""The OpenAI-compatible face of a node: `POST /v1/chat/completions` and `/v1/completions` (with `stream=true`
as server-sent events), and the OpenAI shape of `GET /v1/models`. Any OpenAI client can point at a node.

Each answer carries its receipt: a `veriml` field in the body (the signed receipt, its id, the log index and
the bundle's URL; in a stream, in the last chunk), and `Veriml-Receipt` and `Link` headers. Errors on these
endpoints use OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`, which its clients parse.
"""

from __future__ import annotations

import asyncio
import calendar
import json
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from veriml.errors import InvalidInput, VerimlError
from veriml.hub import SignedManifest
from veriml.node.limits import check_generation
from veriml.node.node import Node
from veriml.receipts import DEFAULT_PRIVACY, Bundle, new_salt, parse_salt
from veriml.receipts.commitment import check_privacy
from veriml.receipts.receipt import new_request_id
from veriml.receipts.stream import stream_next, stream_start
from veriml.runtime import Generation, GenerationParams
from veriml.runtime.generation import MAX_SEED, MAX_STOP

events = logging.getLogger("veriml.node")
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 409: "conflict_error", 413: "invalid_request_error",
                422: "invalid_request_error", 503: "service_unavailable"}  # fmt: skip
_PARAM = re.compile(r"(?:node \S+: )?([a-z_]+(?:\[\d+\](?:\.[a-z_]+)?)?): ")
# No token of a real vocabulary spans more characters than this (they run to a few dozen at most).
_MAX_CHARS_PER_TOKEN = 64
# Accepted and ignored: they change nothing about the tokens.
_IGNORED = {"user", "stream_options", "metadata", "store", "service_tier", "parallel_tool_calls"}


def openai_error(status: int, message: str, code: str | None = None) -> JSONResponse:
    match = _PARAM.match(message)
    body = {
        "error": {
            "message": message,
            "type": _ERROR_TYPES.get(status, "server_error"),
            "param": match.group(1) if match else None,
            "code": code,
        }
    }
    return JSONResponse(body, status_code=status)


class OpenAIRoute(APIRoute):
    """A route whose errors, including request validation, answer in OpenAI's error shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_openai_errors(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
                message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
                return openai_error(400, f"{where}: {message}")
            except VerimlError as exc:
                code = "model_not_found" if exc.kind == "not-found" else exc.kind.replace("-", "_")
                return openai_error(exc.http_status, str(exc), code)
            except HTTPException as exc:
                return openai_error(exc.status_code, str(exc.detail))

        return with_openai_errors


class _Sampling(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(description="owner/name, owner/name@N or a manifest id of a gguf model")
    max_tokens: int | None = Field(default=None, description="at most the node's limit (see /v1/info)")
    temperature: float | None = Field(default=None, description="0 decodes greedily; default 1 as OpenAI")
    top_p: float | None = None
    # Lists are bounded in the model: pydantic validates (and reports) every element of a list otherwise, and
    # 600 kB of nulls would cost seconds of CPU before any of veriml's checks ran.
    stop: str | Annotated[list[str], Field(max_length=MAX_STOP)] | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_count(cls, value: object) -> object:
        # Before the union is tried, so that the answer names the limit rather than the union's first branch.
        if isinstance(value, list) and len(value) > MAX_STOP:
            raise ValueError(f"at most {MAX_STOP} sequences, got {len(value)}")
        return value

    seed: int | None = Field(default=None, description="sampling seed, recorded in the receipt; random if unset")
    stream: bool = False
    n: int | None = Field(default=None, description="only 1")
    frequency_penalty: float | None = Field(default=None, description="only 0")
    presence_penalty: float | None = Field(default=None, description="only 0")
    logprobs: bool | int | None = Field(default=None, description="not supported")
    top_k: int | None = Field(default=None, description="veriml extension: keep the k best tokens (0: all)")
    min_p: float | None = Field(default=None, description="veriml extension")
    repeat_penalty: float | None = Field(default=None, description="veriml extension (1: off)")
    n_ctx: int | None = Field(default=None, description="veriml extension: context size")
    n_batch: int | None = Field(default=None, description="veriml extension")
    n_ubatch: int | None = Field(default=None, description="veriml extension")
    request_id: str | None = Field(default=None, description="veriml extension: echoed into the receipt")
    privacy: str = Field(default=DEFAULT_PRIVACY, description="veriml extension: private, auditable or public")
    salt: str | None = Field(default=None, description="veriml extension: 64 hex digits salting the commitments")


class ChatCompletionRequest(_Sampling):
    messages: list[Any] = Field(description="[{role: system|user|assistant, content}]")
    max_completion_tokens: int | None = None


class CompletionRequest(_Sampling):
    prompt: str | Annotated[list[str], Field(max_length=16)] = Field(description="the text to continue (one prompt)")


def _params(node: Node, request: _Sampling, manifest: SignedManifest, max_tokens: int | None) -> GenerationParams:
    unknown = set(request.model_extra or {}) - _IGNORED
    if unknown:
        raise InvalidInput(f"{sorted(unknown)[0]}: this parameter is not supported")
    if request.n not in (None, 1):
        raise InvalidInput(f"n: only 1 choice per request is supported, got {request.n}")
    for name in ("frequency_penalty", "presence_penalty"):
        if getattr(request, name) not in (None, 0, 0.0):
            raise InvalidInput(f"{name}: not supported (use repeat_penalty); only 0 is accepted")
    if request.logprobs:
        raise InvalidInput("logprobs: not supported")
    limit = node.config.llm_max_tokens
    if max_tokens is not None and max_tokens > limit:
        raise InvalidInput(f"max_tokens: {max_tokens} is over this node's limit of {limit}")
    context = manifest.body.llm.context_length if manifest.body.llm else node.config.llm_n_ctx
    temperature = 1.0 if request.temperature is None else request.temperature
    seed = request.seed
    if seed is None:
        seed = secrets.randbelow(MAX_SEED + 1) if temperature > 0 else 0
    stop = [request.stop] if isinstance(request.stop, str) else list(request.stop or [])
    n_batch = request.n_batch or node.config.llm_n_batch
    values = {
        "max_tokens": 1 if max_tokens is None else max_tokens,  # settled once the prompt's length is known
        "stop": tuple(stop),
        "temperature": temperature,
        "top_k": 0 if request.top_k is None else request.top_k,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "min_p": 0.0 if request.min_p is None else request.min_p,
        "repeat_penalty": 1.0 if request.repeat_penalty is None else request.repeat_penalty,
        "seed": seed,
        "n_ctx": request.n_ctx or min(node.config.llm_n_ctx, context),
        "n_batch": n_batch,
        "n_ubatch": request.n_ubatch or min(n_batch, node.config.llm_n_batch),
    }
    return GenerationParams(**values)  # type: ignore[arg-type]


def _settle(node: Node, params: GenerationParams, prompt_tokens: int, asked: int | None) -> GenerationParams:
    """Fix max_tokens against the prompt: the room left in the context (up to the node's limit) when not asked;
    a prompt that leaves no room, or an asked number that does not fit, is refused."""
    room = params.n_ctx - prompt_tokens
    if room < 1 or (asked is not None and asked > room):
        wanted = f", plus max_tokens {asked}" if asked is not None else ""
        raise InvalidInput(
            f"context length: the prompt has {prompt_tokens} tokens{wanted}, over the context of {params.n_ctx} "
            f"tokens; shorten the prompt or lower max_tokens"
        )
    return replace(params, max_tokens=asked if asked is not None else min(room, node.config.llm_max_tokens))


def _prepare(node: Node, request: _Sampling, chat: bool) -> tuple[SignedManifest, list[int], GenerationParams]:
    """Resolve the model (replicating it if needed), render and tokenize the prompt, and fix every parameter."""
    manifest = node.pin(request.model)
    if manifest.body.format != "gguf":
        raise InvalidInput(f"model: {manifest.body.ref} is a {manifest.body.format} model, not a language model")
    asked = request.max_tokens
    if isinstance(request, ChatCompletionRequest) and request.max_completion_tokens is not None:
        asked = request.max_completion_tokens
    if asked is not None and asked < 1:
        raise InvalidInput(f"max_tokens: must be at least 1, got {asked}")
    params = _params(node, request, manifest, asked)
    service = node.service
    if chat:
        assert isinstance(request, ChatCompletionRequest)
        text = service.chat_prompt(manifest, request.messages)
    else:
        assert isinstance(request, CompletionRequest)
        prompts = [request.prompt] if isinstance(request.prompt, str) else request.prompt
        if len(prompts) != 1:
            raise InvalidInput(f"prompt: exactly one prompt per request is supported, got {len(prompts)}")
        text = prompts[0]
        if not text:
            raise InvalidInput("prompt: empty; give the text to continue")
    service.check_generation(manifest, params)
    check_generation(node.config, manifest, params)  # n_ctx, n_batch, max_tokens within this node's limits
    size = len(text.encode("utf-8", "replace"))  # a lone surrogate is refused when tokenized
    if size > node.config.llm_max_prompt_bytes:
        raise InvalidInput(f"prompt: {size} bytes, over this node's limit of {node.config.llm_max_prompt_bytes}")
    if len(text) > params.n_ctx * _MAX_CHARS_PER_TOKEN:
        # Tokenizing costs time in the text's length: text that cannot fit the context is refused unread.
        raise InvalidInput(
            f"context length: the prompt has {len(text)} characters, more than a context of {params.n_ctx} "
            f"tokens can hold; shorten the prompt"
        )
    tokens = service.tokenize(manifest, text, params)
    return manifest, tokens, _settle(node, params, len(tokens), asked)


def _error_event(exc: Exception) -> bytes:
    if isinstance(exc, VerimlError):
        return openai_error(exc.http_status, str(exc)).body
    return openai_error(500, f"internal error ({type(exc).__name__}); see the node log").body


def _veriml(bundle: Bundle, index: int) -> dict[str, Any]:
    return {
        "receipt": bundle.receipt.to_json(),
        "receipt_id": str(bundle.receipt.id),
        "manifest_id": str(bundle.manifest.id),
        "log_index": index,
        "bundle_url": f"/v1/log/entries/{index}/bundle",
        # The whole bundle goes to the client that asked: a private request's data is kept nowhere else.
        "bundle": bundle.to_json(),
    }


def _headers(bundle: Bundle, index: int) -> dict[str, str]:
    return {
        "Veriml-Receipt": f"{bundle.receipt.id}; log-index={index}",
        "Link": f'</v1/log/entries/{index}/bundle>; rel="veriml-bundle"',
    }


def _usage(prompt: list[int], generation: Generation) -> dict[str, int]:
    completion = len(generation.tokens)
    return {"prompt_tokens": len(prompt), "completion_tokens": completion, "total_tokens": len(prompt) + completion}


def create_router(node: Node) -> APIRouter:
    router = APIRouter(route_class=OpenAIRoute, tags=["openai"])

    def generate(manifest: SignedManifest, tokens: list[int], params: GenerationParams, request: _Sampling,
                 on_text: Callable[[str], None] | None = None, salt: bytes | None = None,
                 request_id: str | None = None) -> tuple[Bundle, Generation, int]:  # fmt: skip
        if salt is None and request.salt is not None:
            salt = parse_salt(request.salt, "salt")
        bundle, generation, logged = node.service.generate_submit(
            manifest, tokens, params, request_id or request.request_id, on_text, salt=salt,
            privacy=check_privacy(request.privacy),
        )  # fmt: skip
        assert logged is not None
        return bundle, generation, logged.result()[0]  # the receipt is in the log before the answer leaves

    async def answer(request: _Sampling, chat: bool) -> Response:
        manifest, tokens, params = await run_in_threadpool(_prepare, node, request, chat)
        kind = "chat.completion" if chat else "text_completion"
        created = int(time.time())
        if request.stream:
            # Salt and request id are fixed before the first chunk: the stream's hash chain starts from them.
            salt = new_salt() if request.salt is None else parse_salt(request.salt, "salt")
            request_id = request.request_id or new_request_id()
            return StreamingResponse(
                _stream(manifest, tokens, params, request, chat, created, salt, request_id),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache"},
            )
        bundle, generation, index = await run_in_threadpool(generate, manifest, tokens, params, request)
        if chat:
            choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": generation.text}}
        else:
            choice = {"index": 0, "text": generation.text}
        choice.update(finish_reason=generation.finish_reason, logprobs=None)
        body = {
            "id": ("chatcmpl-" if chat else "cmpl-") + bundle.receipt.body.request_id,
            "object": kind,
            "created": created,
            "model": manifest.body.ref,
            "system_fingerprint": bundle.receipt.body.runtime.runtime_class,
            "choices": [choice],
            "usage": _usage(tokens, generation),
            "veriml": _veriml(bundle, index),
        }
        return JSONResponse(body, headers=_headers(bundle, index))

    async def _stream(manifest: SignedManifest, tokens: list[int], params: GenerationParams, request: _Sampling,
                      chat: bool, created: int, salt: bytes, request_id: str) -> AsyncIterator[bytes]:  # fmt: skip
        """Server-sent events; each carries `veriml_chunk`: the token ids generated since the previous event and
        the stream's hash chain value after them (receipts/stream.py), so the client checks every chunk as it
        arrives; the last event carries the receipt, whose tokens end the chain."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        chain = stream_start(salt, manifest.id, request_id)
        stream_id = ("chatcmpl-" if chat else "cmpl-") + secrets.token_hex(12)
        kind = "chat.completion.chunk" if chat else "text_completion"

        def chunk(delta: str | None, finish: str | None = None, **extra: Any) -> bytes:
            if chat:
                content = {} if delta is None else {"content": delta}
                choice: dict[str, Any] = {"index": 0, "delta": content, "finish_reason": finish, "logprobs": None}
            else:
                choice = {"index": 0, "text": delta or "", "finish_reason": finish, "logprobs": None}
            body = {"id": stream_id, "object": kind, "created": created, "model": manifest.body.ref,
                    "choices": [choice], **extra}  # fmt: skip
            return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"

        def on_text(text: str) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, text)

        def bound(generated: Sequence[int]) -> dict[str, Any]:
            return {"tokens": [int(t) for t in generated], "chain": chain.hex()}

        # Through the server's thread pool (as the non-streamed answer), not the event loop's default executor: that
        # one has a handful of threads, and every stream holds one until its generation ends, which capped how
        # many generations could batch together.
        work = asyncio.ensure_future(
            run_in_threadpool(generate, manifest, tokens, params, request, on_text, salt, request_id)
        )
        work.add_done_callback(lambda _: queue.put_nowait(None))
        if chat:
            first = chunk(None, veriml_chunk=bound(()))
            yield first.replace(b'"delta":{}', b'"delta":{"role":"assistant","content":""}', 1)
        while (text := await queue.get()) is not None:
            generated = getattr(text, "tokens", ())  # a Piece: the text with the token ids that made it
            chain = stream_next(chain, generated)
            yield chunk(str(text), veriml_chunk=bound(generated))
        try:
            bundle, generation, index = work.result()
        except Exception as exc:  # the status line has gone out: the error travels as an event, as OpenAI's do
            if not isinstance(exc, VerimlError):
                events.exception("generation failed")
            yield b"data: " + _error_event(exc) + b"\n\n"
            return
        yield chunk(None, generation.finish_reason, usage=_usage(tokens, generation), veriml=_veriml(bundle, index),
                    veriml_chunk=bound(()))  # fmt: skip
        yield b"data: [DONE]\n\n"

    @router.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest) -> Response:
        """OpenAI chat completions with a gguf model: the prompt is rendered with the chat template its publisher
        signed, and the answer carries its receipt (`veriml` field, `Veriml-Receipt` header)."""
        return await answer(request, chat=True)

    @router.post("/v1/completions")
    async def completions(request: CompletionRequest) -> Response:
        """OpenAI (legacy) completions: continue a plain prompt; the answer carries its receipt."""
        return await answer(request, chat=False)

    return router


def model_list(node: Node) -> list[dict[str, Any]]:
    """OpenAI's model objects for the language models held here (latest version of each name)."""
    registry = node.service.hub.registry
    data = []
    for name in registry.names():
        latest = registry.get(name)
        if latest.body.format != "gguf":
            continue
        created = calendar.timegm(time.strptime(latest.body.created[:19], "%Y-%m-%dT%H:%M:%S"))
        data.append({"id": name, "object": "model", "created": created, "owned_by": latest.body.publisher.key_id,
                     "veriml": {"ref": latest.body.ref, "manifest_id": str(latest.id)}})  # fmt: skip
    return data
