"""A node that cheats on some requests and tries to dodge the audit: it perturbs the outputs of every request whose
first input value is positive, and answers 500 for every odd log entry an auditor asks for (hoping an auditor
redraws its sample, or skips what it could not examine). For the audit attack tests only.
Usage: audit_dodging_node.py --config node.toml
"""

import re

import numpy as np

from veriml.node import server
from veriml.node.__main__ import main
from veriml.runtime.onnx_engine import OnnxEngine

ENTRY = re.compile(r"/v1/log/entries/(\d+)")
honest_run = OnnxEngine.run
honest_create_app = server.create_app


def cheating_run(self, blob_id, load, inputs):  # type: ignore[no-untyped-def]
    outputs = honest_run(self, blob_id, load, inputs)
    if float(np.asarray(next(iter(inputs.values()))).flat[0]) <= 0:
        return outputs
    return {name: (value + np.asarray(1e-3, value.dtype)).astype(value.dtype) for name, value in outputs.items()}


def dodging(app):  # type: ignore[no-untyped-def]
    async def wrapped(scope, receive, send):  # type: ignore[no-untyped-def]
        match = ENTRY.fullmatch(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or int(match[1]) % 2 == 0:
            await app(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 500, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"detail": "internal error"}'})

    return wrapped


OnnxEngine.run = cheating_run  # type: ignore[method-assign]
server.create_app = lambda node: dodging(honest_create_app(node))  # type: ignore[assignment]

if __name__ == "__main__":
    raise SystemExit(main())
