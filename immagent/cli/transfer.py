"""``immagent export ID`` and ``immagent import FILE``: move a state, its lineage and its messages
between databases as one JSON document, ids kept.

The document is made of the library's own views (PersistentAgent, Message, SystemPrompt), so it is valid
against their JSON schema; ``immagent export --schema`` prints the document's whole schema.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import IO, TYPE_CHECKING, Literal
from uuid import UUID

import click
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from immagent._messages import Message, utcnow
from immagent._views import PersistentAgent, SystemPrompt
from immagent.cli import url_option
from immagent.cli._common import CLIError, open_store

if TYPE_CHECKING:
    from immagent._store import Store


class StateExport(BaseModel):
    """One exported state: its lineage (root first, the state last), its system prompt(s) and every
    message of its history (oldest first), which also hold every ancestor's history."""

    model_config = ConfigDict(frozen=True)

    format: Literal["immagent.export"] = "immagent.export"
    version: Literal[1, 2] = Field(
        default=1,
        description="2 when a message carries `native` (an immagent that knows no native forms refuses "
        "the document instead of dropping them), else 1.",
    )
    state_id: UUID = Field(description="The exported state (the last of `agents`).")
    exported_at: datetime
    agents: tuple[PersistentAgent, ...] = Field(description="The lineage, root first.")
    system_prompts: tuple[SystemPrompt, ...]
    messages: tuple[Message, ...] = Field(description="The state's history, oldest first.")


def export_schema() -> dict[str, object]:
    """The JSON schema an exported document satisfies (Pydantic's serialization-mode schema)."""
    return StateExport.model_json_schema(mode="serialization")


async def export_document(store: Store, agent_id: UUID | str) -> StateExport:
    """The export document of state ``agent_id`` (``immagent export`` and the inspector's download)."""
    agent = await store.load_agent(agent_id)
    lineage = await agent.lineage()
    messages = await agent.messages()
    prompts = {a.system_prompt_id: await a.system_prompt() for a in lineage}
    return StateExport(
        version=2 if any(m.native is not None for m in messages) else 1,
        state_id=agent.id,
        exported_at=utcnow(),
        agents=lineage,
        system_prompts=tuple(SystemPrompt(id=i, content=c) for i, c in prompts.items()),
        messages=messages,
    )


def export_text(document: StateExport) -> str:
    """The document as the file holds it: indented JSON and a final newline."""
    return document.model_dump_json(indent=2) + "\n"


@click.command()
@click.argument("agent_id", metavar="ID", required=False)
@click.option(
    "-o", "--output", type=click.File("w", encoding="utf-8"), default="-", help="File (default: stdout)."
)
@click.option("--schema", "schema_only", is_flag=True, help="Print the document's JSON schema instead.")
@url_option
def export(agent_id: str | None, output: IO[str], schema_only: bool, url: str | None) -> None:
    """Write state ID, its lineage and its messages as one JSON document (for ``immagent import``)."""
    if schema_only:
        output.write(json.dumps(export_schema(), indent=2) + "\n")
        return
    if agent_id is None:
        raise click.UsageError("missing argument ID (or pass --schema)")

    async def run() -> StateExport:
        async with open_store(url) as store:
            return await export_document(store, agent_id)

    output.write(export_text(asyncio.run(run())))


@click.command(name="import")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@url_option
def import_(file: IO[str], url: str | None) -> None:
    """Recreate the states of an exported FILE ('-' for stdin) in this database, ids kept.

    A fresh database is migrated first; states already there are left as they are, so importing twice
    changes nothing."""
    text = file.read()
    try:
        document = StateExport.model_validate_json(text)
    except PydanticValidationError as exc:
        where = getattr(file, "name", "input")
        first = exc.errors()[0]
        place = ".".join(str(p) for p in first["loc"]) or "document"
        raise CLIError(f"{where} is not an immagent export: {place}: {first['msg']}") from None

    async def run() -> tuple[dict[str, int], dict[str, int]]:
        async with open_store(url, create=True) as store:
            before = await store.stats()
            await store.import_states(document.agents, document.messages, document.system_prompts)
            return before, await store.stats()

    before, after = asyncio.run(run())
    new_states, new_messages = (after[k] - before[k] for k in ("agents", "messages"))
    click.echo(
        f"imported {len(document.agents)} states and {len(document.messages)} messages, ids kept "
        f"({new_states} states and {new_messages} messages were new here)"
    )
    click.echo(f"continue with: immagent chat --agent {document.state_id}")
