"""Chat over a node's OpenAI-compatible endpoint, as the SDK does it: the request body, reading a server-sent
event stream and checking each of its chunks as it arrives (the stream's hash chain, receipts/stream.py, and the
text against the chunk's token ids), and turning the answer's `veriml` field into a checked bundle."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

from veriml.client.protocol import check_salt_and_privacy, judge_quorum
from veriml.client.tokenizer import Tokenizer
from veriml.errors import InvalidInput, Unavailable, VerificationFailed
from veriml.hub import SignedManifest
from veriml.receipts import DEFAULT_PRIVACY, Bundle, new_salt
from veriml.receipts.commitment import check_privacy
from veriml.receipts.receipt import new_request_id
from veriml.receipts.stream import stream_chain, stream_next, stream_start
from veriml.runtime.generation import MAX_SEED, OUTPUT, split_inputs
from veriml.runtime.llama_engine import _Text
from veriml.verify import verify_bundle


@dataclass(frozen=True)
class ChatResult:
    """The reply text and the bundle that proves which tokens the model generated (the receipt binds token ids;
    the text is what they decode to). `text_checked` is True when the client decoded the signed tokens itself
    and the text is that decoding (and checked the signed prompt tokens against its own tokenization of the
    messages); False only when the caller opted out (`check_text=False`): then neither was checked."""

    text: str
    finish_reason: str
    bundle: Bundle
    node: str
    log_index: int
    text_checked: bool = True

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class ChatAsked:
    """What a chat call asked, fixed before any node is asked: the resolved manifest, the messages, the
    parameters, a request id chosen here, and (with a tokenizer) the prompt tokens the messages must become."""

    manifest: SignedManifest
    messages: list[dict[str, Any]]
    request_id: str
    max_tokens: int
    temperature: float
    seed: int | None
    stop: tuple[str, ...]
    extra: Mapping[str, Any]
    tokenizer: Tokenizer | None
    salt: bytes
    privacy: str

    @cached_property
    def prompt_tokens(self) -> list[int] | None:
        return None if self.tokenizer is None else self.tokenizer.prompt_tokens(self.manifest, self.messages)


def chat_ask(
    manifest: SignedManifest,
    messages: str | Sequence[Mapping[str, Any]],
    *,
    max_tokens: int,
    temperature: float,
    seed: int | None,
    stop: Sequence[str] | None,
    extra: Mapping[str, Any],
    tokenizer: Tokenizer | None,
    privacy: str = DEFAULT_PRIVACY,
) -> ChatAsked:
    if manifest.body.format != "gguf" or manifest.body.llm is None:
        raise InvalidInput(f"model {manifest.body.ref}: a {manifest.body.format} model, not a language model")
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if temperature > 0 and seed is None:
        # Every node of a quorum must draw the same numbers: the seed is chosen here, once.
        seed = secrets.randbelow(MAX_SEED + 1)
    extra = dict(extra)
    request_id = extra.pop("request_id", None) or new_request_id()
    asked = ChatAsked(manifest, [dict(m) for m in messages], request_id, max_tokens, temperature, seed,
                      tuple(stop or ()), extra, tokenizer, new_salt(), check_privacy(privacy))  # fmt: skip
    _ = asked.prompt_tokens  # tokenize (and refuse bad messages) before any node is asked
    return asked


def chat_body(asked: ChatAsked, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        **asked.extra,
        "model": str(asked.manifest.id),  # what every node is asked: the resolved manifest, not a name
        "messages": asked.messages,
        "max_tokens": asked.max_tokens,
        "temperature": asked.temperature,
        "stream": stream,
        "request_id": asked.request_id,
        "salt": asked.salt.hex(),  # one per call, the same for every node of a quorum
        "privacy": asked.privacy,
    }
    if asked.seed is not None:
        body["seed"] = asked.seed
    if asked.stop:
        body["stop"] = list(asked.stop)
    return body


DONE = object()  # `data: [DONE]`: the end of a server-sent event stream


def sse_event(line: str) -> Any:
    """One line of a server-sent event stream: its JSON event, None for a line that is not data, or DONE."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return DONE
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        raise VerificationFailed(f"malformed event in the stream: {data[:80]!r}") from exc


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON events of a server-sent event stream, up to `data: [DONE]`."""
    for line in lines:
        event = sse_event(line)
        if event is DONE:
            return
        if event is not None:
            yield event


class StreamedChat:
    """One streamed chat answer read event by event, as both clients read it (only their transport differs): each
    event is checked as it arrives (`StreamCheck`: the hash chain, and the text against the event's token ids)
    before its text goes to `on_text`, and the last event, with a finish reason, carries the `veriml` field, whose
    signed tokens must end the chain."""

    def __init__(self, node: str, on_text: Callable[[str], None], asked: ChatAsked) -> None:
        self.node, self.on_text = node, on_text
        self.check = StreamCheck(node, asked)
        self.pieces: list[str] = []

    def feed(self, event: Any) -> tuple[str, str, dict[str, Any]] | None:
        """(text, finish reason, veriml field) once the answer is complete, else None."""
        if event is None:
            return None
        if event is DONE:
            raise VerificationFailed(f"node {self.node}: the stream ended without its receipt")
        try:
            if (message := error_of(event)) is not None:
                raise Unavailable(f"node {self.node}: generation failed: {message}")
            choice = event["choices"][0]
            piece = choice.get("delta", {}).get("content") or ""
            self.check.chunk(event, piece)
            if piece:
                self.pieces.append(piece)
                self.on_text(piece)
            if choice.get("finish_reason") is not None:
                self.check.finish(event["veriml"])
                return "".join(self.pieces), choice["finish_reason"], event["veriml"]
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise VerificationFailed(f"node {self.node}: malformed event in the stream ({exc!r})") from exc
        return None

    def ended(self) -> VerificationFailed:
        return VerificationFailed(f"node {self.node}: the stream ended without its receipt")


def chat_result(node: str, veriml: Any, text: str, finish: str, asked: ChatAsked) -> ChatResult:
    """A chat answer checked against what was asked (`checked_chat`); it must carry its bundle."""
    if not isinstance(veriml, dict):
        raise VerificationFailed(f"node {node}: the answer carries no veriml field")
    if "bundle" not in veriml:
        # The answer carries its bundle; the node serves a request's data to no one else.
        raise VerificationFailed(f"node {node}: the answer carries no bundle")
    return checked_chat(node, veriml, text, finish, asked)


def judge_chat_quorum(results: Sequence[ChatResult]) -> ChatResult:
    """The first answer with the others' receipts as attestations, if all K generated the same tokens."""
    agreed = judge_quorum([(result.node, result.bundle) for result in results])
    return replace(results[0], bundle=agreed)


def check_chat_level(level_kind: str) -> None:
    if level_kind == "proven":
        raise InvalidInput("chat: verify='proven' is not available for language models")


def tokenizer_unavailable(manifest: SignedManifest, exc: Exception) -> Unavailable:
    return Unavailable(
        f"chat: cannot check the answer against its signed tokens without {manifest.body.ref}'s tokenizer "
        f"({exc}); pass check_text=False to take the node's text unchecked (ChatResult.text_checked=False)"
    )


def error_of(event: Mapping[str, Any]) -> str | None:
    error = event.get("error")
    if isinstance(error, dict):
        return str(error.get("message", error))
    return None


class StreamCheck:
    """A streamed answer checked chunk by chunk, holding one hash and the decoder's state, never the stream: each
    event's `veriml_chunk` chain value must follow from the one before and the event's token ids (a chunk altered,
    dropped, reordered or from another request fails here, at that chunk); with the model's tokenizer, the
    event's text must be what those token ids add to the text; and the receipt's tokens must end the chain."""

    def __init__(self, node: str, asked: ChatAsked) -> None:
        self.node, self.asked = node, asked
        self.chain = stream_start(asked.salt, asked.manifest.id, asked.request_id)
        self.chunks = 0
        self.generated = 0
        self.ended = False
        self._text = _Text(asked.stop) if asked.tokenizer is not None else None

    def chunk(self, event: Mapping[str, Any], piece: str) -> None:
        """Check one event carrying the text `piece`; VerificationFailed names the chunk and what was wrong."""
        where = f"node {self.node}: stream chunk {self.chunks}"
        self.chunks += 1
        bound = event.get("veriml_chunk")
        if not isinstance(bound, dict):
            raise VerificationFailed(f"{where} carries no veriml_chunk (its token ids and chain value)")
        tokens, chain = bound.get("tokens"), bound.get("chain")
        if not isinstance(tokens, list) or not all(type(t) is int for t in tokens) or not isinstance(chain, str):
            raise VerificationFailed(f"{where}: malformed veriml_chunk")
        following = stream_next(self.chain, tokens)
        if chain != following.hex():
            raise VerificationFailed(
                f"{where}: its chain value does not follow from the chunks before it and its token ids "
                f"(a chunk altered, dropped, reordered or from another request)"
            )
        self.chain = following
        if self._text is not None:
            decoded = self._decode(where, tokens)
            if decoded != piece:
                raise VerificationFailed(
                    f"{where}: its text differs from what its token ids decode to "
                    f"(sent {piece[:40]!r}, tokens decode to {decoded[:40]!r})"
                )

    def _decode(self, where: str, tokens: list[int]) -> str:
        """What these tokens add to the text, as a node's generation loop emits it (runtime.llama_engine)."""
        assert self._text is not None and self.asked.tokenizer is not None
        ready = ""
        for token in tokens:
            if self.ended:
                raise VerificationFailed(f"{where}: token ids after the end of the generation")
            self.generated += 1
            piece = self.asked.tokenizer.piece(token)
            if piece is None:
                self.ended = True
                continue
            ready += self._text.add(piece)
            self.ended = self._text.stopped or self.generated >= self.asked.max_tokens
        if tokens and self.ended:
            ready += self._text.add(b"", final=True)
        return ready

    def finish(self, veriml: Mapping[str, Any]) -> None:
        """The tokens the receipt signed (its output commitment covers them) must end the chain the chunks built:
        a node cannot stream one answer and sign another."""
        try:
            bundle = Bundle.from_json(veriml["bundle"])
            tokens = [int(t) for t in bundle.outputs[OUTPUT].reshape(-1)]
        except (InvalidInput, KeyError, TypeError, ValueError) as exc:
            raise VerificationFailed(f"node {self.node}: malformed bundle ({exc})") from exc
        asked = self.asked
        if stream_chain(asked.salt, asked.manifest.id, asked.request_id, tokens) != self.chain:
            raise VerificationFailed(
                f"node {self.node}: the receipt's tokens do not end the stream's chain: it signed other tokens "
                f"than it streamed ({len(tokens)} signed, {self.generated or 'unknown'} streamed)"
            )


def reply_of(node: str, answer: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(text, finish reason, veriml field) of a non-streamed chat completion."""
    try:
        choice = answer["choices"][0]
        return choice["message"]["content"], choice["finish_reason"], answer["veriml"]
    except (KeyError, IndexError, TypeError) as exc:
        raise VerificationFailed(f"node {node}: malformed chat answer ({exc!r})") from exc


def checked_chat(node: str, veriml: Mapping[str, Any], text: str, finish: str, asked: ChatAsked) -> ChatResult:
    """The answer's bundle, bound to the request: the receipt the answer named, the manifest resolved, the request
    id chosen, the prompt tokens of the messages sent, the parameters asked, valid at level `signed`; and the text
    the caller gets is what the signed tokens decode to, which must be the text the node sent (else the node
    lied about its text). Returns the result with the checked text, or raises VerificationFailed."""
    try:
        bundle = Bundle.from_json(veriml["bundle"])
        index = int(veriml["log_index"])
    except (InvalidInput, KeyError, TypeError, ValueError) as exc:
        raise VerificationFailed(f"node {node}: malformed bundle ({exc})") from exc
    if str(bundle.receipt.id) != veriml.get("receipt_id"):
        raise VerificationFailed(f"node {node}: the bundle's receipt is not the one its answer named")
    if bundle.manifest.id != asked.manifest.id:
        raise VerificationFailed(
            f"node {node} answered for manifest {bundle.manifest.id} ({bundle.manifest.body.ref}), "
            f"asked {asked.manifest.id} ({asked.manifest.body.ref})"
        )
    if bundle.receipt.body.request_id != asked.request_id:
        raise VerificationFailed(
            f"node {node} answered for request id {bundle.receipt.body.request_id!r}, asked {asked.request_id!r}"
        )
    check_salt_and_privacy(node, bundle, asked.salt, asked.privacy)
    try:
        prompt, params = split_inputs(bundle.inputs)
        generated = bundle.outputs[OUTPUT]
    except (InvalidInput, KeyError) as exc:
        raise VerificationFailed(f"node {node}: the bundle is not a generation ({exc})") from exc
    if asked.prompt_tokens is not None and prompt != asked.prompt_tokens:
        raise VerificationFailed(
            f"node {node} answered for other prompt tokens: the signed prompt ({len(prompt)} tokens) is not the "
            f"tokenization of the messages sent ({len(asked.prompt_tokens)} tokens)"
        )
    wanted = {"max_tokens": asked.max_tokens, "temperature": asked.temperature, "stop": asked.stop,
              "seed": 0 if asked.seed is None else asked.seed}  # fmt: skip
    for name, value in wanted.items():
        if getattr(params, name) != value:
            raise VerificationFailed(
                f"node {node} answered for other parameters: {name} {getattr(params, name)!r}, asked {value!r}"
            )
    report = verify_bundle(bundle, level="signed")
    if not report.consistent:
        raise VerificationFailed(f"node {node}: bundle does not verify: {report.failures()}")
    if asked.tokenizer is None:
        return ChatResult(text, finish, bundle, node, index, text_checked=False)
    decoded = asked.tokenizer.text_of([int(t) for t in generated.reshape(-1)], params.stop)
    if decoded != text:
        raise VerificationFailed(
            f"node {node}: its text differs from what its signed tokens decode to "
            f"(sent {text[:40]!r}, tokens decode to {decoded[:40]!r})"
        )
    return ChatResult(decoded, finish, bundle, node, index)
