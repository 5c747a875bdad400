"""immagent's own loop keeps what a provider returns beside the text and tool calls (thinking blocks with
their signatures, reasoning text) in the reply's native form, and sends the thinking blocks back, in the
same tool-use turn and in later turns read from the database, through LiteLLM's real HTTP path."""

from __future__ import annotations

import json
from typing import Any

from immagent import MCPManager, NativeForm, Store
from immagent._messages import LITELLM_FORMAT
from tests.support.openai_server import Reply, ScriptedOpenAIServer

MODEL = "gpt-4o-mini"
THINKING = [{"type": "thinking", "thinking": "Paris: ask the weather tool.", "signature": "c2lnbmF0dXJl=="}]
REASONING = "Paris: ask the weather tool."


def thinking_reply(*, tool_call: tuple[str, str, str] | None, content: str | None = None) -> Reply:
    """A chat completion whose message carries reasoning_content and thinking_blocks, sent verbatim."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "reasoning_content": REASONING,
        "thinking_blocks": THINKING,
    }
    if tool_call is not None:
        call_id, name, arguments = tool_call
        message["tool_calls"] = [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
        ]
    body = {
        "id": "chatcmpl-thinking",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if tool_call else "stop"}],
        "usage": {"prompt_tokens": 30, "completion_tokens": 7, "total_tokens": 37},
    }
    return Reply(content=None, body=json.dumps(body).encode())


async def test_thinking_blocks_are_kept_and_sent_back_within_the_turn_and_after_a_reload(
    store: Store, llm: ScriptedOpenAIServer, weather_tools: MCPManager
) -> None:
    agent = await store.create_agent(name="thinker", system_prompt="Be brief.", model=MODEL)
    llm.enqueue(thinking_reply(tool_call=("call_1", "get_weather", '{"city": "Paris"}')))
    llm.reply("Take an umbrella.")
    state = await agent.advance("Weather in Paris?", mcp=weather_tools)

    # Within the turn: the tool round's request carries the thinking blocks back, not the reasoning text.
    sent = llm.requests[1]["messages"][2]
    assert sent["thinking_blocks"] == THINKING and "reasoning_content" not in sent
    assert sent["tool_calls"][0]["id"] == "call_1"

    history = await state.messages()
    expected = NativeForm(
        format=LITELLM_FORMAT, data={"thinking_blocks": THINKING, "reasoning_content": REASONING}
    )
    assert history[1].native == expected
    assert [m.native for m in (history[0], history[2], history[3])] == [None, None, None]
    assert history[1].tool_calls is not None and history[1].content is None  # the projection as before

    # A later turn, from the database: the earlier reply goes back with its thinking blocks.
    store.clear_cache()
    llm.reply("You're welcome.")
    await (await store.load_agent(state.id)).advance("Thanks!")
    again = llm.requests[-1]["messages"]
    assert again[2]["thinking_blocks"] == THINKING
    assert all("thinking_blocks" not in m for i, m in enumerate(again) if i != 2)


async def test_a_reply_without_provider_fields_has_no_native_form_and_the_same_wire_form(
    store: Store, llm: ScriptedOpenAIServer
) -> None:
    agent = await store.create_agent(name="plain", system_prompt="Be brief.", model=MODEL)
    llm.reply("Hello.")
    reply = (await (await agent.advance("Hi")).messages())[-1]
    assert reply.native is None
    assert reply.llm_form() == {"role": "assistant", "content": "Hello."}


async def test_a_final_reply_keeps_its_thinking_too(store: Store, llm: ScriptedOpenAIServer) -> None:
    agent = await store.create_agent(name="thinker", system_prompt="Be brief.", model=MODEL)
    llm.enqueue(thinking_reply(tool_call=None, content="Sunny."))
    reply = (await (await agent.advance("Weather?")).messages())[-1]
    assert reply.content == "Sunny." and reply.native is not None
    assert reply.llm_form()["thinking_blocks"] == THINKING
