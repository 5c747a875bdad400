"""Pydantic AI with its message history on an immagent thread: each run is one immutable state.

pip install 'immagent[pydantic-ai]'
python examples/pydantic_ai_history.py   # offline (Pydantic AI's FunctionModel), SQLite file ./immagent.db

To use a real model, replace ``FunctionModel(offline_model)`` with a model name such as
``"openai:gpt-4o-mini"``; nothing else changes.
"""

from __future__ import annotations

import asyncio
import uuid

from pydantic_ai import Agent
from pydantic_ai.messages import (
    ModelMessage,
    ModelMessagesTypeAdapter,
    ModelResponse,
    TextPart,
    ToolCallPart,
    ToolReturnPart,
    UserPromptPart,
)
from pydantic_ai.models.function import AgentInfo, FunctionModel

from immagent import Store
from immagent.integrations.pydantic_ai import load_history, save_run

SKIES = {"Paris": "light rain, 18°C", "Oslo": "snow, -3°C", "Lima": "sunny, 24°C"}


def offline_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    """Stands in for a model: asks the ``weather`` tool about the city in the last question, then
    answers with what the tool returned."""
    returned = [p for p in messages[-1].parts if isinstance(p, ToolReturnPart)]
    if returned:
        return ModelResponse(parts=[TextPart(f"{returned[0].tool_call_id}: {returned[0].content}.")])
    prompts = [p for m in messages for p in m.parts if isinstance(p, UserPromptPart)]
    city = str(prompts[-1].content).rstrip("?").split()[-1]
    return ModelResponse(parts=[ToolCallPart("weather", {"city": city}, tool_call_id=city)])


agent = Agent(FunctionModel(offline_model), instructions="Answer questions about the weather.")


@agent.tool_plain
def weather(city: str) -> str:
    """Today's weather in ``city``."""
    return SKIES.get(city, "unknown")


async def main() -> None:
    async with await Store.connect() as store:
        await store.migrate()
        root = await store.create_agent(
            name="weather-bot", system_prompt="(Pydantic AI)", model="pydantic-ai"
        )
        key = f"weather/{uuid.uuid4().hex[:8]}"
        thread = await store.create_thread(key, root)

        # Each run: the thread's history in, the run's new messages out as ONE new state.
        for question in ("What's the weather in Paris?", "And in Oslo?"):
            result = await agent.run(question, message_history=await load_history(thread))
            thread = await save_run(thread, result.new_messages())
            print("assistant:", result.output)
        after_paris = (await thread.log())[1].agent_id

        head = await thread.head()
        print(f"thread at position {thread.position}: {len(await head.messages())} messages")
        for message in await head.messages(last=4):  # what immagent show / the inspector display
            calls = ", ".join(f"{c.name}({c.arguments})" for c in message.tool_calls or ())
            print(f"  {message.role}: {message.content or calls}")

        # Another process, or a restart: the history comes back exactly as Pydantic AI made it.
        store.clear_cache()
        loaded = await load_history(await store.load_thread(key))
        same = ModelMessagesTypeAdapter.dump_json(loaded) == ModelMessagesTypeAdapter.dump_json(
            result.all_messages()
        )
        print("loaded back exactly:", same)

        # Undo the last run: the thread moves back, nothing is deleted (the log keeps the old head).
        thread = await (await store.load_thread(key)).rewind(len(result.new_messages()))
        print("after undo:", len(await load_history(thread)), "messages")

        # Branch: a second thread from the state after the first run; the first thread is untouched.
        branch = await store.create_thread(f"{key}/lima", after_paris)
        result = await agent.run("And in Lima?", message_history=await load_history(branch))
        branch = await save_run(branch, result.new_messages())
        print("branch:", result.output, f"({len(await load_history(branch))} messages)")


if __name__ == "__main__":
    asyncio.run(main())
