"""Tools over MCP: the agent calls a weather server's tools; calls and results are part of the history.

python examples/tools.py       # offline: scripted model + the example weather server (a subprocess)
"""

from __future__ import annotations

import asyncio
import os
import sys

from immagent import MCPManager, SimpleAgent


def choose_model() -> str:
    """$IMMAGENT_MODEL when set, else the offline scripted model with replies written for this script."""
    if model := os.environ.get("IMMAGENT_MODEL"):
        return model
    from immagent.testing import ScriptedModel

    scripted = ScriptedModel().install()
    # First the model asks for a tool call (id, tool name, JSON arguments), then it answers from the result.
    scripted.reply(None, tool_calls=[("call_1", "get_weather", '{"city": "Paris"}')])
    scripted.reply("It's 18°C with light rain in Paris: take an umbrella and a light jacket.")
    return scripted.model


async def main() -> None:
    async with MCPManager() as mcp:
        # A stdio MCP server is a subprocess; this one ships with immagent and needs no network.
        await mcp.connect("weather", sys.executable, ["-m", "immagent.examples.weather_server"])
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
