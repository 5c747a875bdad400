"""A FastAPI app that serves immagent threads: create, advance, move, read the log, and read the states.

    immagent db upgrade                                   # once per database, before the app starts
    uvicorn --app-dir examples fastapi_app:app            # SQLite ./immagent.db by default
    IMMAGENT_DATABASE_URL=postgresql://user@host/db uvicorn --app-dir examples fastapi_app:app

The OpenAPI document is the contract, and it is exact (``tests/test_fastapi_contract.py`` runs
schemathesis with every check against it):

- responses are immagent's own frozen views (``Thread``, ``ThreadMove``, ``PersistentAgent``,
  ``Message``) with ``response_model=`` set to them; no DTO layer to keep in sync;
- request models state the library's own constraints, taken from ``immagent.limits``: what the schema
  admits the library accepts, and what the library refuses the schema refuses;
- every error, the library's and FastAPI's own request validation alike, is one RFC 9457 problem body
  (``application/problem+json``), and every status a route can give is declared on it.

The tenant comes from the optional ``X-Tenant`` header (the default tenant without it); another tenant's
keys and ids are simply not found.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, TypeAlias
from uuid import UUID

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute, Match
from starlette.types import Scope
from typing_extensions import TypeAliasType

from immagent import (
    AssetNotFoundError,
    ConflictError,
    DatabaseUnavailableError,
    ImmAgentError,
    LLMError,
    Message,
    PersistentAgent,
    SchemaError,
    Store,
    Thread,
    ThreadMove,
    ValidationError,
    limits,
)

# ---------------------------------------------------------------------------------- request models
# Each constraint is the library's own (immagent.limits); where the HTTP path needs more (a key in a
# URL path has no "/" and is not a dot segment), the API admits less than the library, never more.

Text = Annotated[str, Field(min_length=1, pattern=limits.TEXT_PATTERN)]
#: A thread key as it can travel in a URL path: the library's key without "/" and without the dot
#: segments "." and ".." (clients normalise those away).
_EDGE = f"[^/\\u0000{limits.WHITESPACE}]"  # a key's first or last character
_EDGE_NOT_DOT = f"[^./\\u0000{limits.WHITESPACE}]"
KEY_PATTERN = f"^({_EDGE_NOT_DOT}|{_EDGE_NOT_DOT}{_EDGE}|\\.{_EDGE_NOT_DOT}|{_EDGE}[^/\\u0000]+{_EDGE})$"
Key = Annotated[str, Field(min_length=1, max_length=limits.THREAD_KEY_MAX_LENGTH, pattern=KEY_PATTERN)]
JsonText = Annotated[str, Field(pattern=limits.NO_NUL_PATTERN)]
#: Any JSON value without NUL characters in its strings and keys (what the library stores as metadata).
JsonValue = TypeAliasType(
    "JsonValue",
    "bool | int | float | JsonText | list[JsonValue] | dict[JsonText, JsonValue] | None",
)
Metadata: TypeAlias = dict[JsonText, JsonValue]


class AgentSpec(BaseModel):
    """The root state a new thread starts from."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=limits.NAME_MAX_LENGTH, pattern=limits.TEXT_PATTERN)]
    system_prompt: Text
    model: Annotated[
        str, Field(min_length=1, max_length=limits.MODEL_MAX_LENGTH, pattern=limits.TEXT_PATTERN)
    ] = Field(default_factory=lambda: os.environ.get("IMMAGENT_MODEL", "gpt-4o-mini"))
    metadata: Metadata = Field(default_factory=dict)


class CreateThread(BaseModel):
    """The body of ``POST /threads``: a key and the agent its first state is."""

    model_config = ConfigDict(extra="forbid")

    key: Key
    agent: AgentSpec
    metadata: Metadata = Field(default_factory=dict)


class AdvanceThread(BaseModel):
    """The body of ``POST /threads/{key}/messages``: the text, and the position the writer read."""

    model_config = ConfigDict(extra="forbid")

    text: Text
    position: int = Field(ge=0, description="The thread's position the writer saw; 409 if it has moved.")


class MoveThread(BaseModel):
    """The body of ``POST /threads/{key}/move``: the state to point at (of this tenant), and the position."""

    model_config = ConfigDict(extra="forbid")

    agent_id: UUID
    position: int = Field(ge=0, description="The thread's position the writer saw; 409 if it has moved.")


# ---------------------------------------------------------------------------------- response models


class ThreadPage(BaseModel):
    """One keyset page of threads, newest first; pass ``next_cursor`` as ``after`` for the next one."""

    items: list[Thread]
    next_cursor: str | None = Field(description="null on the last page")


class Turn(BaseModel):
    """A thread advanced: where it points now, and the messages the turn added (the user's first)."""

    thread: Thread
    messages: list[Message]


class Problem(BaseModel):
    """An RFC 9457 problem: every error this API answers, of the library or of request validation."""

    type: str = Field(description="A URI naming the kind of problem (urn:immagent:error:<Error>).")
    title: str = Field(description="The kind of problem, the same for every occurrence.")
    status: int = Field(ge=400, le=599)
    detail: str = Field(description="What went wrong with this request, and the fix when known.")
    instance: str = Field(description="The request's path.")
    field: str | None = Field(
        default=None, description="The request field at fault (422): a body, path, query or header field."
    )
    errors: list[FieldError] | None = Field(default=None, description="Every field at fault (422).")
    current: Thread | None = Field(
        default=None, description="409: the thread as it is now (absent when it was deleted meanwhile)."
    )


class FieldError(BaseModel):
    """One field of a request that the API refused."""

    field: str
    detail: str


Problem.model_rebuild()

#: The largest page this API serves: its own choice, well under the library's limits.PAGE_MAX_LIMIT.
PAGE_LIMIT = 1000

#: How each library error reaches the client: (the most specific class first) status, title.
STATUS: tuple[tuple[type[ImmAgentError], int, str], ...] = (
    (AssetNotFoundError, 404, "Not found"),
    (ConflictError, 409, "Conflict"),
    (ValidationError, 422, "Invalid request"),
    (LLMError, 502, "The model call failed"),
    (SchemaError, 503, "Database schema not ready"),
    (DatabaseUnavailableError, 503, "Database unavailable"),
)
PROBLEM = "application/problem+json"


def problem(status: int, title: str, detail: str, request: Request, kind: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 response; members without a value are left out (``field`` only on a 422, ...)."""
    body = Problem(
        type=f"urn:immagent:error:{kind}",
        title=title,
        status=status,
        detail=detail,
        instance=request.url.path,
        **extra,
    )
    members = {name: value for name, value in body.model_dump(mode="json").items() if value is not None}
    return JSONResponse(members, status_code=status, media_type=PROBLEM)


def declared(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status it can give, with the problem body."""
    described = {
        400: "The body is not JSON text (or not UTF-8)",
        404: "No such thread or state in this tenant",
        409: "The thread moved since the position given, or the key is taken; `current` says where it is",
        422: "The request is invalid (a field breaks a constraint); `field` names it",
        502: "The model call failed",
        503: "The database is unavailable, or not migrated (`detail` names the fix)",
    }
    return {status: {"model": Problem, "description": described[status]} for status in (*statuses, 422, 503)}


def links(thread: str) -> dict[str, Any]:
    """OpenAPI links from a response holding a thread at ``thread`` (a JSON pointer) to the routes that
    read or move it, in the same tenant: clients and schemathesis's stateful phase follow them."""
    tenant = {"header.X-Tenant": f"$response.body#{thread}/tenant"}
    key = {"path.key": f"$response.body#{thread}/key", **tenant}
    agent = {"path.agent_id": f"$response.body#{thread}/agent_id", **tenant}
    position = f"$response.body#{thread}/position"
    return {
        "GetThread": {"operationId": "get_thread", "parameters": key},
        "GetThreadLog": {"operationId": "get_thread_log", "parameters": key},
        "AdvanceThread": {
            "operationId": "advance_thread",
            "parameters": key,
            "requestBody": {"text": "hello", "position": position},
        },
        "MoveThread": {
            "operationId": "move_thread",
            "parameters": key,
            "requestBody": {"agent_id": f"$response.body#{thread}/agent_id", "position": position},
        },
        "GetHead": {"operationId": "get_agent", "parameters": agent},
        "GetHeadMessages": {"operationId": "get_agent_messages", "parameters": agent},
        "GetHeadLineage": {"operationId": "get_agent_lineage", "parameters": agent},
    }


# ---------------------------------------------------------------------------------- the app


def get_store(
    request: Request,
    x_tenant: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=limits.TENANT_MAX_LENGTH,
            pattern=limits.IDENTIFIER_PATTERN,
            description="The tenant (optional; the default tenant without it).",
        ),
    ] = None,
) -> Store:
    """The store opened by the app's lifespan, scoped to the request's tenant."""
    store: Store = request.app.state.store
    return store if x_tenant is None else store.tenant(x_tenant)


StoreDep = Annotated[Store, Depends(get_store)]
KeyPath = Annotated[str, Path(min_length=1, max_length=limits.THREAD_KEY_MAX_LENGTH, pattern=KEY_PATTERN)]


def _exact(openapi: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document saying exactly what the app does, where FastAPI's own would not: every error
    response is ``application/problem+json`` (FastAPI lists the model under ``application/json``), and
    a dict's key constraint is ``propertyNames`` (pydantic writes ``patternProperties``, which leaves
    any other key allowed)."""

    def document() -> dict[str, Any]:
        if app_schema := getattr(document, "cached", None):
            return app_schema  # type: ignore[no-any-return]
        schema = openapi()
        for path in schema.get("paths", {}).values():
            for operation in path.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if int(status) >= 400 and "application/json" in content:
                        content[PROBLEM] = content.pop("application/json")
        _key_patterns(schema)
        document.cached = schema  # type: ignore[attr-defined]
        return schema

    return document


def _key_patterns(node: Any) -> None:
    """Rewrite ``patternProperties: {P: S}`` as ``propertyNames: {pattern: P}, additionalProperties: S``."""
    if isinstance(node, dict):
        keyed = node.get("patternProperties")
        if isinstance(keyed, dict) and len(keyed) == 1 and "additionalProperties" not in node:
            ((pattern, values),) = keyed.items()
            del node["patternProperties"]
            node["propertyNames"] = {"pattern": pattern}
            node["additionalProperties"] = values
        for value in node.values():
            _key_patterns(value)
    elif isinstance(node, list):
        for value in node:
            _key_patterns(value)


def create_app(url: str | None = None, *, engine: AsyncEngine | None = None) -> FastAPI:
    """The app on ``url`` (default $IMMAGENT_DATABASE_URL, else ./immagent.db), or on an app's engine."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await Store.connect(engine=engine) if engine is not None else await Store.connect(url)
        app.state.store = store
        app.state.sessions = async_sessionmaker(store.engine, expire_on_commit=False)
        try:
            yield
        finally:
            await store.close()  # disposes only an engine the store created

    # operationIds are the functions' names: the links below refer to them.
    app = FastAPI(title="immagent threads", lifespan=lifespan, generate_unique_id_function=lambda r: r.name)
    app.openapi = _exact(app.openapi)  # type: ignore[method-assign]

    @app.exception_handler(ImmAgentError)
    async def library_error(request: Request, exc: ImmAgentError) -> JSONResponse:
        for kind, status, title in STATUS:
            if isinstance(exc, kind):
                extra: dict[str, Any] = {}
                if isinstance(exc, ValidationError):
                    extra["field"] = exc.field
                if isinstance(exc, ConflictError):
                    extra["current"] = exc.current
                return problem(status, title, str(exc), request, type(exc).__name__, **extra)
        raise exc  # a bug in this app (ImmutabilityError, AgentNotRegisteredError): a plain 500

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            FieldError(field=".".join(str(part) for part in error["loc"]), detail=error["msg"])
            for error in exc.errors()
        ]
        detail = "; ".join(f"{e.field}: {e.detail}" for e in errors)
        first = errors[0].field if errors else None
        return problem(
            422, "Invalid request", detail, request, "RequestValidationError", field=first, errors=errors
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        """Routing's own answers (no such route, method not allowed) in the same problem format."""
        response = problem(exc.status_code, str(exc.detail), str(exc.detail), request, "HTTPError")
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only those of the route matched first
            methods = {m for r in app.routes if _path_matches(r, request.scope) for m in _methods(r)}
            response.headers["Allow"] = ", ".join(sorted(methods))
        return response

    @app.post(
        "/threads",
        response_model=Thread,
        status_code=201,
        responses={201: {"links": links("")}, **declared(400, 404, 409)},
    )
    async def create_thread(body: CreateThread, request: Request, store: StoreDep) -> Thread:
        """A new thread at a new root state, in one transaction: a taken key (409) writes nothing."""
        spec = body.agent
        async with request.app.state.sessions() as session, session.begin():
            agent = await store.create_agent(
                name=spec.name,
                system_prompt=spec.system_prompt,
                model=spec.model,
                metadata=spec.metadata,
                session=session,
            )
            return await store.create_thread(body.key, agent, metadata=body.metadata, session=session)

    @app.get("/threads", response_model=ThreadPage, responses=declared())
    async def list_threads(
        store: StoreDep,
        limit: Annotated[int, Query(ge=0, le=PAGE_LIMIT)] = 100,
        after: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=limits.CURSOR_MAX_LENGTH,
                description="The next_cursor of the previous page (422 for anything else).",
            ),
        ] = None,
    ) -> ThreadPage:
        """Threads newest first (by creation), one keyset page."""
        page = await store.list_threads(limit, after=after)
        return ThreadPage(items=list(page), next_cursor=page.next_cursor)

    @app.get("/threads/{key}", response_model=Thread, responses=declared(404))
    async def get_thread(key: KeyPath, store: StoreDep) -> Thread:
        return await store.load_thread(key)

    @app.post(
        "/threads/{key}/messages",
        response_model=Turn,
        status_code=201,
        responses={201: {"links": links("/thread")}, **declared(400, 404, 409, 502)},
    )
    async def advance_thread(key: KeyPath, body: AdvanceThread, store: StoreDep) -> Turn:
        """A turn on the thread's head, and the move to the new state, in one transaction. A writer that
        read an older position gets 409 (before the model is called when it is already stale)."""
        thread = await at_position(store, key, body.position)
        before = len(await (await thread.head()).messages())
        thread = await thread.advance(body.text)
        history = await (await thread.head()).messages()
        return Turn(thread=thread, messages=list(history[before:]))

    @app.post(
        "/threads/{key}/move",
        response_model=Thread,
        responses={200: {"links": links("")}, **declared(400, 404, 409)},
    )
    async def move_thread(key: KeyPath, body: MoveThread, store: StoreDep) -> Thread:
        """Point the thread at any state of its tenant (undo, switch branch, restore)."""
        thread = await at_position(store, key, body.position)
        return await thread.move(body.agent_id)

    @app.get("/threads/{key}/log", response_model=list[ThreadMove], responses=declared(404))
    async def get_thread_log(key: KeyPath, store: StoreDep) -> tuple[ThreadMove, ...]:
        """Every move of the thread, oldest first."""
        return await (await store.load_thread(key)).log()

    @app.get("/agents/{agent_id}", response_model=PersistentAgent, responses=declared(404))
    async def get_agent(agent_id: UUID, store: StoreDep) -> PersistentAgent:
        return await store.load_agent(agent_id)

    @app.get("/agents/{agent_id}/messages", response_model=list[Message], responses=declared(404))
    async def get_agent_messages(agent_id: UUID, store: StoreDep) -> tuple[Message, ...]:
        return await (await store.load_agent(agent_id)).messages()

    @app.get("/agents/{agent_id}/lineage", response_model=list[PersistentAgent], responses=declared(404))
    async def get_agent_lineage(agent_id: UUID, store: StoreDep) -> tuple[PersistentAgent, ...]:
        """The states that led to this one, root first."""
        return await (await store.load_agent(agent_id)).lineage()

    return app


def _path_matches(route: BaseRoute, scope: Scope) -> bool:
    match, _ = route.matches(scope)
    return match is not Match.NONE


def _methods(route: BaseRoute) -> set[str]:
    return set(getattr(route, "methods", None) or ())


async def at_position(store: Store, key: str, position: int) -> Thread:
    """The thread ``key`` if it is still at ``position``; ConflictError (409) saying where it is if not."""
    thread = await store.load_thread(key)
    if thread.position != position:
        raise ConflictError(
            key,
            f"thread {key!r} is at position {thread.position}, not {position}: "
            "reload it and retry from there",
            expected=position,
            current=thread,
        )
    return thread


app = create_app()
