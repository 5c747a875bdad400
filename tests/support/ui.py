"""What the inspector's tests share: a seeded story (turns, a tool call, a clone, two branches, a thread
moved between them), the inspector served by uvicorn on a free loopback port in a thread, and reading
a page's text the way a person sees it in the HTML (tags gone, entities decoded)."""

from __future__ import annotations

import html
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import uvicorn
from starlette.types import ASGIApp

from immagent import Message, PersistentAgent, Store, SystemPrompt, ToolCall
from immagent._ids import content_id, uuid7

__all__ = ["Story", "error_line", "seed_story", "served", "text_of"]

PROMPT = "You are a concise travel assistant."


@dataclass(frozen=True)
class Story:
    root: PersistentAgent
    asked: PersistentAgent  # after the first turn
    weather: PersistentAgent  # after the tool turn
    twin: PersistentAgent  # a clone of ``weather``
    branch_a: PersistentAgent  # grown from ``weather``
    branch_b: PersistentAgent  # grown from ``twin``
    tagged: PersistentAgent  # a metadata change of branch_a
    thread: str  # created at branch_a, moved to branch_b, and back

    def __iter__(self) -> Iterator[PersistentAgent]:
        """The states, oldest first."""
        yield from (self.root, self.asked, self.weather, self.twin, self.branch_a, self.branch_b, self.tagged)


async def seed_story(store: Store, *, key: str = "ticket/42", name: str = "travel") -> Story:
    """The demo's shape, written with ``import_states`` so every message and token count is known."""
    clock = iter(datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(seconds=i) for i in range(100))
    prompt = SystemPrompt(id=content_id(PROMPT), content=PROMPT)
    messages: list[Message] = []

    def say(parent: Message | None, role: str, content: str | None, **extra: object) -> Message:
        message = Message(
            role=role,  # type: ignore[arg-type]
            content=content,
            parent_id=parent.id if parent else None,
            depth=parent.depth + 1 if parent else 0,
            created_at=next(clock),
            **extra,  # type: ignore[arg-type]
        )
        messages.append(message)
        return message

    def state(parent: PersistentAgent | None, head: Message | None, **extra: object) -> PersistentAgent:
        new_id = uuid7()
        return PersistentAgent(
            id=new_id,
            root_id=parent.root_id if parent else new_id,
            parent_id=parent.id if parent else None,
            name=name,
            system_prompt_id=prompt.id,
            head_id=head.id if head else None,
            model="immagent/scripted",
            metadata=extra.pop("metadata", {}),  # type: ignore[arg-type]
            model_settings={"temperature": 0.2},
            created_at=next(clock),
        )

    root = state(None, None)
    m1 = say(None, "user", "Hi! I'm planning a trip to Paris next week.")
    m2 = say(m1, "assistant", "Lovely! How can I help?", input_tokens=12, output_tokens=6)
    asked = state(root, m2)
    m3 = say(m2, "user", "What's the weather in Paris right now?")
    call = ToolCall(id="call_7", name="get_weather", arguments='{"city": "Paris"}')
    m4 = say(m3, "assistant", None, tool_calls=(call,), input_tokens=30, output_tokens=9)
    m5 = say(m4, "tool", "Paris: 18°C, light rain", tool_call_id="call_7")
    m6 = say(m5, "assistant", "18°C and light rain: take an umbrella.", input_tokens=48, output_tokens=11)
    weather = state(asked, m6)
    twin = state(asked, m6)  # a clone: same parent, same head
    m7 = say(m6, "user", "Plan a rainy day for me: museums?")
    m8 = say(
        m7,
        "assistant",
        "The Louvre in the morning, the Orsay after lunch.",
        input_tokens=60,
        output_tokens=12,
    )
    branch_a = state(weather, m8)
    m9 = say(m6, "user", "Where should we eat tonight?")
    m10 = say(m9, "assistant", "A small bistro in the Marais; book ahead.", input_tokens=61, output_tokens=10)
    branch_b = state(twin, m10)
    tagged = state(branch_a, m8, metadata={"reviewed": True})
    states = [root, asked, weather, twin, branch_a, branch_b, tagged]
    stored = await store.import_states(states, messages, [prompt])
    thread = await store.create_thread(key, stored[4], metadata={"customer": 42})
    thread = await thread.move(stored[5])
    await thread.move(stored[4])
    return Story(*stored, thread=key)


BLOCKS = re.compile(
    r"</?(?:p|div|tr|td|th|li|dt|dd|h\d|br|article|header|section|summary|details|pre|table|nav|main|form|"
    r"text|title|svg|g)\b[^>]*>",
    re.I,
)


def text_of(page: str) -> str:
    """The text a page shows: markup removed (a block's edge is a space, an inline tag nothing), entities
    decoded, whitespace collapsed."""
    body = re.sub(r"<head\b.*?</head>", " ", page, flags=re.S | re.I)
    body = re.sub(r"<[^>]+>", "", BLOCKS.sub(" ", body))
    return " ".join(html.unescape(body).split())


def error_line(page: str) -> str:
    """The one line an error page explains itself with."""
    found = re.search(r'<p class="error-line">(.*?)</p>', page, re.S)
    assert found is not None, page
    return html.unescape(found.group(1))


@contextmanager
def served(app: ASGIApp, *, lifespan: str = "on") -> Iterator[str]:
    """``app`` served by uvicorn on a free 127.0.0.1 port, in a thread (its own event loop, so the
    store the app opens lives there); yields the base URL, stops the server afterwards."""
    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan=lifespan))
    runner = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="immagent-ui-test-server", daemon=True
    )
    runner.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not runner.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the inspector did not start (see the log above)")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        runner.join(30)
        sock.close()
