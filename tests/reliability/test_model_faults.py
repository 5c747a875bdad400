"""Model faults over real HTTP: errors, rate limits, timeouts, malformed bodies and dropped connections.

Every fault either ends in an LLMError with the database byte-for-byte unchanged, or (when a retry
absorbs it) in one complete new state. Either way the old agent still works and the next call succeeds.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from immagent import LLMError, PersistentAgent, Store
from tests.reliability._support import Tally, kept_rows
from tests.support.db import snapshot
from tests.support.openai_server import ScriptedOpenAIServer

MODEL = "gpt-4o-mini"


def _body(payload: object) -> bytes:
    return json.dumps(payload).encode()


def _completion(message: object) -> bytes:
    return _body({"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": message}]})


#: fault name -> how to script it. Each one must end in LLMError with max_retries=0, timeout=0.5.
FAILURES: dict[str, Callable[[ScriptedOpenAIServer], None]] = {
    "http_500": lambda llm: llm.fail(500),
    "http_502_html": lambda llm: llm.malformed(b"<html><body>502 Bad Gateway</body></html>", status=502),
    "http_503": lambda llm: llm.fail(503, "overloaded"),
    "http_429": lambda llm: llm.fail(429, "slow down", retry_after=0),
    "http_400": lambda llm: llm.fail(400, "bad request"),
    "http_401": lambda llm: llm.fail(401, "invalid api key"),
    "http_404": lambda llm: llm.fail(404, "no such model"),
    "timeout": lambda llm: llm.hang(1.5),
    "body_not_json": lambda llm: llm.malformed(b"{not json"),
    "body_empty": lambda llm: llm.malformed(b""),
    "body_truncated": lambda llm: llm.malformed(_completion({"role": "assistant", "content": "hi"})[:40]),
    "body_json_array": lambda llm: llm.malformed(b"[1, 2, 3]"),
    "no_choices": lambda llm: llm.malformed(_body({"id": "x", "object": "chat.completion", "choices": []})),
    "choices_missing": lambda llm: llm.malformed(_body({"id": "x", "object": "chat.completion"})),
    "choices_not_a_list": lambda llm: llm.malformed(_body({"id": "x", "choices": "nope"})),
    "message_null": lambda llm: llm.malformed(_completion(None)),
}


async def _agent(store: Store, **settings: Any) -> PersistentAgent:
    root = await store.create_agent(name="faults", system_prompt="p", model=MODEL, model_settings=settings)
    return await root.advance("warm up")


async def _recovers(one: PersistentAgent, llm: ScriptedOpenAIServer) -> None:
    """The old agent's history is intact and its next turn succeeds."""
    history = await one.messages()
    llm.reply("recovered")
    again = await one.advance("again")
    assert again.parent_id == one.id
    assert await again.messages() == (*history, *(await again.messages())[-2:])
    assert await again.last_response() == "recovered"


@pytest.mark.parametrize("fault", sorted(FAILURES))
async def test_a_model_fault_raises_llm_error_and_writes_nothing(
    store: Store, llm: ScriptedOpenAIServer, tally: Tally, fault: str
) -> None:
    one = await _agent(store)
    before = await snapshot(store.engine)
    FAILURES[fault](llm)
    with pytest.raises(LLMError) as caught:
        await one.advance("this turn fails", max_retries=0, timeout=0.5)
    assert caught.value.model == MODEL
    assert await snapshot(store.engine) == before
    await _recovers(one, llm)
    tally.add("model faults injected")
    tally.add("model faults survived")


@pytest.mark.parametrize(
    "fault", [("http_500", 500), ("http_429", 429), ("http_503", 503)], ids=lambda f: f[0]
)
async def test_a_retried_model_fault_commits_exactly_one_turn(
    store: Store, llm: ScriptedOpenAIServer, tally: Tally, fault: tuple[str, int]
) -> None:
    one = await _agent(store)
    before = await snapshot(store.engine)
    llm.fail(fault[1], retry_after=0)
    llm.fail(fault[1], retry_after=0)
    llm.reply("third time lucky")
    new = await one.advance("retry me", max_retries=2)
    assert len(llm.requests) == 1 + 3  # the warm-up, then three attempts
    after = await snapshot(store.engine)
    assert kept_rows(after, {row[0] for row in before}) == before  # nothing rewritten
    assert len(after) == len(before) + 3  # 2 messages + 1 agent, once
    assert await new.last_response() == "third time lucky"
    await _recovers(one, llm)
    tally.add("model faults injected", 2)
    tally.add("model faults survived", 2)


# -- dropped connections: a raw TCP server that misbehaves on cue ------------------------------------------


class RawServer:
    """A bare HTTP/1.1 endpoint for ``/v1/chat/completions``: each connection takes the next mode from
    ``modes`` ("close": read the request and hang up; "half": send half a response and hang up;
    "ok": answer a valid completion). When ``modes`` is empty it answers "ok"."""

    def __init__(self) -> None:
        self.modes: list[str] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.base_url = ""

    async def start(self) -> RawServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}/v1"
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                await reader.readexactly(length)
                self.connections += 1
                mode = self.modes.pop(0) if self.modes else "ok"
                body = _body(
                    {
                        "id": "raw-1",
                        "object": "chat.completion",
                        "created": 0,
                        "model": MODEL,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": "from the raw server"},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                )
                head_out = (
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode()
                if mode == "close":
                    return
                if mode == "half":
                    writer.write(head_out + body[: len(body) // 2])
                    await writer.drain()
                    return
                writer.write(head_out + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            writer.close()


@pytest.fixture
async def raw_server() -> AsyncIterator[RawServer]:
    server = await RawServer().start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.mark.parametrize("mode", ["close", "half"])
async def test_a_dropped_connection_raises_llm_error_writes_nothing_and_a_retry_recovers(
    store: Store, raw_server: RawServer, tally: Tally, mode: str
) -> None:
    one = await _agent_on(store, raw_server)
    before = await snapshot(store.engine)

    raw_server.modes = [mode, mode]
    with pytest.raises(LLMError):
        await one.advance("dropped", max_retries=1, timeout=2.0)
    assert raw_server.connections >= 2  # the first attempt and its retry both hit the drop
    assert await snapshot(store.engine) == before

    raw_server.modes = [mode]
    new = await one.advance("dropped once, then fine", max_retries=1, timeout=2.0)
    assert await new.last_response() == "from the raw server"
    assert new.parent_id == one.id
    assert len(await snapshot(store.engine)) == len(before) + 3
    tally.add("model faults injected", 3)
    tally.add("model faults survived", 3)


async def _agent_on(store: Store, raw: RawServer) -> PersistentAgent:
    root = await store.create_agent(
        name="raw", system_prompt="p", model=MODEL, model_settings={"api_base": raw.base_url}
    )
    return await root.advance("warm up", max_retries=0)
