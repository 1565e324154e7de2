"""The embedded chain (eth-tester on py-evm) behind a JSON-RPC endpoint on 127.0.0.1, so that several node
processes of a devnet share one in-process chain: `python -m veriml.chain.rpc_server --port 8545`.

For development only: its genesis accounts' keys are public (veriml.chain.connection.EMBEDDED_KEYS), and it
handles one request at a time (eth-tester is not thread-safe)."""

from __future__ import annotations

import argparse
import contextlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MAX_REQUEST_BYTES = 4 << 20


class _Chain:
    def __init__(self) -> None:
        from eth_tester import EthereumTester
        from web3 import EthereumTesterProvider, Web3
        from web3.middleware import combine_middleware

        from veriml.chain.connection import fast_estimates

        provider = EthereumTesterProvider(fast_estimates(EthereumTester()))
        # The provider's own middleware turns JSON-RPC params (hex) into eth-tester's Python values and back.
        self.request = combine_middleware(
            middleware=tuple(provider._middleware), w3=Web3(provider), provider_request_fn=provider.make_request
        )
        self.lock = threading.Lock()

    def answer(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict) or not isinstance(request.get("method"), str):
            return {"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "invalid request"}}
        ident = request.get("id")
        try:
            with self.lock:
                response = self.request(request["method"], request.get("params") or [])
        except Exception as exc:  # eth-tester raises where a node answers with an error: answer like a node
            message = str(exc)
            if type(exc).__name__ == "TransactionFailed" and not message.startswith("execution reverted"):
                message = f"execution reverted: {message}"
            code = 3 if message.startswith("execution reverted") else -32000
            return {"jsonrpc": "2.0", "id": ident, "error": {"code": code, "message": message}}
        return {**dict(response), "jsonrpc": "2.0", "id": ident}


def _handler(chain: _Chain) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if not 0 < length <= MAX_REQUEST_BYTES:
                self.send_error(413 if length else 411)
                return
            try:
                request = json.loads(self.rfile.read(length))
            except ValueError:
                body: Any = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "parse error"}}
            else:
                body = [chain.answer(r) for r in request] if isinstance(request, list) else chain.answer(request)
            data = json.dumps(body, default=_json_default).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if hasattr(value, "hex"):
        return value.hex()
    if isinstance(value, dict) or hasattr(value, "items"):
        return dict(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def serve(port: int, host: str = "127.0.0.1") -> None:
    server = ThreadingHTTPServer((host, port), _handler(_Chain()))
    try:
        server.serve_forever()
    finally:
        server.server_close()


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m veriml.chain.rpc_server")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.port, args.host)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
