"""The one error hierarchy: each kind is something a user acts on differently.

The HTTP face maps each kind to an RFC 9457 problem type and status; the CLI maps it to an exit code.
"""

from __future__ import annotations

import reprlib


class VerimlError(Exception):
    """Base of every error veriml raises on purpose. The message names the thing and what was expected."""

    kind = "error"
    http_status = 500
    exit_code = 2


class InvalidInput(VerimlError):
    """The caller sent something malformed: a bad file, tensor, reference, document or option."""

    kind = "invalid-input"
    http_status = 400


class RunTooLong(InvalidInput):
    """A model run went past its time limit on these inputs (a model's work may depend on its inputs' values)."""

    kind = "run-too-long"
    http_status = 422


class NotFound(VerimlError):
    """A model, version, blob or key that was asked for does not exist here."""

    kind = "not-found"
    http_status = 404


class Conflict(VerimlError):
    """The request contradicts stored state: a wrong version number, a name already taken."""

    kind = "conflict"
    http_status = 409


class PermissionDenied(VerimlError):
    """The caller's key may not do this: publishing under a name another key owns, a key file others read."""

    kind = "permission-denied"
    http_status = 403


class VerificationFailed(VerimlError):
    """A cryptographic or consistency check failed: a bad signature, a digest mismatch, a corrupt blob."""

    kind = "verification-failed"
    http_status = 422
    exit_code = 1


class Unavailable(VerimlError):
    """Something needed is not reachable now; the same call may succeed later."""

    kind = "unavailable"
    http_status = 503


def shown(value: object, limit: int = 80) -> str:
    """A value as an error message shows it: its repr, bounded in length and in depth, so that a hostile value
    (a list nested a thousand deep, a megabyte string) cannot make the message itself fail or balloon."""
    text = _SHOWN.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _bounded_repr() -> reprlib.Repr:
    bounded = reprlib.Repr()
    bounded.maxlevel, bounded.maxstring, bounded.maxother = 3, 80, 80
    bounded.maxlist = bounded.maxtuple = bounded.maxdict = bounded.maxset = 6
    bounded.maxlong = 40
    return bounded


_SHOWN = _bounded_repr()
