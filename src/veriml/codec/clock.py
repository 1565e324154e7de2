"""Timestamps in the one text form signed documents use: RFC 3339, UTC, microseconds, `Z`."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_timestamp() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
