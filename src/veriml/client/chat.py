"""Chat over a node's OpenAI-compatible endpoint, as the SDK does it: the request body, reading a server-sent
event stream, and turning the answer's `veriml` field into a checked bundle."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from veriml.errors import InvalidInput, VerificationFailed
from veriml.receipts import Bundle
from veriml.runtime.generation import MAX_SEED
from veriml.verify import verify_bundle


@dataclass(frozen=True)
class ChatResult:
    """The reply text and the bundle that proves which tokens the model generated (the receipt binds token ids;
    the text is what they decode to)."""

    text: str
    finish_reason: str
    bundle: Bundle
    node: str
    log_index: int

    def __str__(self) -> str:
        return self.text


def chat_body(
    ref: str,
    messages: str | Sequence[Mapping[str, Any]],
    *,
    max_tokens: int,
    temperature: float,
    seed: int | None,
    stop: Sequence[str] | None,
    stream: bool,
    extra: Mapping[str, Any],
) -> dict[str, Any]:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    if temperature > 0 and seed is None:
        # Every node of a quorum must draw the same numbers: the seed is chosen here, once.
        seed = secrets.randbelow(MAX_SEED + 1)
    body: dict[str, Any] = {
        "model": ref,
        "messages": [dict(m) for m in messages],
        "max_tokens": max_tokens,
        "temperature": temperature,
        "stream": stream,
        **extra,
    }
    if seed is not None:
        body["seed"] = seed
    if stop:
        body["stop"] = list(stop)
    return body


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    """The JSON events of a server-sent event stream, up to `data: [DONE]`."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        try:
            yield json.loads(data)
        except json.JSONDecodeError as exc:
            raise VerificationFailed(f"malformed event in the stream: {data[:80]!r}") from exc


def error_of(event: Mapping[str, Any]) -> str | None:
    error = event.get("error")
    if isinstance(error, dict):
        return str(error.get("message", error))
    return None


def reply_of(node: str, answer: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]]:
    """(text, finish reason, veriml field) of a non-streamed chat completion."""
    try:
        choice = answer["choices"][0]
        return choice["message"]["content"], choice["finish_reason"], answer["veriml"]
    except (KeyError, IndexError, TypeError) as exc:
        raise VerificationFailed(f"node {node}: malformed chat answer ({exc!r})") from exc


def checked_bundle(node: str, bundle_json: Any, veriml: Mapping[str, Any]) -> Bundle:
    """The bundle a node serves for its answer, checked at level `signed` and against the answer's receipt id."""
    try:
        bundle = Bundle.from_json(bundle_json)
    except InvalidInput as exc:
        raise VerificationFailed(f"node {node}: malformed bundle ({exc})") from exc
    if str(bundle.receipt.id) != veriml.get("receipt_id"):
        raise VerificationFailed(f"node {node}: the bundle's receipt is not the one its answer named")
    report = verify_bundle(bundle, level="signed")
    if not report.consistent:
        raise VerificationFailed(f"node {node}: bundle does not verify: {report.failures()}")
    return bundle
