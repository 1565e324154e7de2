"""OpenGradient SDK call shapes over veriml, for what veriml can honestly provide (the reference is `opengradient`
1.1.4; no code of it is used here). `import veriml.compat.opengradient as og` and keep the calls:

    alpha = og.Alpha(nodes=["http://127.0.0.1:8700"])
    result = alpha.infer("alice/mlp", og.InferenceMode.VANILLA, {"x": [[0.5] * 16]})
    result.model_output["y"], result.transaction_hash   # "sha256:<receipt id>; log-index=<n>"

    llm = og.LLM(nodes=[...])
    answer = asyncio.run(llm.chat(model="smol/lm", messages=[{"role": "user", "content": "Hi"}]))
    answer.chat_output["content"]

How the modes map (docs/migrating-from-opengradient.md has the full table):
- `InferenceMode.VANILLA` -> veriml level `signed`: the node's signed receipt binds model version, inputs and outputs,
  and is appended to its transparency log; the "transaction hash" is the receipt id and its log index.
- `InferenceMode.ZKML` -> `proven`: an EZKL proof checked here against the publisher-signed verification key.
- `InferenceMode.TEE` -> none: veriml has no trusted execution environment. Calls raise `InvalidInput` naming what
  veriml offers instead (quorum:K re-execution by independent nodes, logged receipts, proofs).
- `x402SettlementMode.PRIVATE` -> privacy `private`; `BATCH_HASHED` -> `auditable` (salted commitments in the log).
There are no payments, wallets or TEE attestations: a `private_key` is accepted for call compatibility and never
used or kept. Every answer is checked by veriml's client (`veriml.VerificationFailed` otherwise).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import Any

import numpy as np

from veriml.errors import InvalidInput, VerificationFailed
from veriml.integrations.gateway import ChatOutcome, Gateway, InferResult
from veriml.receipts import Bundle
from veriml.runtime.generation import OUTPUT, split_inputs

__all__ = [
    "LLM",
    "Alpha",
    "InferenceMode",
    "InferenceResult",
    "InvalidInput",
    "StreamChoice",
    "StreamChunk",
    "StreamDelta",
    "TextGenerationOutput",
    "VerificationFailed",
    "infer",
    "init",
    "llm_chat",
    "llm_completion",
    "x402SettlementMode",
]


class InferenceMode(Enum):
    """OpenGradient's inference modes; `LEVELS` says which veriml level each becomes."""

    VANILLA = 0
    ZKML = 1
    TEE = 2


class x402SettlementMode(StrEnum):  # OpenGradient's name
    """OpenGradient's settlement modes, read as veriml privacy choices (there is no payment)."""

    PRIVATE = "private"
    BATCH_HASHED = "batch"


LEVELS = {InferenceMode.VANILLA: "signed", InferenceMode.ZKML: "proven"}
PRIVACY = {x402SettlementMode.PRIVATE: "private", x402SettlementMode.BATCH_HASHED: "auditable"}
NO_TEE = (
    "InferenceMode.TEE: veriml has no trusted execution environment and does not pretend to. It offers instead: "
    "InferenceMode.VANILLA (a signed receipt in the node's transparency log), verify='quorum:K' (K independent "
    "nodes re-run the model and must agree), and InferenceMode.ZKML (a zero-knowledge proof checked on your machine)"
)


def level_of(mode: InferenceMode) -> str:
    if not isinstance(mode, InferenceMode) and getattr(mode, "name", None) in InferenceMode.__members__:
        mode = InferenceMode[mode.name]  # OpenGradient's own enum, from code that still imports it
    if not isinstance(mode, InferenceMode):
        raise InvalidInput(f"inference_mode {mode!r}: expected InferenceMode.VANILLA or InferenceMode.ZKML")
    if mode is InferenceMode.TEE:
        raise InvalidInput(NO_TEE)
    return LEVELS[mode]


def privacy_of(mode: x402SettlementMode | str | None, default: str) -> str:
    if mode is None:
        return default
    try:
        return PRIVACY[x402SettlementMode(mode)]
    except ValueError:
        raise InvalidInput(f"x402_settlement_mode {mode!r}: expected PRIVATE or BATCH_HASHED") from None


@dataclass
class InferenceResult:
    """As OpenGradient's: `transaction_hash` and `model_output`. Here the transaction hash is the receipt id and its
    log index (`"sha256:…; log-index=N"`); `bundle` is the evidence anyone can check offline (`veriml verify`)."""

    transaction_hash: str
    model_output: dict[str, np.ndarray]
    bundle: Bundle | None = None
    receipt_id: str = ""
    log_index: int | None = None
    verification: dict[str, Any] = field(default_factory=dict)


@dataclass
class TextGenerationOutput:
    """As OpenGradient's, with the fields veriml can fill: `chat_output` (role, content) or `completion_output`,
    `finish_reason`, `usage`, and `data_settlement_transaction_hash` holding the receipt id and log index. The
    TEE and payment fields stay None: there is no enclave and no payment. `bundle` and `verification` are veriml's."""

    data_settlement_transaction_hash: str | None = None
    data_settlement_blob_id: str | None = None
    finish_reason: str | None = None
    chat_output: dict[str, Any] | None = None
    completion_output: str | None = None
    usage: dict[str, int] | None = None
    payment_hash: str | None = None
    tee_signature: str | None = None
    tee_timestamp: str | None = None
    tee_id: str | None = None
    tee_endpoint: str | None = None
    tee_payment_address: str | None = None
    bundle: Bundle | None = None
    receipt_id: str = ""
    log_index: int | None = None
    verification: dict[str, Any] = field(default_factory=dict)


@dataclass
class StreamDelta:
    content: str | None = None
    role: str | None = None
    tool_calls: list[dict[str, Any]] | None = None


@dataclass
class StreamChoice:
    delta: StreamDelta
    index: int = 0
    finish_reason: str | None = None


@dataclass
class StreamUsage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass
class StreamChunk:
    """As OpenGradient's stream chunk. Text pieces are provisional; the final chunk (`is_final`) comes only after
    veriml's client checked the whole answer against its signed tokens, and carries the receipt and bundle."""

    choices: list[StreamChoice]
    model: str
    usage: StreamUsage | None = None
    is_final: bool = False
    data_settlement_transaction_hash: str | None = None
    bundle: Bundle | None = None
    verification: dict[str, Any] = field(default_factory=dict)


def _inference_result(result: InferResult) -> InferenceResult:
    return InferenceResult(transaction_hash=result.reference, model_output=result.outputs, bundle=result.bundle,
                           receipt_id=str(result.bundle.receipt.id), log_index=result.log_index,
                           verification=result.verification())  # fmt: skip


def _usage(outcome: ChatOutcome) -> dict[str, int]:
    prompt, _ = split_inputs(outcome.result.bundle.inputs)
    generated = int(outcome.result.bundle.outputs[OUTPUT].size)
    return {"prompt_tokens": len(prompt), "completion_tokens": generated, "total_tokens": len(prompt) + generated}


def _text_output(outcome: ChatOutcome, chat: bool) -> TextGenerationOutput:
    result = outcome.result
    return TextGenerationOutput(
        data_settlement_transaction_hash=outcome.reference,
        finish_reason=result.finish_reason,
        chat_output={"role": "assistant", "content": result.text} if chat else None,
        completion_output=None if chat else result.text,
        usage=_usage(outcome),
        bundle=result.bundle,
        receipt_id=str(result.bundle.receipt.id),
        log_index=result.log_index,
        verification=outcome.verification(),
    )


class Alpha:
    """ONNX inference, as OpenGradient's `Alpha.infer`. `nodes`: veriml node URLs; `publishers`: accept models only
    from these publisher keys; `privacy`: private, auditable (default) or public."""

    def __init__(
        self,
        private_key: str | None = None,
        *,
        nodes: Sequence[str],
        publishers: Sequence[str] | None = None,
        privacy: str = "auditable",
    ) -> None:
        del private_key  # no wallet: veriml charges nothing and signs nothing with the caller's key
        self._gateway = Gateway(nodes, publishers=publishers, privacy=privacy)

    def infer(
        self,
        model_cid: str,
        inference_mode: InferenceMode,
        model_input: Mapping[str, Any],
        max_retries: int | None = None,
    ) -> InferenceResult:
        """Run `model_cid` (owner/name, owner/name@N or a manifest id: veriml's content address) on `model_input`
        at the level the mode maps to. `max_retries` is accepted for compatibility: the client already asks the
        next node when one fails or answers for something else."""
        del max_retries
        return _inference_result(self._gateway.infer(model_cid, dict(model_input), level=level_of(inference_mode)))

    def close(self) -> None:
        self._gateway.close()


class LLM:
    """Language models, as OpenGradient's `LLM` (async `chat` and `completion`). `verify`: signed (default),
    logged or quorum:K."""

    def __init__(
        self,
        private_key: str | None = None,
        *,
        nodes: Sequence[str],
        verify: str = "signed",
        publishers: Sequence[str] | None = None,
        privacy: str = "auditable",
        cache_dir: Any = None,
    ) -> None:
        del private_key
        self._gateway = Gateway(nodes, level=verify, publishers=publishers, privacy=privacy, cache_dir=cache_dir)

    def ensure_opg_approval(self, min_allowance: float, approve_amount: float | None = None) -> None:
        """Nothing to approve: veriml has no token and no payment. Kept so that start-up code runs unchanged."""

    async def close(self) -> None:
        self._gateway.close()

    @staticmethod
    def _refuse_unsupported(tools: Any, tool_choice: Any, response_format: Any, web_search: bool) -> None:
        if tools or tool_choice:
            raise InvalidInput("tools: veriml's language models have no tool calling")
        if response_format is not None:
            raise InvalidInput("response_format: veriml cannot constrain a generation's format")
        if web_search:
            raise InvalidInput("web_search: a veriml node runs an open-weight model with no web access")

    async def completion(
        self,
        model: str,
        prompt: str,
        max_tokens: int = 100,
        stop_sequence: list[str] | None = None,
        temperature: float = 0.0,
        web_search: bool = False,
        x402_settlement_mode: x402SettlementMode | None = None,
    ) -> TextGenerationOutput:
        """The prompt, sent as one user message through the model's chat template (veriml's client checks chat
        answers against their signed tokens; a raw completion it could not check is not offered)."""
        self._refuse_unsupported(None, None, None, web_search)
        outcome = await asyncio.to_thread(self._chat, model, [{"role": "user", "content": prompt}], max_tokens,
                                          stop_sequence, temperature, x402_settlement_mode, None)  # fmt: skip
        return _text_output(outcome, chat=False)

    async def chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        max_tokens: int = 100,
        stop_sequence: list[str] | None = None,
        temperature: float = 0.0,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        response_format: Any = None,
        web_search: bool = False,
        x402_settlement_mode: x402SettlementMode | None = None,
        stream: bool = False,
    ) -> TextGenerationOutput | AsyncIterator[StreamChunk]:
        """A chat answer (or, with `stream=True`, an async iterator of chunks), checked by veriml's client."""
        self._refuse_unsupported(tools, tool_choice, response_format, web_search)
        if stream:
            return self._stream(model, messages, max_tokens, stop_sequence, temperature, x402_settlement_mode)
        outcome = await asyncio.to_thread(self._chat, model, messages, max_tokens, stop_sequence, temperature,
                                          x402_settlement_mode, None)  # fmt: skip
        return _text_output(outcome, chat=True)

    def _chat(
        self,
        model: str,
        messages: list[dict[str, Any]],
        max_tokens: int,
        stop: list[str] | None,
        temperature: float,
        settlement: x402SettlementMode | None,
        on_text: Any,
    ) -> ChatOutcome:
        return self._gateway.chat(model, messages, max_tokens=max_tokens, stop=stop, temperature=temperature,
                                  on_text=on_text, privacy=privacy_of(settlement, self._gateway.privacy))  # fmt: skip

    async def _stream(
        self,
        model: str,
        messages: list[dict[str, Any]],
        max_tokens: int,
        stop: list[str] | None,
        temperature: float,
        settlement: x402SettlementMode | None,
    ) -> AsyncIterator[StreamChunk]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

        def put(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(events.put_nowait, (kind, value))

        def work() -> None:
            try:
                put("done", self._chat(model, messages, max_tokens, stop, temperature, settlement,
                                       lambda text: put("text", text)))  # fmt: skip
            except BaseException as exc:  # handed to the consumer, raised there
                put("error", exc)

        threading.Thread(target=work, name="veriml-og-stream", daemon=True).start()
        while True:
            kind, value = await events.get()
            if kind == "text":
                yield StreamChunk(choices=[StreamChoice(StreamDelta(content=value, role="assistant"))], model=model)
            elif kind == "error":
                raise value
            else:
                outcome: ChatOutcome = value
                usage = _usage(outcome)
                yield StreamChunk(
                    choices=[StreamChoice(StreamDelta(), finish_reason=outcome.result.finish_reason)],
                    model=model,
                    usage=StreamUsage(**usage),
                    is_final=True,
                    data_settlement_transaction_hash=outcome.reference,
                    bundle=outcome.result.bundle,
                    verification=outcome.verification(),
                )
                return


# ---- module-level helpers ---------------------------------------------------------------------------------------
# opengradient 1.1.4 has no module-level `init`; these let a script set the nodes once and call functions.

_default: dict[str, Any] = {}


def init(
    nodes: Sequence[str],
    private_key: str | None = None,
    *,
    verify: str = "signed",
    publishers: Sequence[str] | None = None,
    privacy: str = "auditable",
) -> None:
    """Set the nodes (and pins, privacy, chat level) the module-level `infer`, `llm_chat` and `llm_completion` use."""
    del private_key
    for old in _default.values():
        old._gateway.close()
    _default["alpha"] = Alpha(nodes=nodes, publishers=publishers, privacy=privacy)
    _default["llm"] = LLM(nodes=nodes, verify=verify, publishers=publishers, privacy=privacy)


def _client(kind: str) -> Any:
    if kind not in _default:
        raise InvalidInput("opengradient compat: call init(nodes=[...]) first")
    return _default[kind]


def infer(model_cid: str, inference_mode: InferenceMode, model_input: Mapping[str, Any]) -> InferenceResult:
    return _client("alpha").infer(model_cid, inference_mode, model_input)


def llm_chat(
    model_cid: str, messages: list[dict[str, Any]], max_tokens: int = 100, stop_sequence: list[str] | None = None,
    temperature: float = 0.0,
) -> TextGenerationOutput:  # fmt: skip
    return asyncio.run(_client("llm").chat(model_cid, messages, max_tokens, stop_sequence, temperature))


def llm_completion(
    model_cid: str, prompt: str, max_tokens: int = 100, stop_sequence: list[str] | None = None,
    temperature: float = 0.0,
) -> TextGenerationOutput:  # fmt: skip
    return asyncio.run(_client("llm").completion(model_cid, prompt, max_tokens, stop_sequence, temperature))
