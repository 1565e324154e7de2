"""Chat prompts: checking messages and rendering them with the model's own chat template (from its GGUF
metadata, carried in the manifest), in a sandboxed Jinja environment as Hugging Face's tokenizers do."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import Any

from veriml.errors import InvalidInput, Unavailable, shown

ROLES = ("system", "user", "assistant")
MAX_MESSAGES = 1024


def check_messages(messages: object) -> list[dict[str, str]]:
    """Messages as {role, content} with text content; OpenAI's list-of-parts content is joined if every part
    is text. InvalidInput names the first message that is wrong."""
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages: expected a non-empty list of {role, content} objects")
    if len(messages) > MAX_MESSAGES:
        raise InvalidInput(f"messages: at most {MAX_MESSAGES} messages, got {len(messages)}")
    checked = []
    for number, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidInput(f"messages[{number}]: expected an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            expected = ", ".join(ROLES)
            raise InvalidInput(f"messages[{number}].role: {shown(role)} is not supported; expected one of {expected}")
        content = _text(message.get("content"), number)
        if not content.strip() and role != "assistant":
            raise InvalidInput(f"messages[{number}].content: empty; a {role} message needs text")
        checked.append({"role": role, "content": content})
    if checked[-1]["role"] == "assistant":
        raise InvalidInput("messages: the last message is the assistant's; end with a user message to get a reply")
    return checked


def _text(content: Any, number: int) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise InvalidInput(
                    f"messages[{number}].content: part of type {shown(kind)} is not supported; only text"
                )
            parts.append(part["text"])
        return "".join(parts)
    raise InvalidInput(f"messages[{number}].content: expected text, got {type(content).__name__}")


@cache
def _template(source: str) -> Any:
    try:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as exc:
        raise Unavailable("chat templates need jinja2 (installed with the `llm` extra)") from exc

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = raise_exception
    try:
        return environment.from_string(source)
    except TemplateError as exc:
        raise InvalidInput(f"chat template: does not parse ({exc})") from exc


def render_chat(template: str, messages: Sequence[dict[str, str]], bos_token: str = "", eos_token: str = "") -> str:
    """The prompt text for a conversation, ending where the assistant's reply begins."""
    if not template:
        raise InvalidInput("this model has no chat template; use /v1/completions with a plain prompt")
    from jinja2 import TemplateError

    try:
        return str(
            _template(template).render(
                messages=list(messages), add_generation_prompt=True, bos_token=bos_token, eos_token=eos_token
            )
        )
    except TemplateError as exc:
        raise InvalidInput(f"chat template: refused the messages ({exc})") from exc
