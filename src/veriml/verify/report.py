"""What a verification found: every check by name, with pass, fail or skipped, and the verdict they add up to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["pass", "fail", "skipped"]
Verdict = Literal["verified", "failed", "incomplete"]


@dataclass(frozen=True, slots=True)
class CheckResult:
    name: str
    status: Status
    detail: str
    required: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "required": self.required}


@dataclass(frozen=True, slots=True)
class Report:
    level: str
    checks: tuple[CheckResult, ...]

    @property
    def verdict(self) -> Verdict:
        """`verified` only if every required check ran and passed; any failure anywhere is `failed`."""
        if any(check.status == "fail" for check in self.checks):
            return "failed"
        if all(check.status == "pass" for check in self.checks if check.required):
            return "verified"
        return "incomplete"

    @property
    def verified(self) -> bool:
        return self.verdict == "verified"

    def check(self, name: str) -> CheckResult:
        return next(check for check in self.checks if check.name == name)

    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if check.status == "fail"]

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "verdict": self.verdict, "checks": [c.to_json() for c in self.checks]}
