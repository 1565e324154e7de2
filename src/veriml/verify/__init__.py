"""Offline verification of bundles: small checks, a policy per level, and a report that lists every check."""

from veriml.verify.policy import LEVELS
from veriml.verify.report import CheckResult, Report, TrustRoots
from veriml.verify.verifier import verify_bundle

__all__ = ["LEVELS", "CheckResult", "Report", "TrustRoots", "verify_bundle"]
