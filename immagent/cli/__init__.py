"""The ``immagent`` command: ``db`` (migrations), ``demo``, ``chat``, ``agents``/``show``/``tree``,
``threads``, ``export``/``import``, ``gc``, ``erase``, ``ui`` (the web inspector, an optional extra).

Exit codes: 0 ok, 1 failure, 2 usage. Errors print one line; ``--debug`` shows the traceback. Each
command lives in its own module and is imported only when it runs (or when help lists it).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Any

import click

#: command name -> "module:attribute"; modules are imported on first use.
COMMANDS: dict[str, str] = {
    "db": "immagent.cli.db:db",
    "demo": "immagent.cli.demo:demo",
    "chat": "immagent.cli.chat:chat",
    "agents": "immagent.cli.browse:agents",
    "show": "immagent.cli.browse:show",
    "tree": "immagent.cli.browse:tree",
    "export": "immagent.cli.transfer:export",
    "import": "immagent.cli.transfer:import_",
    "gc": "immagent.cli.browse:gc",
    "threads": "immagent.cli.threads:threads",
    "erase": "immagent.cli.threads:erase",
    "ui": "immagent.cli.ui:ui",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when needed, so ``immagent`` starts fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                return None  # not built yet
            raise
        command: click.Command = getattr(module, attribute)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            # The reader went away (``immagent agents | head``): stop quietly, as Unix tools do.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(141) from None
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            raise SystemExit(130) from None
        except Exception as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {one_line(exc)}", err=True)
            raise SystemExit(1) from None


def one_line(exc: BaseException) -> str:
    """An exception as one readable line (the type for library errors is implied by the text)."""
    from immagent._errors import ImmAgentError

    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, ImmAgentError) else f"{type(exc).__name__}: {text}"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logs.")
@click.version_option(package_name="immagent")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """immagent: LLM agents whose every state is an immutable, persisted value."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, stream=sys.stderr)


url_option = click.option(
    "--url",
    envvar="IMMAGENT_DATABASE_URL",
    default=None,
    help="Database URL (default: $IMMAGENT_DATABASE_URL, else sqlite+aiosqlite:///immagent.db).",
)

tenant_option = click.option(
    "--tenant",
    envvar="IMMAGENT_TENANT",
    default=None,
    help="Work inside this tenant (default: $IMMAGENT_TENANT, else the default tenant).",
)
