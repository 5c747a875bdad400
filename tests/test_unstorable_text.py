"""Text the database cannot store (NUL, lone surrogates) never reaches a driver from a turn."""

from __future__ import annotations

from typing import Any

from immagent import SimpleAgent, Store
from immagent.testing import ScriptedModel


class OddTools:
    """A tool provider whose result holds a NUL and a lone surrogate (a real MCP tool could)."""

    def get_all_tools(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": "odd", "parameters": {"type": "object"}}}]

    async def execute(self, name: str, arguments: str | dict[str, Any] | None) -> str:
        return "before\x00after \ud800 end"


async def test_an_unstorable_tool_result_is_stored_with_replacement_characters(store: Store) -> None:
    model = ScriptedModel().install()
    model.reset()
    model.reply(None, tool_calls=[("c1", "odd", "{}")]).reply("done")
    agent = await store.create_agent(name="a", system_prompt="p", model=model.model)
    new = await agent.advance("go", mcp=OddTools())
    tool = next(m for m in await new.messages() if m.role == "tool")
    assert tool.content == "before\ufffdafter \ufffd end"
    store.clear_cache()
    reloaded = await (await store.load_agent(new.id)).messages()
    assert [m.content for m in reloaded] == [m.content for m in await new.messages()]


async def test_simple_agent_cleans_tool_results_the_same_way() -> None:
    model = ScriptedModel().install()
    model.reset()
    model.reply(None, tool_calls=[("c1", "odd", "{}")]).reply("done")
    agent = SimpleAgent(name="a", system_prompt="p", model=model.model)
    new = await agent.advance("go", mcp=OddTools())
    assert new.messages()[2].content == "before\ufffdafter \ufffd end"
