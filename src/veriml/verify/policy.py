"""Verification levels (DESIGN §4): which checks must pass for a bundle to count as verified at each level.

Checks outside a level still run and are reported, but only the required ones can make it `verified`.
"""

from __future__ import annotations

from veriml.errors import InvalidInput

SIGNED = (
    "manifest.signature",
    "receipt.signature",
    "receipt.binding",
    "inputs.signature",
    "inputs.digest",
    "outputs.digest",
)
LOGGED = (*SIGNED, "log.inclusion")
REEXECUTED = (*LOGGED, "blob.digest", "reexec")
# A proof replaces re-execution: checking it needs no model run (DESIGN §4, level 4).
PROVEN = (*LOGGED, "zk.proof")

# Each level includes the ones before it (DESIGN §4).
LEVELS: dict[str, tuple[str, ...]] = {
    "signed": SIGNED,
    "logged": LOGGED,
    "reexecuted": REEXECUTED,
    "proven": PROVEN,
}


def required_checks(level: str, trusted_publishers: bool, trusted_nodes: bool) -> frozenset[str]:
    if level not in LEVELS:
        raise InvalidInput(f"verification level {level!r}: expected one of {', '.join(LEVELS)}")
    required = set(LEVELS[level])
    # Whose keys to trust is the user's choice; once named, a key outside the set fails the bundle.
    if trusted_publishers:
        required.add("manifest.publisher")
    if trusted_nodes:
        required.add("receipt.node")
    return frozenset(required)
