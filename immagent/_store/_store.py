"""The Store: the public face of immagent's persistence, one method per operation.

Each operation lives in the part of the store that owns its concern, and this class only routes to it:

- ``_database``: engine, sessions, schema check, and the unit-of-work rules (one place);
- ``_agents``: create, load and list states, and what a bound view reads;
- ``_turns``: a turn's read, model call and one-transaction write;
- ``_threads``: threads, their log and their moves;
- ``_tree``: a whole conversation tree (its states, its messages) in one query each;
- ``_removal``: ``delete``, ``gc`` and erasure, the only paths that remove rows (with ``delete_thread``);
- ``_transfer``: sizes, export/import;
- ``_paging``: keyset cursors.

ORM rows are made and read only inside these parts; callers get Pydantic views.

Tenants: ``store.tenant("acme")`` is a store over the same engine and cache whose every read is filtered
by, and every write stamped with, that tenant. The store ``connect()`` returns is the ``"default"``
tenant's for reads and writes, and the database's owner for maintenance (``gc``, ``stats``,
``erase_tenant`` of any tenant); a scoped store's maintenance stays inside its tenant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Self
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from immagent import _validation as check
from immagent._advance import TurnEvent, TurnOptions
from immagent._constants import DEFAULT_TENANT
from immagent._engine import DEFAULT_COMMAND_TIMEOUT_S
from immagent._messages import Message
from immagent._store import _agents, _edits, _removal, _threads, _transfer, _tree, _turns
from immagent._store._cache import ViewCache
from immagent._store._database import Database
from immagent._store._paging import Page
from immagent._views import PersistentAgent, SystemPrompt, Thread, ThreadMove

__all__ = ["Store"]


class Store:
    """Persistent agents on a SQLAlchemy async engine: PostgreSQL through asyncpg, SQLite through aiosqlite,
    MariaDB (or MySQL) through asyncmy.

    Create one per process with ``await Store.connect(url)`` (or ``engine=`` to share an app's engine);
    run ``await store.migrate()`` (or ``immagent db upgrade``) once per database before first use.
    """

    def __init__(
        self,
        database: Database,
        cache: ViewCache | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
        scoped: bool = False,
    ) -> None:
        self._db = database
        self._cache = cache if cache is not None else ViewCache()
        self._tenant = tenant
        self._scoped = scoped

    def tenant(self, name: str) -> Store:
        """A store scoped to tenant ``name`` on the same engine: every create stamps it, every read and
        listing is filtered by it, and another tenant's ids and keys are simply not found."""
        return Store(self._db, self._cache, tenant=check.tenant(name), scoped=True)

    @property
    def tenant_name(self) -> str:
        """The tenant this store reads and writes (``"default"`` unless made by ``tenant()``)."""
        return self._tenant

    @property
    def scoped(self) -> bool:
        """True for a store made by ``tenant()``: its maintenance (gc, stats, erasure) stays in its tenant."""
        return self._scoped

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
        command_timeout: float | None = DEFAULT_COMMAND_TIMEOUT_S,
    ) -> Store:
        """Open a store. ``url`` defaults to $IMMAGENT_DATABASE_URL, else ``sqlite+aiosqlite:///immagent.db``;
        ``engine=`` shares an existing engine (never disposed by the store). Never fails on the schema.

        ``command_timeout`` (seconds, None for no bound) caps each round trip to a database server:
        opening a connection, a statement, the commit. Past it the call raises DatabaseUnavailableError,
        so a network path that drops packets silently cannot hang a turn. A server that cannot be reached
        at all is DatabaseUnavailableError here too."""
        database = await Database.open(
            url,
            engine=engine,
            min_size=min_size,
            max_size=max_size,
            max_inactive_connection_lifetime=max_inactive_connection_lifetime,
            command_timeout=command_timeout,
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
        """Release the pool (only when the store created the engine) and forget cached views. A scoped
        store leaves both to the store it came from."""
        if self._scoped:
            return
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

    async def distribute(self) -> tuple[str, ...]:
        """On a Citus coordinator: make immagent's tables distributed (agents and messages by
        ``root_id``, threads by ``tenant``, colocated) and texts a reference table. Idempotent: returns
        what it did, nothing when all was done already. ValidationError without the citus extension;
        SchemaError unless the schema is at this library's head (``migrate()`` first)."""
        return await self._db.distribute()

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
        self, limit: int = 100, offset: int = 0, name: str | None = None, *, after: str | None = None
    ) -> Page[PersistentAgent]:
        """States newest first, one page (a tuple with ``next_cursor``; pass it as ``after=`` for the next
        page, which costs what the first did). ``name`` filters by case-insensitive substring (``%`` and
        ``_`` literal). ``offset=`` still works but counts past every skipped row: the slow path."""
        return await _agents.listing(self, limit=limit, offset=offset, name=name, after=after)

    async def count_agents(self, name: str | None = None) -> int:
        """How many states exist (matching ``name`` as ``list_agents`` does)."""
        return await _agents.count(self, name=name)

    async def find_by_name(self, name: str) -> tuple[PersistentAgent, ...]:
        """States whose name is exactly ``name`` (case-sensitive), newest first."""
        return await _agents.find_by_name(self, name)

    async def tree(self, state: PersistentAgent | UUID | str) -> tuple[PersistentAgent, ...]:
        """Every state of the conversation tree ``state`` belongs to (its ``root_id``: the root and all
        grown from it), oldest first, in one query: what a drawing of the whole family needs, where
        ``children()`` would cost a query per state. ``state`` is a view or the id of any of them."""
        return await _tree.states(self, state)

    async def tree_messages(self, state: PersistentAgent | UUID | str) -> tuple[Message, ...]:
        """Every message of the conversation tree ``state`` belongs to (each stored once, whichever
        states share it), by depth, in one query; a state's history is the path from its ``head_id``
        up the ``parent_id`` links."""
        return await _tree.messages(self, state)

    # ------------------------------------------------------------------ threads

    async def create_thread(
        self,
        key: str,
        agent: PersistentAgent | UUID | str,
        *,
        metadata: Mapping[str, Any] | None = None,
        session: AsyncSession | None = None,
    ) -> Thread:
        """A new thread ``key`` pointing at ``agent`` (a state of this tenant), at position 0 of its log.
        ThreadExistsError when this tenant already has the key."""
        return await _threads.create(self, key, agent, metadata=metadata, session=session)

    async def load_thread(self, key: str) -> Thread:
        """The thread ``key`` as it is now (its newest move); ThreadNotFoundError when absent."""
        return await _threads.load(self, key)

    async def list_threads(
        self, limit: int = 100, *, after: str | None = None, key: str | None = None
    ) -> Page[Thread]:
        """Threads newest first (by creation), one keyset page; ``key`` filters by case-insensitive
        substring (``%`` and ``_`` literal)."""
        return await _threads.listing(self, limit=limit, after=after, key=key)

    async def threads_pointing_at(
        self, agents: Iterable[PersistentAgent | UUID | str]
    ) -> dict[UUID, tuple[Thread, ...]]:
        """For each of ``agents`` that some thread's head is, those threads (one query)."""
        return await _threads.pointing_at(
            self, (a.id if isinstance(a, PersistentAgent) else a for a in agents)
        )

    async def delete_thread(self, key: str) -> int:
        """Remove the thread ``key`` and its whole log (the states it pointed at stay); returns how many
        log entries went. ThreadNotFoundError when absent."""
        return await _threads.delete_thread(self, key)

    # ------------------------------------------------------------------ removal

    async def delete(self, agent: PersistentAgent | UUID | str) -> None:
        """Remove one state. Its descendants stay whole (their histories keep the shared messages) and
        no other row is rewritten; messages no state reaches any more are removed later by ``gc()``."""
        await _removal.delete(self, agent)

    async def gc(self) -> dict[str, int]:
        """Remove messages that no remaining state's history contains (of this tenant only, on a scoped
        store), and texts no state uses. Never removes anything a remaining state, or a thread, reaches.
        Returns counts per kind."""
        return await _removal.gc(self)

    async def erase_tenant(self, tenant: str) -> dict[str, int]:
        """Physically delete every state, message, thread and log entry of ``tenant``, and the system
        prompts no remaining state uses, in one transaction; counts per kind (zeros for an unknown
        tenant). A scoped store may erase only its own tenant."""
        return await _removal.erase_tenant(self, tenant)

    async def erase_tree(self, root: PersistentAgent | UUID | str) -> dict[str, int]:
        """Physically delete one conversation tree of this tenant (every state and message whose
        ``root_id`` is ``root``, or ``root``'s own root_id for a state), every thread that ever pointed
        into it, and the prompts no remaining state uses, in one transaction; counts per kind."""
        return await _removal.erase_tree(self, root)

    # ------------------------------------------------------------------ sizes, export and import

    async def stats(self) -> dict[str, int]:
        """How many rows immagent's tables hold, per kind (agents, messages, threads, thread_moves, texts),
        in one query: the whole database's, or a scoped store's tenant's."""
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

    async def _recent(self, agent: PersistentAgent, last: int) -> tuple[Message, ...]:
        return await _agents.recent(self, agent, last)

    async def _extend(
        self, agent: PersistentAgent, messages: Sequence[Message], session: AsyncSession | None
    ) -> PersistentAgent:
        return await _edits.extend(self, agent, messages, session)

    async def _rewind(
        self, agent: PersistentAgent, count: int, session: AsyncSession | None
    ) -> PersistentAgent:
        return await _edits.rewind(self, agent, count, session)

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

    async def _threads_head(self, thread: Thread) -> PersistentAgent:
        return await _threads.head(self, thread)

    async def _threads_log(self, thread: Thread) -> tuple[ThreadMove, ...]:
        return await _threads.log(self, thread)

    async def _threads_move(
        self, thread: Thread, agent: PersistentAgent | UUID | str, session: AsyncSession | None
    ) -> Thread:
        return await _threads.move(self, thread, agent, session)

    async def _threads_extend(
        self, thread: Thread, messages: Sequence[Message], session: AsyncSession | None
    ) -> Thread:
        return await _threads.extend(self, thread, messages, session)

    async def _threads_rewind(self, thread: Thread, count: int, session: AsyncSession | None) -> Thread:
        return await _threads.rewind(self, thread, count, session)

    async def _threads_advance(
        self, thread: Thread, text: str, options: TurnOptions, session: AsyncSession | None
    ) -> Thread:
        return await _threads.advance(self, thread, text, options, session)

    def _threads_advance_stream(
        self, thread: Thread, text: str, options: TurnOptions
    ) -> AsyncIterator[TurnEvent]:
        return _threads.advance_stream(self, thread, text, options)
