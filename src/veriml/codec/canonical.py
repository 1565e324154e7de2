"""RFC 8785 canonical JSON, strict JSON parsing and strict base64.

Every signed document is hashed and signed over its RFC 8785 bytes. Parsing is strict on purpose: a byte
changed anywhere in a stored document must change its meaning or fail to parse, never be silently ignored.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import Any

import msgspec
import rfc8785

from veriml.errors import InvalidInput, shown

_MAX_SAFE_INTEGER = 2**53 - 1


class Fragment:
    """JSON already in canonical form, written as is: lets a document reuse the canonical bytes of a part
    that does not change between documents (a receipt's runtime fingerprint)."""

    __slots__ = ("text",)

    def __init__(self, canonical: bytes) -> None:
        self.text = canonical.decode("utf-8")


class _NeedsReference(Exception):
    """A value the fast path does not handle (floats, large integers): the rfc8785 package writes it."""


def utf16_order(key: str) -> bytes:
    """The sort key of JCS's member order: UTF-16 code units."""
    return key.encode("utf-16-be", "surrogatepass")


def _write(value: Any, out: list[str]) -> None:
    kind = type(value)
    if kind is str:
        # JSON's string escaping and JCS's are the same: \" \\ \b \f \n \r \t, other controls as \u00xx.
        out.append(encode_basestring(value))
    elif kind is dict:
        keys = list(value)
        if not all(type(key) is str and key.isascii() for key in keys):
            if not all(type(key) is str for key in keys):
                raise _NeedsReference
            keys.sort(key=utf16_order)  # JCS sorts by UTF-16 code units
        else:
            keys.sort()
        out.append("{")
        for position, key in enumerate(keys):
            if position:
                out.append(",")
            out.append(encode_basestring(key))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    elif kind is list or kind is tuple:
        out.append("[")
        for position, item in enumerate(value):
            if position:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif kind is int and -_MAX_SAFE_INTEGER <= value <= _MAX_SAFE_INTEGER:
        out.append(str(value))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif value is None:
        out.append("null")
    elif kind is Fragment:
        out.append(value.text)
    else:
        raise _NeedsReference


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 (JCS) bytes of a JSON value.

    Documents without floats (receipts, tensor maps: the per-inference path) take a fast writer whose output
    is property-tested equal to the rfc8785 package's; anything else is written by that package.
    """
    try:
        out: list[str] = []
        _write(value, out)
        return "".join(out).encode("utf-8")
    except _NeedsReference:
        pass
    except (UnicodeEncodeError, RecursionError) as exc:
        raise InvalidInput(f"value cannot be written as canonical JSON: {exc}") from exc
    try:
        return rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise InvalidInput(f"value cannot be written as canonical JSON: {exc}") from exc


def _raw_fragment(value: Any) -> Any:
    if type(value) is Fragment:
        return msgspec.Raw(value.text.encode("utf-8"))
    raise _NeedsReference


_MSGSPEC = msgspec.json.Encoder(order="sorted", enc_hook=_raw_fragment)
_STRINGS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# UTF-8 lead bytes of U+E000..U+10FFFF: only among these does code point order (msgspec's key order) differ from
# UTF-16 code unit order (JCS's).
_BELOW_E000_LEAD = bytes(range(0xEE))  # deleted, what is left is such a lead byte
_LONG_INTEGER = re.compile(rb"\d{16}")  # may exceed 2**53 - 1


def canonical_json_of_plain(value: Any) -> bytes:
    """canonical_json for values this code builds on the per-inference path (receipts' companions, tensor maps,
    bundles): dicts, lists, strings, safe integers, booleans, None and Fragments, never bytes, sets or other
    objects (msgspec would write those; canonical_json refuses them). Written by msgspec in one C pass; when the
    output holds anything where msgspec and RFC 8785 may differ (characters from U+E000 up, where JCS's UTF-16
    key order is not code point order; a float; a long integer) it is written again by canonical_json.
    Property-tested equal to the rfc8785 package."""
    try:
        out = _MSGSPEC.encode(value)
    except (_NeedsReference, msgspec.EncodeError, UnicodeEncodeError, TypeError, OverflowError, RecursionError):
        return canonical_json(value)
    if not out.isascii() and out.translate(None, _BELOW_E000_LEAD):
        return canonical_json(value)
    # What lies outside strings: between every other quote, unless a string holds an escaped quote.
    outside = _STRINGS.sub(b"", out) if b'\\"' in out else b"".join(out.split(b'"')[0::2])
    if b"." in outside or b"E" in outside or b"e" in outside.replace(b"true", b"").replace(b"false", b""):
        return canonical_json(value)  # a float
    if len(outside) - len(outside.translate(None, b"0123456789")) >= 16 and _LONG_INTEGER.search(outside):
        return canonical_json(value)
    return out


def json_string(text: str) -> bytes:
    """The canonical JSON of one string (JSON's escaping is JCS's; see `_write`)."""
    try:
        return encode_basestring(text).encode("utf-8")
    except (UnicodeEncodeError, TypeError):  # a lone surrogate, or not text: the general writer says what is wrong
        return canonical_json(text)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise InvalidInput(f"JSON object has the key {key!r} twice")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise InvalidInput(f"JSON holds {name}, which is not valid JSON")


# Deeper than any veriml document. The check comes before json.loads because the C decoder recurses on the C stack:
# with a process's recursion limit raised (py-evm and py_ecc raise it to 100,000 when web3 is imported), a deeply
# nested document overflows the stack and kills the process instead of raising RecursionError.
MAX_JSON_DEPTH = 256
_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def check_json_depth(text: str, what: str = "document", limit: int = MAX_JSON_DEPTH) -> None:
    if text.count("[") + text.count("{") <= limit:  # the common case: no document can nest that deep
        return
    depth = 0
    for match in _STRUCTURE.finditer(text):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > limit:
                raise InvalidInput(f"{what}: JSON nested more than {limit} deep")
        elif token in ("]", "}"):
            depth -= 1


def parse_json(data: bytes | str, what: str = "document") -> Any:
    """Parse JSON, refusing duplicate keys, NaN/Infinity, invalid UTF-8 and nesting past MAX_JSON_DEPTH."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        check_json_depth(text, what)
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"{what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{what}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from exc
    except RecursionError as exc:
        raise InvalidInput(f"{what}: JSON nested too deeply") from exc
    except ValueError as exc:  # an integer of more digits than Python converts (sys.get_int_max_str_digits)
        raise InvalidInput(f"{what}: not valid JSON ({exc})") from exc


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, what: str) -> bytes:
    """Standard padded base64, in its one canonical spelling (no stray bits in the last character)."""
    if not isinstance(text, str):
        raise InvalidInput(f"{what}: expected a base64 string, got {type(text).__name__}")
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise InvalidInput(f"{what}: not valid base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise InvalidInput(f"{what}: base64 is not in canonical form")
    return data


def expect_document(obj: object, fields: set[str], what: str, format_version: int) -> dict[str, Any]:
    """A JSON object with exactly `fields`, one of them `format_version` equal to the version this code reads."""
    if not isinstance(obj, dict) or set(obj) != fields:
        got = sorted(obj) if isinstance(obj, dict) else type(obj).__name__
        raise InvalidInput(f"{what}: expected exactly the fields {sorted(fields)}, got {got}")
    if obj["format_version"] != format_version:
        raise InvalidInput(f"{what}: format_version {shown(obj['format_version'])} is not supported")
    return obj
