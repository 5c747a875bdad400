"""An OpenAI Agents SDK agent whose session is an immagent thread: undo, restore and branch for free.

pip install 'immagent[openai-agents]'
python examples/openai_agents_session.py    # offline (the SDK's scripted model), SQLite file ./immagent.db

Set IMMAGENT_MODEL (for example gpt-4o-mini) and OPENAI_API_KEY to run it on a real OpenAI model.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from agents import Agent, Runner, function_tool, set_tracing_disabled

from immagent import Store
from immagent.integrations.openai_agents import ImmagentSession


@function_tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return {"Paris": "18°C, light rain", "Lisbon": "24°C, sunny"}.get(city, "no data")


def choose_model() -> Any:
    """$IMMAGENT_MODEL if set, else the SDK's own scripted model, offline (no key, no network)."""
    if model := os.environ.get("IMMAGENT_MODEL"):
        return model
    from agents.testing import ScriptedModel, assistant_message, function_call

    set_tracing_disabled(True)  # offline: no trace export either
    return ScriptedModel(
        [
            [function_call("get_weather", {"city": "Paris"}, call_id="call_1")],
            [assistant_message("Paris: 18°C with light rain. Take an umbrella.")],
            [function_call("get_weather", {"city": "Lisbon"}, call_id="call_2")],
            [assistant_message("Lisbon: 24°C and sunny. Sunglasses!")],
            [assistant_message("Yes: it is raining in Paris.")],
        ]
    )


async def main() -> None:
    async with await Store.connect() as store:
        await store.migrate()
        agent = Agent(name="weather", instructions="Be brief.", model=choose_model(), tools=[get_weather])
        session = ImmagentSession("traveller-42", store)

        result = await Runner.run(agent, "What's the weather in Paris?", session=session)
        print("assistant:", result.final_output)
        result = await Runner.run(agent, "And in Lisbon?", session=session)
        print("assistant:", result.final_output)
        items = await session.get_items()
        print("items:", len(items), "| kinds:", ", ".join(sorted({i.get("type", "message") for i in items})))

        # Every add_items was one immutable state: the thread's log lists them all.
        thread = await session.thread()
        assert thread is not None
        print("states in the thread's log:", len(await thread.log()))

        # Branch: a second session that starts after the Paris answer (4 items); nothing is copied.
        what_if = await session.branch("traveller-42/what-if", at=4)
        result = await Runner.run(agent, "Should I pack a raincoat?", session=what_if)
        print("branch:", result.final_output, "| items:", len(await what_if.get_items()))

        # clear_session deletes nothing: the thread moves to an empty state, and the log brings it back.
        await session.clear_session()
        print("after clear:", len(await session.get_items()), "items")
        thread = await session.thread()
        assert thread is not None
        before_clear = (await thread.log())[-2]
        await thread.move(before_clear.agent_id)
        print("restored:", len(await session.get_items()), "items")

        # immagent's own views read the SDK's items: role, content, tool calls.
        head = await (await session.thread()).head()  # type: ignore[union-attr]
        for message in (await head.messages())[:4]:
            calls = ", ".join(f"{c.name}({c.arguments})" for c in message.tool_calls or ())
            print(f"{message.role}: {message.content or 'calls ' + calls}")


if __name__ == "__main__":
    asyncio.run(main())
