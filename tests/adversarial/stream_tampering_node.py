"""A node that tampers with its server-sent event streams after it generated, signed and hash-chained them
honestly. The one dishonest thing it does per stream is read from a control file (the first argument), so that
one process serves every case: `text` changes chunk 3's text; `tokens` changes chunk 3's token ids (leaving its
chain value); `drop` leaves chunk 3 out; `reorder` swaps chunks 3 and 4; `rechain` changes chunk 3's token ids
and recomputes every chain value from there (a consistent chain over tokens it did not sign); anything else
passes the stream through. Test-only; usage: stream_tampering_node.py CONTROL --config node.toml"""

import json
import sys
from pathlib import Path

from fastapi.responses import StreamingResponse

from veriml.node import openai_api
from veriml.node.__main__ import main
from veriml.receipts.stream import stream_next

CONTROL = Path(sys.argv.pop(1))
TARGET = 3  # events: 0 is the role chunk, then one per text piece


def _event(raw: bytes) -> dict | None:
    if not raw.startswith(b"data: {"):
        return None
    return json.loads(raw[len(b"data: ") :])


def _raw(event: dict) -> bytes:
    return b"data: " + json.dumps(event, ensure_ascii=False).encode() + b"\n\n"


async def tampered(events, mode: str):
    held = None
    chain = None
    number = -1
    async for raw in events:
        event = _event(raw)
        if event is None or "veriml_chunk" not in event:
            yield raw
            continue
        number += 1
        bound = event["veriml_chunk"]
        choice = event["choices"][0]
        if number == TARGET and mode == "text":
            if "delta" in choice:
                choice["delta"]["content"] = (choice["delta"].get("content") or "") + " Lyon"
            else:
                choice["text"] += " Lyon"
        if number == TARGET and mode in ("tokens", "rechain"):
            bound["tokens"] = [(t + 1) % 49152 for t in bound["tokens"]]
        if mode == "rechain":
            if number >= TARGET:
                chain = stream_next(chain, bound["tokens"])
                bound["chain"] = chain.hex()
            else:
                chain = bytes.fromhex(bound["chain"])
        if number == TARGET and mode == "drop":
            continue
        if number == TARGET and mode == "reorder":
            held = event
            continue
        yield _raw(event)
        if held is not None:
            yield _raw(held)
            held = None


class TamperedStream(StreamingResponse):
    def __init__(self, content, *args, **kwargs):  # type: ignore[no-untyped-def]
        mode = CONTROL.read_text().strip() if CONTROL.exists() else ""
        super().__init__(tampered(content, mode), *args, **kwargs)


openai_api.StreamingResponse = TamperedStream  # type: ignore[misc]

if __name__ == "__main__":
    raise SystemExit(main())
