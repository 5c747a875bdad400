"""The inspector's pages: each reads what it shows through the store's public API, then renders one
template. Ids and keys come from the request as they are; the store's own checks turn a bad one into a
ValidationError (400) and an unknown one into a not-found error (404), shown as error pages.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from uuid import UUID

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from immagent._errors import AgentNotFoundError, ValidationError
from immagent.cli._common import one_line_text, together
from immagent.cli.transfer import export_document, export_text
from immagent.ui import _family, _graph, _reading

if TYPE_CHECKING:
    from jinja2 import Environment

    from immagent._store import Store
    from immagent._views import PersistentAgent

PAGE_SIZE = 50


def href(path: str, **params: object) -> str:
    """A link inside the inspector: ``path`` and its query (None values left out), percent-encoded."""
    query = {k: str(v) for k, v in params.items() if v is not None and v != ""}
    return f"{path}?{urlencode(query)}" if query else path


TEMPLATE_GLOBALS: dict[str, Any] = {
    "href": href,
    "short_id": _family.short_id,
    "stamp": _reading.stamp,
    "pretty_json": _reading.pretty_json,
    "one_line_text": one_line_text,
}


def nav(request: Request | None) -> dict[str, str]:
    """What the header shows: the tenant and the database (password hidden), when the store is open."""
    store = getattr(request.state, "store", None) if request is not None else None
    if store is None:
        return {"tenant": "", "database": ""}
    url = store.engine.url.render_as_string(hide_password=True)
    return {"tenant": store.tenant_name, "database": url}


def _store(request: Request) -> Store:
    store: Store = request.state.store
    return store


def _render(request: Request, template: str, **context: Any) -> HTMLResponse:
    env: Environment = request.state.templates
    html = env.get_template(template).render(ctx=nav(request), **context)
    return HTMLResponse(html)


def _param(request: Request, name: str) -> str | None:
    value = request.query_params.get(name)
    return value if value else None


# ---------------------------------------------------------------------------------------------- listings


async def agents(request: Request) -> Response:
    """States, newest first: a name search, keyset pages, the threads at each state."""
    store = _store(request)
    query, after = _param(request, "q"), _param(request, "after")
    page, total = await together(
        store.list_agents(limit=PAGE_SIZE, name=query, after=after), store.count_agents(name=query)
    )
    exact = None
    if query is not None:
        try:  # a pasted id finds its state too
            exact = await store.load_agent(UUID(query.strip()))
        except (ValueError, AgentNotFoundError):
            exact = None
    threads = await store.threads_pointing_at(page)
    return _render(
        request, "agents.html", page=page, total=total, query=query, after=after, threads=threads, exact=exact
    )


async def threads(request: Request) -> Response:
    """Threads, newest first: a key search and keyset pages."""
    store = _store(request)
    query, after = _param(request, "q"), _param(request, "after")
    page = await store.list_threads(limit=PAGE_SIZE, key=query, after=after)
    return _render(request, "threads.html", page=page, query=query, after=after)


async def thread(request: Request) -> Response:
    """One thread and every move of its log, each position linked to its state."""
    store = _store(request)
    key = request.query_params.get("key")
    if key is None:
        raise ValidationError("key", "missing: open a thread from the list of threads")
    found = await store.load_thread(key)
    moves = await found.log()
    return _render(request, "thread.html", thread=found, moves=moves)


# ---------------------------------------------------------------------------------------------- one state


async def state(request: Request) -> Response:
    """One state: fields, system prompt, the conversation (this state's own turn marked), and links to
    its parent, children, siblings and the threads at it."""
    store = _store(request)
    agent = await store.load_agent(request.path_params["agent_id"])
    messages, prompt, children, threads = await together(
        agent.messages(), agent.system_prompt(), agent.children(), store.threads_pointing_at([agent])
    )
    parent, siblings = await _parent_and_siblings(store, agent)
    new_from = 0
    if parent is not None and parent.head_id is not None:
        new_from = next((i + 1 for i, m in enumerate(messages) if m.id == parent.head_id), 0)
    return _render(
        request,
        "state.html",
        agent=agent,
        messages=messages,
        new_from=new_from if parent is not None else len(messages),
        prompt=prompt,
        parent=parent,
        children=children,
        siblings=siblings,
        threads=threads.get(agent.id, ()),
        tool_names=_reading.tool_names(messages),
        usage=_reading.tokens(messages),
        metadata=json.dumps(agent.metadata, ensure_ascii=False, indent=2, sort_keys=True),
        settings=json.dumps(agent.model_settings, ensure_ascii=False, indent=2, sort_keys=True),
    )


async def _parent_and_siblings(
    store: Store, agent: PersistentAgent
) -> tuple[PersistentAgent | None, tuple[PersistentAgent, ...]]:
    """The parent (None for a root, or when it was deleted) and the other states made from it."""
    if agent.parent_id is None:
        return None, ()
    try:
        parent = await store.load_agent(agent.parent_id)
    except AgentNotFoundError:
        return None, ()
    return parent, tuple(s for s in await parent.children() if s.id != agent.id)


async def tree(request: Request) -> Response:
    """The family tree of a state's conversation, drawn as SVG: every state of the tree (long linear
    runs collapsed unless ``full``), branches in lanes, clones and thread heads marked."""
    store = _store(request)
    agent = await store.load_agent(request.path_params["agent_id"])
    states, messages = await together(store.tree(agent), store.tree_messages(agent))
    threads = await store.threads_pointing_at(states)
    full = request.query_params.get("full") == "1"
    fam = _family.family(states, messages, threads)
    drawing = _graph.draw(fam, current=agent.id, full=full)
    tips = [m for m in fam.members.values() if m.kind != "gap" and (not m.children or m.threads)]
    return _render(request, "tree.html", agent=agent, drawing=drawing, full=full, tips=tips)


async def compare(request: Request) -> Response:
    """Two states side by side: their common history once, then each one's tail from the fork."""
    store = _store(request)
    a_id, b_id = _param(request, "a"), _param(request, "b")
    if a_id is None or b_id is None:
        return _render(request, "compare.html", a=None, b=None, fork=None, a_id=a_id or "", b_id=b_id or "")
    a, b = await store.load_agents([a_id, b_id])
    a_messages, b_messages, a_lineage, b_lineage = await together(
        a.messages(), b.messages(), a.lineage(), b.lineage()
    )
    split = _reading.fork(a_messages, b_messages, a_lineage, b_lineage)
    return _render(
        request,
        "compare.html",
        a=a,
        b=b,
        fork=split,
        a_id=str(a.id),
        b_id=str(b.id),
        tool_names=_reading.tool_names((*a_messages, *b_messages)),
        usage=(_reading.tokens(split.a_tail), _reading.tokens(split.b_tail)),
    )


async def export(request: Request) -> Response:
    """The state as the JSON document ``immagent export`` writes (a download)."""
    document = await export_document(_store(request), request.path_params["agent_id"])
    return Response(
        export_text(document),
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="immagent-{document.state_id}.json"'},
    )
