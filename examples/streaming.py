"""Streaming: print the reply as it arrives; the state is stored when the turn completes.

python examples/streaming.py       # offline, SQLite file ./immagent.db
"""

from __future__ import annotations

import asyncio
import os
from contextlib import aclosing

from immagent import Store, TextDelta, ToolCallFinished, ToolCallStarted, TurnComplete


def choose_model() -> str:
    """$IMMAGENT_MODEL if set, else an offline model scripted for this example."""
    if model := os.environ.get("IMMAGENT_MODEL"):
        return model
    from immagent.testing import ScriptedModel

    scripted = ScriptedModel().install()
    scripted.reply("Once upon a time, a small robot learned to paint the sunrise.")
    scripted.reply("This second story is never finished: the reader stops listening.")
    return scripted.model


async def main() -> None:
    async with await Store.connect() as store:
        await store.migrate()
        agent = await store.create_agent(
            name="storyteller",
            system_prompt="You tell very short stories.",
            model=choose_model(),
        )

        print("assistant: ", end="", flush=True)
        async for event in agent.advance_stream("Tell me a one-sentence story."):
            if isinstance(event, TextDelta):
                print(event.text, end="", flush=True)
            elif isinstance(event, ToolCallStarted):  # only with tools (mcp=...)
                print(f"\n[calling {event.call.name}]")
            elif isinstance(event, ToolCallFinished):
                print(f"[{event.call.name} -> {event.result}]")
            elif isinstance(event, TurnComplete):
                agent = event.agent  # the new, stored state
        print()
        print("stored:", len(await agent.messages()), "messages in state", agent.id)

        # Stop early: the turn never completes, so nothing is written.
        # (aclosing closes the stream, and the model's connection, right away.)
        before = await store.count_agents()
        async with aclosing(agent.advance_stream("Tell me another.")) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    print(f"stopped after the first piece: {event.text.strip()!r}")
                    break
        after = await store.count_agents()
        print("states before:", before, "after stopping early:", after)


if __name__ == "__main__":
    asyncio.run(main())
