"""Tools over MCP: the agent calls a weather server; calls and results join the history.

python examples/tools.py    # offline: scripted model + the bundled weather server
"""

from __future__ import annotations

import asyncio
import os
import sys

from immagent import MCPManager, SimpleAgent


def choose_model() -> str:
    """$IMMAGENT_MODEL if set, else an offline model scripted for this example."""
    if model := os.environ.get("IMMAGENT_MODEL"):
        return model
    from immagent.testing import ScriptedModel

    scripted = ScriptedModel().install()
    # First a tool call (id, tool name, JSON arguments), then an answer from its result.
    scripted.reply(None, tool_calls=[("call_1", "get_weather", '{"city": "Paris"}')])
    scripted.reply("It's 18°C with light rain in Paris: take an umbrella and a jacket.")
    return scripted.model


async def main() -> None:
    async with MCPManager() as mcp:
        # A stdio MCP server is a subprocess; this one ships with immagent (no network).
        server = ["-m", "immagent.examples.weather_server"]
        await mcp.connect("weather", sys.executable, server)
        print("tools:", ", ".join(t["function"]["name"] for t in mcp.get_all_tools()))

        agent = SimpleAgent(
            name="weather",
            system_prompt="You help people dress for the weather. Use the tools.",
            model=choose_model(),
        )
        agent = await agent.advance("What should I wear in Paris today?", mcp=mcp)

    for message in agent.messages():
        for call in message.tool_calls or ():
            print(f"{message.role}: calls {call.name}({call.arguments})")
        if message.content:
            print(f"{message.role}: {message.content}")


if __name__ == "__main__":
    asyncio.run(main())
