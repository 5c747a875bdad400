"""The Store: the public face of immagent's persistence, one method per operation.

Each operation lives in the part of the store that owns its concern, and this class only routes to it:

- ``_database``: engine, sessions, schema check, and the unit-of-work rules (one place);
- ``_agents``: create, load and list states, and what a bound view reads;
- ``_turns``: a turn's read, model call and one-transaction write;
- ``_removal``: ``delete`` and ``gc``, the only paths that remove rows;
- ``_transfer``: sizes, export/import.

ORM rows are made and read only inside these parts; callers get Pydantic views.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Self
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from immagent._advance import TurnEvent, TurnOptions
from immagent._messages import Message
from immagent._store import _agents, _removal, _transfer, _turns
from immagent._store._cache import ViewCache
from immagent._store._database import Database
from immagent._views import PersistentAgent, SystemPrompt

__all__ = ["Store"]


class Store:
    """Persistent agents on a SQLAlchemy async engine (PostgreSQL through asyncpg, SQLite through aiosqlite).

    Create one per process with ``await Store.connect(url)`` (or ``engine=`` to share an app's engine);
    run ``await store.migrate()`` (or ``immagent db upgrade``) once per database before first use.
    """

    def __init__(self, database: Database, cache: ViewCache | None = None) -> None:
        self._db = database
        self._cache = cache if cache is not None else ViewCache()

    # ------------------------------------------------------------------ lifecycle and schema

    @classmethod
    async def connect(
        cls,
        url: str | None = None,
        *,
        engine: AsyncEngine | None = None,
        min_size: int = 2,
        max_size: int = 10,
        max_inactive_connection_lifetime: float = 300.0,
    ) -> Store:
        """Open a store. ``url`` defaults to $IMMAGENT_DATABASE_URL, else ``sqlite+aiosqlite:///immagent.db``;
        ``engine=`` shares an existing engine (never disposed by the store). Never fails on the schema."""
        database = await Database.open(
            url,
            engine=engine,
            min_size=min_size,
            max_size=max_size,
            max_inactive_connection_lifetime=max_inactive_connection_lifetime,
        )
        return cls(database)

    @property
    def engine(self) -> AsyncEngine:
        """The engine this store uses (its own, or the one it was given)."""
        return self._db.engine

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Release the pool (only when the store created the engine) and forget cached views."""
        self.clear_cache()
        await self._db.close()

    async def ping(self) -> bool:
        """True when the database answers; raises the driver's error when it does not."""
        return await self._db.ping()

    def clear_cache(self) -> None:
        """Forget cached views; the next reads go to the database."""
        self._cache.clear()

    async def migrate(self, revision: str = "head") -> None:
        """Upgrade immagent's tables to ``revision`` (default: this library's head) with Alembic.
        A database that a newer immagent already migrated is refused with SchemaError, untouched."""
        await self._db.migrate(revision)

    async def _downgrade(self, revision: str) -> None:
        """Downgrade immagent's tables (tests and ``immagent db downgrade``)."""
        await self._db.downgrade(revision)

    async def schema_revision(self) -> str | None:
        """The database's immagent revision (None for a database immagent never migrated)."""
        return await self._db.revision()

    # ------------------------------------------------------------------ agents

    async def create_agent(
        self,
        *,
        name: str,
        system_prompt: str,
        model: str,
        metadata: Mapping[str, Any] | None = None,
        model_settings: Mapping[str, Any] | None = None,
        session: AsyncSession | None = None,
    ) -> PersistentAgent:
        """A new root state with an empty history; the system prompt is stored once per distinct text."""
        return await _agents.create(
            self,
            name=name,
            system_prompt=system_prompt,
            model=model,
            metadata=metadata,
            model_settings=model_settings,
            session=session,
        )

    async def load_agent(self, agent_id: UUID | str) -> PersistentAgent:
        """The state with this id (from the cache when it is there); AgentNotFoundError when absent."""
        return await _agents.load(self, agent_id)

    async def load_agents(self, agent_ids: Iterable[UUID | str]) -> tuple[PersistentAgent, ...]:
        """Several states in one query, in the order asked; AgentNotFoundError names the first missing."""
        return await _agents.load_many(self, agent_ids)

    async def list_agents(
        self, limit: int = 100, offset: int = 0, name: str | None = None
    ) -> tuple[PersistentAgent, ...]:
        """States newest first; ``name`` filters by case-insensitive substring (``%`` and ``_`` literal)."""
        return await _agents.listing(self, limit=limit, offset=offset, name=name)

    async def count_agents(self, name: str | None = None) -> int:
        """How many states exist (matching ``name`` as ``list_agents`` does)."""
        return await _agents.count(self, name=name)

    async def find_by_name(self, name: str) -> tuple[PersistentAgent, ...]:
        """States whose name is exactly ``name`` (case-sensitive), newest first."""
        return await _agents.find_by_name(self, name)

    # ------------------------------------------------------------------ removal

    async def delete(self, agent: PersistentAgent | UUID | str) -> None:
        """Remove one state. Its descendants stay whole (their histories keep the shared messages) and
        no other row is rewritten; messages no state reaches any more are removed later by ``gc()``."""
        await _removal.delete(self, agent)

    async def gc(self) -> dict[str, int]:
        """Remove messages that no remaining state's history contains, and texts no state uses.
        Never removes anything a remaining agent can reach. Returns counts per kind."""
        return await _removal.gc(self)

    # ------------------------------------------------------------------ sizes, export and import

    async def stats(self) -> dict[str, int]:
        """How many rows immagent's tables hold: ``{"agents": n, "messages": n, "texts": n}`` (one query)."""
        return await _transfer.stats(self)

    async def import_states(
        self,
        agents: Sequence[PersistentAgent],
        messages: Sequence[Message],
        system_prompts: Sequence[SystemPrompt],
    ) -> tuple[PersistentAgent, ...]:
        """Recreate states exported from a store (``immagent export``), ids kept, in one transaction.

        ``messages`` must hold every message of the states' histories and ``system_prompts`` their prompts
        (checked before anything is written). A row whose id exists already is left as it is (stored rows
        are immutable), so importing the same states twice changes nothing. Returns the states, bound."""
        return await _transfer.import_states(self, agents, messages, system_prompts)

    # ------------------------------------------------------------------ what bound views call

    async def _history(self, agent: PersistentAgent) -> tuple[Message, ...]:
        return await _agents.history(self, agent)

    async def _lineage(self, agent: PersistentAgent) -> tuple[PersistentAgent, ...]:
        return await _agents.lineage(self, agent)

    async def _children(self, agent: PersistentAgent) -> tuple[PersistentAgent, ...]:
        return await _agents.children(self, agent)

    async def _text(self, text_id: UUID) -> str:
        return await _agents.text(self, text_id)

    async def _derive(
        self,
        agent: PersistentAgent,
        *,
        parent_id: UUID | None,
        metadata: Mapping[str, Any] | None = None,
        session: AsyncSession | None = None,
    ) -> PersistentAgent:
        return await _agents.derive(self, agent, parent_id=parent_id, metadata=metadata, session=session)

    async def _advance(
        self, agent: PersistentAgent, text: str, options: TurnOptions, session: AsyncSession | None
    ) -> PersistentAgent:
        return await _turns.advance(self, agent, text, options, session)

    def _advance_stream(
        self, agent: PersistentAgent, text: str, options: TurnOptions
    ) -> AsyncIterator[TurnEvent]:
        return _turns.advance_stream(self, agent, text, options)
