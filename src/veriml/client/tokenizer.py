"""The client's own tokenizer for a language model, so that a chat answer is checked here rather than taken from
the node: the prompt tokens a node signed must be the tokenization of the messages sent (the publisher-signed
chat template, rendered here), and the text handed to the caller is what the signed token ids decode to.

It is llama.cpp's tokenizer (the `llm` extra), loaded with `vocab_only` from the model blob, which the client
fetches once by content address (no more bytes than the manifest states, at the rate `bounded_stream` asks of a
sender), checks against the manifest's blob id and caches under its cache directory.
The node tokenizes with the same library and settings (`runtime.llama_engine`), so honest answers match bit
for bit. Without the `llm` extra the client cannot check and says so (`Unavailable`), unless the caller opts out
with `check_text=False`, and then `ChatResult.text_checked` is False.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from veriml.client.protocol import no_answer
from veriml.codec import Digest
from veriml.errors import InvalidInput, Unavailable, VerificationFailed, VerimlError
from veriml.hub import SignedManifest
from veriml.runtime.chat import check_messages, render_chat
from veriml.runtime.llama_engine import _Text, llama_module


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "veriml" / "client"


class Tokenizer:
    """llama.cpp's vocabulary of one GGUF blob (no weights loaded)."""

    def __init__(self, path: Path) -> None:
        llama_cpp = llama_module()
        try:
            self._llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise InvalidInput(f"model {path.name}: llama.cpp cannot read its vocabulary: {exc}") from exc
        self._cpp = llama_cpp
        self._vocab = self._llm._model.vocab
        self.n_vocab = self._llm.n_vocab()
        self._lock = threading.Lock()
        self.add_bos = self._llm.metadata.get("tokenizer.ggml.add_bos_token", "false") == "true"

    def prompt_tokens(self, manifest: SignedManifest, messages: object) -> list[int]:
        """The token ids of chat messages, as a node must produce them: the template the publisher signed,
        rendered, then tokenized with special tokens parsed and BOS where the model's metadata asks for it."""
        llm = manifest.body.llm
        if llm is None:
            raise InvalidInput(f"model {manifest.body.ref}: not a language model")
        text = render_chat(llm.chat_template, check_messages(messages))
        with self._lock:
            return list(self._llm.tokenize(text.encode("utf-8"), add_bos=self.add_bos, special=True))

    def _piece(self, token: int) -> bytes:
        buffer = ctypes.create_string_buffer(256)
        size = self._cpp.llama_token_to_piece(self._vocab, token, buffer, len(buffer), 0, False)
        if size < 0:
            buffer = ctypes.create_string_buffer(-size)
            size = self._cpp.llama_token_to_piece(self._vocab, token, buffer, -size, 0, False)
        return buffer.raw[:size]

    def piece(self, token: int) -> bytes | None:
        """The bytes a generated token adds to the text; None for an end-of-generation token. A token outside the
        vocabulary is refused."""
        if not 0 <= token < self.n_vocab:
            raise VerificationFailed(f"generated token id {token} is outside the vocabulary of {self.n_vocab}")
        with self._lock:
            if self._cpp.llama_vocab_is_eog(self._vocab, token):
                return None
            return self._piece(token)

    def text_of(self, tokens: Iterable[int], stop: Sequence[str]) -> str:
        """The text generated tokens decode to, exactly as a node's generation loop builds it: up to an
        end-of-generation token, cut at the first stop sequence."""
        text = _Text(stop)
        with self._lock:
            for token in tokens:
                if not 0 <= token < self.n_vocab:
                    raise VerificationFailed(f"generated token id {token} is outside the vocabulary of {self.n_vocab}")
                if self._cpp.llama_vocab_is_eog(self._vocab, token):
                    break
                text.add(self._piece(token))
                if text.stopped:
                    break
        text.add(b"", final=True)
        return text.text


# Hands one node's copy of a blob (its id and the size its manifest states) to a writer as the bytes arrive,
# raising VerimlError for a node that fails: `veriml.client.blob_fetch.stream_blob` over some HTTP client.
StreamBlob = Callable[[str, Digest, int, Callable[[bytes], None]], None]


class Tokenizers:
    """Tokenizers by blob id; each blob is fetched once from the first node whose bytes hash to its id, and cached
    on disk."""

    def __init__(self, cache_dir: Path | None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._loaded: dict[Digest, Tokenizer] = {}
        self._lock = threading.Lock()

    def get(self, manifest: SignedManifest, nodes: Callable[[], Sequence[str]], stream: StreamBlob) -> Tokenizer:
        """`nodes()` is asked for the nodes to fetch from only when the blob is not cached: the client's rotation
        through its nodes moves on only for a request that uses it."""
        llama_module()  # Unavailable (with how to install it) before any download
        blob = manifest.body.blob
        with self._lock:
            tokenizer = self._loaded.get(blob)
            if tokenizer is None:
                path = self._blob_path(blob, manifest.body.size, nodes, stream)
                tokenizer = self._loaded[blob] = Tokenizer(path)
            return tokenizer

    def _blob_path(self, blob: Digest, size: int, nodes: Callable[[], Sequence[str]], stream: StreamBlob) -> Path:
        path = self.cache_dir / "blobs" / f"{blob.hex}.gguf"
        if path.is_file():
            return path  # written only after its hash was checked
        path.parent.mkdir(parents=True, exist_ok=True)
        failures: list[VerimlError] = []
        for node in nodes():
            try:
                self._fetch_checked(path, blob, size, node, stream)
                return path
            except VerimlError as exc:  # whatever one node answers, another may serve the blob
                failures.append(exc)
        raise no_answer(f"blob {blob}", failures)

    @staticmethod
    def _fetch_checked(path: Path, blob: Digest, size: int, node: str, stream: StreamBlob) -> None:
        """One node's copy of the blob, written to `path` only if it hashes to the blob's id; nothing is left of it
        otherwise."""
        partial = path.with_suffix(f".partial-{os.getpid()}-{threading.get_ident()}")
        hasher = hashlib.sha256()
        try:
            # `write` runs in bounded_stream's worker; once the stream is given up, that worker raises at its next
            # chunk instead of writing it, so closing the file here ends its writes.
            with open(partial, "wb") as handle:

                def write(chunk: bytes) -> None:
                    hasher.update(chunk)
                    handle.write(chunk)

                stream(node, blob, size, write)
            served = Digest.from_hasher(hasher)
            if served != blob:
                raise VerificationFailed(f"node {node}: blob {blob}: the bytes served hash to {served}")
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


def llm_available() -> bool:
    try:
        llama_module()
    except Unavailable:
        return False
    return True
