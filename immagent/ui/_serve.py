"""Serving the inspector from the command line: check the database, bind, say where, open a browser."""

from __future__ import annotations

import asyncio
import socket
import webbrowser
from collections.abc import Callable

import uvicorn

from immagent.ui._app import LOOPBACK_NAMES, create_app, is_loopback

__all__ = ["serve"]


async def _check(url: str | None, tenant: str | None, echo: Callable[[str], None]) -> None:
    """Fail now, in one line, on a database that cannot be opened (a missing SQLite file, a server that
    does not answer); warn, and serve anyway, on one behind its schema (the pages say so too)."""
    from immagent._errors import SchemaError
    from immagent.cli import one_line
    from immagent.cli._common import open_store

    async with open_store(url, tenant=tenant) as store:
        try:
            await store.list_agents(limit=0)  # the first read checks the schema
        except SchemaError as exc:
            echo(f"warning: {one_line(exc)}")


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (OSError, with the system's reason, when it cannot be)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family)


def serve(
    url: str | None,
    *,
    tenant: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8765,
    open_browser: bool = False,
    echo: Callable[[str], None] = print,
) -> None:
    """Serve the inspector until interrupted; print its address once it listens (``port`` 0 picks a
    free one) and, with ``open_browser``, open it in the user's browser. OSError when the address
    cannot be bound; the store's errors when the database cannot be opened."""
    try:
        asyncio.run(_serve(url, tenant, host, port, open_browser, echo))
    except KeyboardInterrupt:  # Ctrl+C: uvicorn shut down gracefully, then raised the signal again
        echo("immagent ui: stopped")


async def _serve(
    url: str | None, tenant: str | None, host: str, port: int, open_browser: bool, echo: Callable[[str], None]
) -> None:
    await _check(url, tenant, echo)
    sock = _listen(host, port)
    hosts = (*LOOPBACK_NAMES, host) if is_loopback(host) else None
    app = create_app(url, tenant=tenant, allowed_hosts=hosts)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    address = f"http://{f'[{shown}]' if ':' in shown else shown}:{sock.getsockname()[1]}/"

    async def announce() -> None:
        while not server.started:  # uvicorn offers no event to wait on; this polls for at most a moment
            if serving.done():
                return
            await asyncio.sleep(0.02)
        echo(f"immagent ui: serving {address} (read-only; Ctrl+C to stop)")
        if open_browser:
            await asyncio.to_thread(webbrowser.open, address)

    serving = asyncio.create_task(server.serve(sockets=[sock]))
    await asyncio.gather(announce(), serving)
