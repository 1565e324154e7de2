"""LangChain over veriml: `ChatVeriml`, a chat model (langchain-core's `BaseChatModel`) whose answers carry their
receipt bundle and verdict in `response_metadata["veriml"]`, streaming included; and `VerimlInferenceTool`, a
tool that runs an ONNX model and returns its outputs with the bundle as the tool message's artifact.

    llm = ChatVeriml(nodes=["http://127.0.0.1:8700", "http://127.0.0.1:8701"], model="smol/lm", verify="quorum:2")
    reply = llm.invoke("Name the capital of France.")
    reply.response_metadata["veriml"]["verification"]["verdict"]

Both go through the SDK client: an answer for another model, other inputs or another request, or text other than
what the signed tokens decode to, raises `veriml.VerificationFailed` (streamed pieces are provisional until the
last chunk, which is yielded only once the client has checked the whole answer)."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForToolRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from veriml.errors import InvalidInput
from veriml.integrations.gateway import LEVELS_HELP, ChatOutcome, Gateway, outputs_json
from veriml.receipts import DEFAULT_PRIVACY
from veriml.runtime.generation import OUTPUT, split_inputs

__all__ = ["ChatVeriml", "VerimlInferenceTool"]

_ROLES = {SystemMessage: "system", HumanMessage: "user", AIMessage: "assistant"}


def to_openai_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as the chat messages veriml's client sends (system, user, assistant; text only)."""
    converted = []
    for message in messages:
        role = next((role for kind, role in _ROLES.items() if isinstance(message, kind)), None)
        if role is None:
            raise InvalidInput(f"ChatVeriml: a {type(message).__name__} has no role in a veriml chat prompt")
        content = message.content
        if isinstance(content, list):
            parts = [p if isinstance(p, str) else p.get("text") if p.get("type") == "text" else None for p in content]
            if any(part is None for part in parts):
                raise InvalidInput("ChatVeriml: only text content can be sent to a language model")
            content = "".join(str(part) for part in parts)
        converted.append({"role": role, "content": content})
    return converted


def veriml_metadata(outcome: ChatOutcome) -> dict[str, Any]:
    result = outcome.result
    return {
        "receipt_id": str(result.bundle.receipt.id),
        "log_index": result.log_index,
        "node": result.node,
        "reference": outcome.reference,
        "text_checked": result.text_checked,
        "bundle": result.bundle.to_json(),
        "verification": outcome.verification(),
    }


def response_metadata(outcome: ChatOutcome) -> dict[str, Any]:
    return {"model_name": outcome.result.bundle.manifest.body.ref, "finish_reason": outcome.result.finish_reason,
            "veriml": veriml_metadata(outcome)}  # fmt: skip


def usage(outcome: ChatOutcome) -> dict[str, int]:
    """Token counts read from the signed bundle (the prompt tokens and the generated tokens it binds)."""
    prompt, _ = split_inputs(outcome.result.bundle.inputs)
    generated = int(outcome.result.bundle.outputs[OUTPUT].size)
    return {"input_tokens": len(prompt), "output_tokens": generated, "total_tokens": len(prompt) + generated}


class ChatVeriml(BaseChatModel):
    """A language model on veriml nodes. `verify`: signed, logged or quorum:K (K nodes generate the same tokens)."""

    nodes: list[str] = Field(description="veriml node URLs")
    model: str = Field(description="a GGUF model: owner/name, owner/name@N or a manifest id")
    verify: str = Field(default="signed", description="signed, logged or quorum:K")
    max_tokens: int = 64
    temperature: float = 0.0
    seed: int | None = None
    publishers: list[str] = Field(default_factory=list, description="accept the model only from these publishers")
    privacy: str = DEFAULT_PRIVACY
    timeout: float = 60.0
    cache_dir: str | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _gateway: Gateway | None = PrivateAttr(default=None)

    @property
    def _llm_type(self) -> str:
        return "veriml"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model": self.model, "verify": self.verify, "max_tokens": self.max_tokens,
                "temperature": self.temperature, "seed": self.seed}  # fmt: skip

    def gateway(self) -> Gateway:
        if self._gateway is None:
            cache = Path(self.cache_dir) if self.cache_dir else None
            self._gateway = Gateway(self.nodes, level=self.verify, publishers=self.publishers, privacy=self.privacy,
                                    timeout=self.timeout, cache_dir=cache)  # fmt: skip
        return self._gateway

    def _ask(self, messages: list[BaseMessage], stop: list[str] | None, on_text: Any, **kwargs: Any) -> ChatOutcome:
        return self.gateway().chat(
            self.model,
            to_openai_messages(messages),
            level=kwargs.get("verify", self.verify),
            max_tokens=kwargs.get("max_tokens", self.max_tokens),
            temperature=kwargs.get("temperature", self.temperature),
            seed=kwargs.get("seed", self.seed),
            stop=stop,
            on_text=on_text,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        outcome = self._ask(messages, stop, None, **kwargs)
        message = AIMessage(
            content=outcome.result.text,
            response_metadata=response_metadata(outcome),
            usage_metadata=usage(outcome),
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        """Text pieces as the node streams them (provisional), then a last, empty chunk with the receipt bundle and
        verdict, yielded only after the client checked that the text is what the signed tokens decode to; if it
        is not, the stream raises VerificationFailed instead."""
        pieces: queue.Queue[tuple[str, Any]] = queue.Queue()

        def work() -> None:
            try:
                pieces.put(("done", self._ask(messages, stop, lambda text: pieces.put(("text", text)), **kwargs)))
            except BaseException as exc:  # handed to the consumer, raised there
                pieces.put(("error", exc))

        threading.Thread(target=work, name="veriml-chat-stream", daemon=True).start()
        while True:
            kind, value = pieces.get()
            if kind == "text":
                chunk = ChatGenerationChunk(message=AIMessageChunk(content=value))
                if run_manager is not None:
                    run_manager.on_llm_new_token(value, chunk=chunk)
                yield chunk
            elif kind == "error":
                raise value
            else:
                outcome: ChatOutcome = value
                metadata = response_metadata(outcome)
                yield ChatGenerationChunk(
                    message=AIMessageChunk(content="", response_metadata=metadata, usage_metadata=usage(outcome))
                )
                return


class InferenceInput(BaseModel):
    inputs: dict[str, Any] = Field(
        description="input name -> nested list of numbers (converted to the dtype the model declares)"
    )
    model: str | None = Field(default=None, description="owner/name of an ONNX model (if the tool names none)")


class VerimlInferenceTool(BaseTool):
    """Run an ONNX model on veriml nodes. The tool message's content is the outputs, the receipt reference and the
    verdict (JSON); its artifact is the full result, bundle included (`response_format="content_and_artifact"`)."""

    name: str = "veriml_infer"
    description: str = (
        "Run a verifiable ONNX model on veriml nodes. Arguments: inputs (input name -> nested list of numbers) and, "
        "unless the tool is bound to one, model (owner/name). Returns the outputs, the receipt reference and the "
        "verification verdict."
    )
    args_schema: type[BaseModel] = InferenceInput
    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"

    nodes: list[str]
    model: str | None = None
    verify: str = Field(default="signed", description=LEVELS_HELP)
    publishers: list[str] = Field(default_factory=list)
    privacy: str = DEFAULT_PRIVACY
    timeout: float = 60.0

    model_config = ConfigDict(arbitrary_types_allowed=True)
    _gateway: Gateway | None = PrivateAttr(default=None)

    def gateway(self) -> Gateway:
        if self._gateway is None:
            self._gateway = Gateway(self.nodes, level=self.verify, publishers=self.publishers, privacy=self.privacy,
                                    timeout=self.timeout)  # fmt: skip
        return self._gateway

    def _run(
        self, inputs: dict[str, Any], model: str | None = None, run_manager: CallbackManagerForToolRun | None = None
    ) -> tuple[str, dict[str, Any]]:
        ref = self.model or model
        if ref is None:
            raise InvalidInput("veriml_infer: name a model (the tool is bound to none)")
        if self.model is not None and model not in (None, self.model):
            raise InvalidInput(f"veriml_infer: this tool runs {self.model}, not {model}")
        result = self.gateway().infer(ref, inputs)
        content = {"model": result.bundle.manifest.body.ref, "outputs": outputs_json(result.outputs),
                   "reference": result.reference, "verdict": result.report.verdict, "level": result.level}  # fmt: skip
        artifact = {**content, "bundle": result.bundle.to_json(), "verification": result.verification()}
        return json.dumps(content), artifact
