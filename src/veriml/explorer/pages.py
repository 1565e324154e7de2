"""The explorer's routes: server-rendered HTML at `/` beside the API, with Jinja2 autoescaping everything shown
(names, descriptions and chat text are attacker-controlled) and a Content-Security-Policy that lets no script
run on any page but the in-browser verifier's own, pinned by hash."""

from __future__ import annotations

import base64
import hashlib
import re
from functools import cache
from importlib import resources
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from veriml.errors import VerimlError
from veriml.explorer import data

# No script at all, styles only from this node's stylesheet, no frames, no forms posting elsewhere.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
VERIFIER_FILE = "verifier.html"


def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("veriml.explorer", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["short"] = lambda text, n=16: text if len(str(text)) <= n else f"{str(text)[:n]}…"
    environment.filters["bytes"] = _human_bytes
    return environment


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


@cache
def verifier_bytes() -> bytes:
    return resources.files("veriml.explorer").joinpath(VERIFIER_FILE).read_bytes()


@cache
def verifier_csp() -> str:
    """The verifier's inline script and style, allowed by their hashes only; it loads and sends nothing."""
    text = verifier_bytes().decode("utf-8")
    hashes = {}
    for tag in ("script", "style"):
        found = re.findall(rf"<{tag}>(.*?)</{tag}>", text, re.S)
        hashes[tag] = " ".join(
            f"'sha256-{base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()}'" for body in found
        )
    return (
        f"default-src 'none'; script-src {hashes['script']}; style-src {hashes['style']}; connect-src 'none'; "
        "img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def create_router(node: Any) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    environment = _environment()
    chain = data.ChainView()
    origin = node.key.public.name

    def render(template: str, code: int = 200, /, **context: Any) -> HTMLResponse:
        body = environment.get_template(template).render(origin=origin, **context)
        return HTMLResponse(body, status_code=code, headers={"Content-Security-Policy": PAGE_CSP, **SECURITY_HEADERS})

    def page(template: str, build: Any, /, **extra: Any) -> HTMLResponse:
        """Render `name` with what `build()` gathers; a bad request or a missing thing is a page that says so."""
        try:
            context = build()
        except VerimlError as exc:
            return render("error.html", exc.http_status, status=exc.http_status, message=str(exc), **extra)
        return render(template, 200, **context, **extra)

    @router.get("/", response_class=HTMLResponse)
    def network_page() -> HTMLResponse:
        return page("network.html", lambda: data.network(node, chain), tab="network")

    @router.get("/models", response_class=HTMLResponse)
    def models_page(request: Request) -> HTMLResponse:
        query, number = request.query_params.get("q", ""), _int(request, "page", 0)
        return page("models.html", lambda: data.models(node, query, number), tab="models")

    @router.get("/models/{owner}/{name}", response_class=HTMLResponse)
    def model_page(owner: str, name: str) -> HTMLResponse:
        return page("model.html", lambda: data.model(node, f"{owner}/{name}"), tab="models")

    @router.get("/models/{owner}/{name}/v/{number}", response_class=HTMLResponse)
    def version_page(owner: str, name: str, number: int, request: Request) -> HTMLResponse:
        base = str(request.base_url).rstrip("/")
        return page("version.html", lambda: data.version(node, f"{owner}/{name}", number), tab="models",
                    node_url=base)  # fmt: skip

    @router.get("/log", response_class=HTMLResponse)
    def log_page(request: Request) -> HTMLResponse:
        number = _int(request, "page", 0)

        def build() -> dict[str, Any]:
            return {**data.entries(node, number), "checkpoints": data.recent_checkpoints(node)}

        return page("log.html", build, tab="log")

    @router.get("/log/inclusion", response_class=HTMLResponse)
    def inclusion_page(request: Request) -> HTMLResponse:
        index, size = _int(request, "index", 0), _int(request, "size", None)
        return page("inclusion.html", lambda: data.inclusion(node, index, size), tab="log")

    @router.get("/log/consistency", response_class=HTMLResponse)
    def consistency_page(request: Request) -> HTMLResponse:
        old, new = _int(request, "old", 1), _int(request, "new", 1)
        return page("consistency.html", lambda: data.consistency(node, old, new), tab="log")

    @router.get("/evidence", response_class=HTMLResponse)
    def evidence_page() -> HTMLResponse:
        return page("evidence.html", lambda: data.evidence(node), tab="evidence")

    @router.get("/results/{index}", response_class=HTMLResponse)
    def result_page(index: int) -> HTMLResponse:
        return page("result.html", lambda: data.result(node, index, chain), tab="log")

    @router.get("/explorer.css")
    def stylesheet() -> Response:
        css = resources.files("veriml.explorer").joinpath("explorer.css").read_bytes()
        headers = {"Cache-Control": "public, max-age=300", **SECURITY_HEADERS}
        return Response(css, media_type="text/css", headers=headers)

    @router.get("/verify", response_class=HTMLResponse)
    def verifier() -> Response:
        return Response(verifier_bytes(), media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": verifier_csp(), **SECURITY_HEADERS})  # fmt: skip

    return router


def _int(request: Request, name: str, default: int | None) -> Any:
    """A query parameter as a non-negative integer; anything else is the default (a page, never a traceback)."""
    text = request.query_params.get(name, "")
    if text.isdigit() and len(text) <= 18:
        return int(text)
    return default
