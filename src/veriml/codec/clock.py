"""Timestamps in the one text form signed documents use: RFC 3339, UTC, microseconds, `Z`."""

from __future__ import annotations

import time

_second: tuple[int, str] = (-1, "")  # the last second formatted: a node stamps thousands of receipts in each


def utc_timestamp() -> str:
    global _second
    seconds, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    if _second[0] != seconds:
        _second = (seconds, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)))
    return f"{_second[1]}.{nanoseconds // 1000:06d}Z"
