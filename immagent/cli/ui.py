"""``immagent ui``: serve the read-only web inspector (the optional ``ui`` extra)."""

from __future__ import annotations

import os

import click

from immagent.cli import tenant_option, url_option
from immagent.cli._common import CLIError

UI_PACKAGES = ("starlette", "jinja2", "uvicorn", "markupsafe")


@click.command()
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback only by default)."
)
@click.option(
    "--port", default=8765, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one)."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the inspector in a web browser.")
@tenant_option
@url_option
def ui(host: str, port: int, open_browser: bool, tenant: str | None, url: str | None) -> None:
    """Serve a read-only web inspector of the database: states and threads with search, one state's
    conversation, the family tree drawn as a graph, two states compared, a thread's log, exports."""
    try:
        from immagent.ui import is_loopback, serve
    except ImportError as exc:
        missing = (exc.name or "").split(".")[0]
        if missing not in UI_PACKAGES:
            raise
        raise CLIError(
            f"the inspector needs the ui extra ({missing} is not installed): pip install 'immagent[ui]'"
        ) from None
    if not is_loopback(host):
        scope = f"tenant {tenant!r}" if tenant is not None else "this database"
        click.echo(
            f"warning: --host {host} is not a loopback address: every state, message and thread of "
            f"{scope} becomes readable by anyone on the network who can reach port {port} "
            "(the inspector has no login)",
            err=True,
        )
    try:
        serve(url, tenant=tenant, host=host, port=port, open_browser=open_browser, echo=click.echo)
    except OSError as exc:  # the address (the database's own errors are ImmAgentErrors)
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise CLIError(f"cannot listen on {host}:{port}: {reason}") from None
