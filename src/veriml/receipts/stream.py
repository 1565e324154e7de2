"""The hash chain of a streamed generation (docs/llm.md, "Streaming receipts"): every chunk of a stream carries
its token ids and the chain value after them, so a client checks each chunk as it arrives and keeps one hash.

    h_0 = SHA-256("veriml/stream/v1" || 0x00 || salt || manifest id || request id)
    h   = SHA-256(h || token as int32 little-endian), once per generated token, in order

A chunk's value is h after its last token. The chain is folded one token at a time, so its final value is a
function of the salt, the manifest, the request id and the generated tokens alone, not of how the node grouped
tokens into chunks: the receipt's output commitment (over those tokens, with the same salt) binds it with no
new field, and anyone holding the bundle recomputes it. The salt, chosen per request and kept in the client's
bundle, makes every value unguessable from anything public; the values travel only to the client.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from veriml.codec import Digest
from veriml.receipts.commitment import SALT_BYTES

STREAM_DOMAIN = b"veriml/stream/v1\x00"


def stream_start(salt: bytes, manifest: Digest, request_id: str) -> bytes:
    """h_0: the chain bound to one request (its salt, the manifest asked and the request id)."""
    if len(salt) != SALT_BYTES:
        raise ValueError(f"salt: expected {SALT_BYTES} bytes, got {len(salt)}")
    return hashlib.sha256(STREAM_DOMAIN + salt + manifest.value + request_id.encode("utf-8")).digest()


def stream_next(chain: bytes, tokens: Iterable[int]) -> bytes:
    """The chain value after `tokens`, from the value before them."""
    for token in tokens:
        chain = hashlib.sha256(chain + int(token).to_bytes(4, "little", signed=True)).digest()
    return chain


def stream_chain(salt: bytes, manifest: Digest, request_id: str, tokens: Iterable[int]) -> bytes:
    """The final chain value of a whole generation: what a stream of these tokens must end at."""
    return stream_next(stream_start(salt, manifest, request_id), tokens)
