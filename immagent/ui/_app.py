"""The inspector's ASGI app: routes, the store's lifespan, error pages and the security headers.

The store is opened once, when the app starts (the lifespan), the way the CLI opens it, and scoped to
the tenant; every page is a function of its request and that store's public API. The app only reads:
its routes answer GET (and HEAD), nothing else.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from immagent._errors import (
    AssetNotFoundError,
    DatabaseUnavailableError,
    ImmAgentError,
    SchemaError,
    ValidationError,
)
from immagent.cli import one_line
from immagent.ui import _pages

__all__ = ["CSP", "LOOPBACK_NAMES", "create_app", "is_loopback"]

HERE = Path(__file__).parent
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")

#: No script at all, styles and images only from the app itself, no framing, no foreign form targets.
CSP = (
    "default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)

log = logging.getLogger("immagent.ui")


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def templates() -> Environment:
    """The page templates, autoescaped (every value is escaped unless marked safe, and nothing is)."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(_pages.TEMPLATE_GLOBALS)
    return env


def create_app(
    url: str | None = None, *, tenant: str | None = None, allowed_hosts: Iterable[str] | None = LOOPBACK_NAMES
) -> ASGIApp:
    """The inspector for the database at ``url`` (the CLI's default when None), inside ``tenant``.

    ``allowed_hosts`` are the names the Host header may carry (a page asked for under another name, as a
    DNS-rebinding attack would, is refused); None accepts any, for a server bound to the network.
    """
    from immagent.cli._common import open_store

    env = templates()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        async with open_store(url, tenant=tenant) as store:
            yield {"store": store, "templates": env}

    async def known_error(request: Request, exc: Exception) -> Response:
        return error_page(env, request, status_of(exc), one_line(exc))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        text = "no such page" if exc.status_code == 404 else exc.detail
        return error_page(env, request, exc.status_code, f"{text}: {request.method} {request.url.path}")

    async def unexpected(request: Request, exc: Exception) -> Response:
        return error_page(env, request, 500, one_line(exc))

    routes = [
        Route("/", _pages.agents, methods=["GET"]),
        Route("/agents", _pages.agents, methods=["GET"]),
        Route("/threads", _pages.threads, methods=["GET"]),
        Route("/thread", _pages.thread, methods=["GET"]),
        Route("/compare", _pages.compare, methods=["GET"]),
        Route("/state/{agent_id}", _pages.state, methods=["GET"]),
        Route("/state/{agent_id}/tree", _pages.tree, methods=["GET"]),
        Route("/state/{agent_id}/export.json", _pages.export, methods=["GET"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: http_error, ImmAgentError: known_error, Exception: unexpected},
    )
    hosts = None if allowed_hosts is None else frozenset(h.lower() for h in allowed_hosts)
    return Guard(app, env, hosts)


def status_of(exc: BaseException) -> int:
    """The HTTP status of a library error: 404 not found, 400 a bad id or cursor, 503 a database the
    inspector cannot use now (unreachable, or behind its schema), 500 anything else."""
    if isinstance(exc, AssetNotFoundError):
        return 404
    if isinstance(exc, ValidationError):
        return 400
    if isinstance(exc, SchemaError | DatabaseUnavailableError):
        return 503
    return 500


TITLES = {400: "Bad request", 404: "Not found", 405: "Not allowed", 503: "Database unavailable"}


def error_page(env: Environment, request: Request | None, status: int, line: str) -> HTMLResponse:
    """The error page: a title and the CLI's one line (``error: ...``), never a traceback."""
    title = TITLES.get(status, "Error")
    html = env.get_template("error.html").render(title=title, status=status, line=line, ctx=_pages.nav(None))
    return HTMLResponse(html, status_code=status)


class Guard:
    """The outermost layer: refuses unexpected Host headers, adds the security headers to every response
    (error pages included), and turns an exception that escaped everything else into an error page."""

    def __init__(self, app: Starlette, env: Environment, hosts: frozenset[str] | None) -> None:
        self.app = app
        self.env = env
        self.hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def secured(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [(k, v) for k, v in message.get("headers", []) if k not in _REPLACED]
                message = {**message, "headers": [*headers, *SECURITY_HEADERS, *_cache(scope)]}
            await send(message)

        host = _host(scope)
        if self.hosts is not None and host not in self.hosts:
            line = f"this inspector answers only to {', '.join(sorted(self.hosts))}, not {host!r}"
            await error_page(self.env, None, 400, line)(scope, receive, secured)
            return
        try:
            await self.app(scope, receive, secured)
        except Exception as exc:  # already answered by the app's handler, or not at all
            log.error("%s %s: %s", scope.get("method"), scope.get("path"), one_line(exc), exc_info=exc)
            if not started:
                await error_page(self.env, None, 500, one_line(exc))(scope, receive, secured)


_REPLACED = {name for name, _ in SECURITY_HEADERS} | {b"cache-control"}


def _cache(scope: Scope) -> list[tuple[bytes, bytes]]:
    """Pages say what the database holds now: not cached. The stylesheet and icon may be."""
    static = str(scope.get("path", "")).startswith("/static/")
    return [(b"cache-control", b"max-age=3600" if static else b"no-store")]


def _host(scope: Scope) -> str:
    """The Host header's name, without the port (``[::1]:8765`` -> ``::1``)."""
    raw = next((v for k, v in scope.get("headers", []) if k == b"host"), b"").decode("latin-1").lower()
    if raw.startswith("["):
        return raw[1 : raw.find("]")] if "]" in raw else raw
    return raw.rsplit(":", 1)[0] if raw.count(":") == 1 else raw
