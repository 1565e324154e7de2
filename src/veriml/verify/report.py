"""What a verification found: every check by name, with pass, fail or skipped, and the verdict they add up to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["pass", "fail", "skipped"]
# "unanchored": every required check passed, but against no key the user trusts, so anyone with fresh keys could
# have made the bundle. It is not "verified" (docs/threat-model.md: a verdict is relative to trust roots).
Verdict = Literal["verified", "unanchored", "failed", "incomplete"]


@dataclass(frozen=True, slots=True)
class TrustRoots:
    """The keys the user named as trusted, which a verdict is relative to (counts of distinct keys)."""

    publishers: int = 0
    nodes: int = 0
    witnesses: int = 0
    witness_quorum: int = 0

    @property
    def any(self) -> bool:
        return bool(self.publishers or self.nodes or self.witnesses)

    def describe(self) -> str:
        if not self.any:
            return "no trusted keys: anyone with fresh keys could have made this bundle"

        def role(count: int, what: str) -> str:
            return f"{count} trusted {what} key(s)" if count else f"{what}: any key (not anchored)"

        witnessed = (
            f"{self.witness_quorum} of {self.witnesses} trusted witness key(s)" if self.witnesses else "witnesses: none"
        )
        return f"{role(self.publishers, 'publisher')}, {role(self.nodes, 'node')}, {witnessed}"

    def to_json(self) -> dict[str, int]:
        return {"publishers": self.publishers, "nodes": self.nodes, "witnesses": self.witnesses,
                "witness_quorum": self.witness_quorum}  # fmt: skip


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
    trust: TrustRoots = TrustRoots()

    @property
    def verdict(self) -> Verdict:
        """`verified` only if every required check ran and passed and the user named keys to trust; the same
        without trusted keys is `unanchored`; any failure anywhere is `failed`."""
        if any(check.status == "fail" for check in self.checks):
            return "failed"
        if all(check.status == "pass" for check in self.checks if check.required):
            return "verified" if self.trust.any else "unanchored"
        return "incomplete"

    @property
    def verified(self) -> bool:
        """Every required check passed, relative to keys the user trusts."""
        return self.verdict == "verified"

    @property
    def consistent(self) -> bool:
        """Every required check passed, whether or not any key was trusted: the bundle is internally sound and
        signed, which is what a client checks before it binds the answer to its own request."""
        return self.verdict in ("verified", "unanchored")

    def check(self, name: str) -> CheckResult:
        return next(check for check in self.checks if check.name == name)

    def failures(self) -> list[CheckResult]:
        return [check for check in self.checks if check.status == "fail"]

    def to_json(self) -> dict[str, Any]:
        return {"level": self.level, "verdict": self.verdict, "trust": self.trust.to_json(),
                "relative_to": self.trust.describe(), "checks": [c.to_json() for c in self.checks]}  # fmt: skip
