"""MkDocs hook: render the ``immagent`` command's help into docs/cli.md at build time, so it cannot drift.

The page holds the marker ``<!-- immagent-cli-reference -->``; every command that ``immagent.cli.COMMANDS``
names (and every subcommand of a group, such as ``db upgrade``) is replaced in with its ``--help`` text. A
command that is listed but cannot be loaded fails the build instead of leaving a gap.
"""

from __future__ import annotations

from typing import Any

import click
from mkdocs.exceptions import PluginError

MARKER = "<!-- immagent-cli-reference -->"
WIDTH = 100


def _help(command: click.Command, name: str, parent: click.Context | None) -> tuple[str, click.Context]:
    settings = {**command.context_settings, "terminal_width": WIDTH, "max_content_width": WIDTH}
    ctx = click.Context(command, info_name=name, parent=parent, **settings)
    return command.get_help(ctx), ctx


def _sections(group: click.Group, root: click.Context, level: int) -> list[str]:
    out: list[str] = []
    for name in group.list_commands(root):
        command = group.get_command(root, name)
        if command is None:
            raise PluginError(f"docs/cli.md: `{root.command_path} {name}` is listed but cannot be loaded")
        text, ctx = _help(command, name, root)
        out += [f"{'#' * level} `{ctx.command_path}`", "", "```text", text, "```", ""]
        if isinstance(command, click.Group):
            out += _sections(command, ctx, level + 1)
    return out


def reference() -> str:
    """The help of ``immagent`` and of every subcommand, as Markdown."""
    from immagent.cli import main

    text, root = _help(main, "immagent", None)
    return "\n".join(["```text", text, "```", "", *_sections(main, root, 3)])


def on_page_markdown(markdown: str, page: Any, **kwargs: Any) -> str:
    """Replace the marker on the CLI page with the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, reference())
