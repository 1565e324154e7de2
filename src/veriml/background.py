"""A background job on a daemon thread — the checkpoint cadence, peer discovery, audits, chain anchoring: started
once, and stopped by setting an event its loop waits on, so `stop()` returns within one wait."""

from __future__ import annotations

import threading
from typing import Self


class BackgroundJob:
    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        raise NotImplementedError
