"""Running a node: uvicorn serving the app on the configured address, with structured log lines on stderr."""

from __future__ import annotations

import json
import logging
import sys
import time

import msgspec
import uvicorn

from veriml.node.app import create_app
from veriml.node.config import NodeConfig
from veriml.node.node import Node

_LINE = msgspec.json.Encoder()


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger, and the message (already JSON for request lines)."""

    _second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        if fields is None:
            message = record.getMessage()
            try:
                fields = json.loads(message) if message.startswith("{") else {"message": message}
            except json.JSONDecodeError:
                fields = {"message": message}
        second = int(record.created)
        if second != self._second[0]:  # a node writes a line per request: format each second once
            self._second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        when = f"{self._second[1]}.{int(record.msecs):03d}Z"
        line = {"ts": when, "level": record.levelname.lower(), "logger": record.name, **fields}
        try:
            return _LINE.encode(line).decode()
        except (TypeError, msgspec.EncodeError, UnicodeEncodeError):  # a field msgspec does not write as json does
            return json.dumps(line)


def configure_logging(level: int = logging.INFO) -> None:
    # A node writes a line per request. Its lines name no thread, process or source line, and finding those for
    # every record (the caller's frame above all) cost more than half of each line: 30 µs against 13 µs here.
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    logging._srcfile = None  # the logging module's documented switch for skipping the caller lookup
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    for name in ("veriml", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False


def serve(config: NodeConfig) -> None:
    """Run the node until SIGINT or SIGTERM, then stop its background work and close its stores."""
    configure_logging()
    # Each request hops between the event loop, a worker thread and the log's writer thread; with the default
    # 5 ms GIL switch interval a hop can wait that long behind a busy thread.
    sys.setswitchinterval(0.0005)
    node = Node(config).start()
    try:
        logging.getLogger("veriml.node").info(
            json.dumps({"event": "start", "node_id": node.key.key_id, "url": f"http://{config.host}:{config.port}"})
        )
        # No proxy headers: the node never reads a client's address, and uvicorn's middleware for them walks every
        # request's headers.
        uvicorn.run(create_app(node), host=config.host, port=config.port, log_config=None, access_log=False,
                    proxy_headers=False, timeout_graceful_shutdown=5)  # fmt: skip
    finally:
        node.stop()
