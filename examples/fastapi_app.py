"""A FastAPI app that serves immagent agents: create, advance, messages and lineage.

    immagent db upgrade                                   # once per database, before the app starts
    uvicorn --app-dir examples fastapi_app:app            # SQLite ./immagent.db by default
    IMMAGENT_DATABASE_URL=postgresql://user@host/db uvicorn --app-dir examples fastapi_app:app

The routes return immagent's own frozen Pydantic views (``PersistentAgent``, ``Message``) with
``response_model=`` set to them: FastAPI validates and serialises them, and the OpenAPI schema documents
them, with no DTO layer to keep in sync. Library errors map to HTTP statuses in one place.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from uuid import UUID

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncEngine

from immagent import (
    AgentNotFoundError,
    DatabaseUnavailableError,
    ImmAgentError,
    LLMError,
    Message,
    PersistentAgent,
    SchemaError,
    Store,
    ValidationError,
)


class CreateAgent(BaseModel):
    """The body of ``POST /agents``."""

    name: str
    system_prompt: str
    model: str = Field(default_factory=lambda: os.environ.get("IMMAGENT_MODEL", "gpt-4o-mini"))
    metadata: dict[str, Any] = Field(default_factory=dict)


class Advance(BaseModel):
    """The body of ``POST /agents/{id}/advance``."""

    text: str


#: How each library error reaches the client (the most specific class first).
STATUS: tuple[tuple[type[ImmAgentError], int], ...] = (
    (AgentNotFoundError, 404),
    (ValidationError, 422),
    (LLMError, 502),
    (SchemaError, 503),
    (DatabaseUnavailableError, 503),
    (ImmAgentError, 500),
)


def get_store(request: Request) -> Store:
    """The store opened by the app's lifespan."""
    store: Store = request.app.state.store
    return store


StoreDep = Annotated[Store, Depends(get_store)]


def create_app(url: str | None = None, *, engine: AsyncEngine | None = None) -> FastAPI:
    """The app on ``url`` (default $IMMAGENT_DATABASE_URL, else ./immagent.db), or on an app's engine."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await Store.connect(engine=engine) if engine is not None else await Store.connect(url)
        app.state.store = store
        try:
            yield
        finally:
            await store.close()  # disposes only an engine the store created

    app = FastAPI(title="immagent agents", lifespan=lifespan)

    @app.exception_handler(ImmAgentError)
    async def library_error(request: Request, exc: ImmAgentError) -> JSONResponse:
        status = next(code for kind, code in STATUS if isinstance(exc, kind))
        return JSONResponse({"detail": str(exc), "error": type(exc).__name__}, status_code=status)

    @app.post("/agents", response_model=PersistentAgent, status_code=201)
    async def create_agent(body: CreateAgent, store: StoreDep) -> PersistentAgent:
        return await store.create_agent(
            name=body.name, system_prompt=body.system_prompt, model=body.model, metadata=body.metadata
        )

    @app.get("/agents/{agent_id}", response_model=PersistentAgent)
    async def get_agent(agent_id: UUID, store: StoreDep) -> PersistentAgent:
        return await store.load_agent(agent_id)

    @app.post("/agents/{agent_id}/advance", response_model=PersistentAgent, status_code=201)
    async def advance(agent_id: UUID, body: Advance, store: StoreDep) -> PersistentAgent:
        """A new state (a new id) holding the reply; the one addressed stays as it was."""
        agent = await store.load_agent(agent_id)
        return await agent.advance(body.text)

    @app.get("/agents/{agent_id}/messages", response_model=list[Message])
    async def messages(agent_id: UUID, store: StoreDep) -> tuple[Message, ...]:
        return await (await store.load_agent(agent_id)).messages()

    @app.get("/agents/{agent_id}/lineage", response_model=list[PersistentAgent])
    async def lineage(agent_id: UUID, store: StoreDep) -> tuple[PersistentAgent, ...]:
        """The states that led to this one, root first."""
        return await (await store.load_agent(agent_id)).lineage()

    return app


app = create_app()
