"""RFC 9457 problem details: every error the node returns is `application/problem+json` with a stable type."""

from __future__ import annotations

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from veriml.errors import VerimlError

TYPE_BASE = "https://veriml.dev/problems/"
MEDIA_TYPE = "application/problem+json"
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 422: "Unprocessable Content",
           429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}  # fmt: skip


def problem(status: int, kind: str, detail: str, request: Request | None = None, **extra: object) -> JSONResponse:
    body = {"type": TYPE_BASE + kind, "title": _TITLES.get(status, "Error"), "status": status, "detail": detail}
    if request is not None:
        body["instance"] = request.url.path
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            body["request_id"] = request_id
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE)


async def veriml_error(request: Request, exc: VerimlError) -> JSONResponse:
    return problem(exc.http_status, exc.kind, str(exc), request)


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {}
    where = ".".join(str(part) for part in first.get("loc", ()))
    return problem(400, "invalid-input", f"{where}: {first.get('msg', 'invalid request')}", request)


async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
    kind = {401: "unauthorized", 404: "not-found", 405: "method-not-allowed", 413: "too-large"}.get(
        exc.status_code, "http-error"
    )
    return problem(exc.status_code, kind, str(exc.detail), request)


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    return problem(500, "internal", f"internal error ({type(exc).__name__}); see the node log", request)
