"""The baselines for bench_node.py: what a user would write without veriml, onnxruntime behind an HTTP server with
no validation, no receipt, no log. Usage: plain_server.py MODEL.onnx PORT [fastapi|asgi]

fastapi: FastAPI + uvicorn (the baseline of issue 12).
asgi:    a bare ASGI function + msgspec on uvicorn: the same server and request path the node's /v1/infer fast path
         uses, so that node ÷ this shows veriml's own cost apart from the web framework's.
"""

import sys

import msgspec
import numpy as np
import onnxruntime as ort
import uvicorn
from fastapi import FastAPI

options = ort.SessionOptions()
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
output_names = [out.name for out in session.get_outputs()]
app = FastAPI()


@app.post("/infer")
def infer(body: dict) -> dict:
    inputs = {name: np.asarray(value, dtype=np.float32) for name, value in body["inputs"].items()}
    outputs = session.run(None, inputs)
    return {"outputs": {name: value.tolist() for name, value in zip(output_names, outputs, strict=True)}}


async def bare(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
    if scope["type"] != "http":
        return
    chunks, more = [], True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    try:
        body = msgspec.json.decode(b"".join(chunks))
        inputs = {name: np.asarray(value, dtype=np.float32) for name, value in body["inputs"].items()}
    except (msgspec.DecodeError, KeyError, TypeError, ValueError):
        await send({"type": "http.response.start", "status": 400, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return
    outputs = session.run(None, inputs)
    answer = msgspec.json.encode({"outputs": {n: v.tolist() for n, v in zip(output_names, outputs, strict=True)}})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": answer})


if __name__ == "__main__":
    kind = sys.argv[3] if len(sys.argv) > 3 else "fastapi"
    uvicorn.run(app if kind == "fastapi" else bare, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning",
                access_log=False)  # fmt: skip
