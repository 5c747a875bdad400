"""A PersistentAgent: every state is a database row, loadable by id, never changed.

python examples/persistent_agent.py     # offline, SQLite file ./immagent.db

$IMMAGENT_DATABASE_URL (e.g. postgresql://user@host/db) picks another database,
$IMMAGENT_MODEL (e.g. gpt-4o-mini) a real model.
"""

from __future__ import annotations

import asyncio
import os

from immagent import Store


def choose_model() -> str:
    """$IMMAGENT_MODEL if set, else an offline model scripted for this example."""
    if model := os.environ.get("IMMAGENT_MODEL"):
        return model
    from immagent.testing import ScriptedModel

    scripted = ScriptedModel().install()
    scripted.reply("Nice to meet you, Ada! I'll remember that you like astronomy.")
    scripted.reply("You told me your name is Ada, and that you like astronomy.")
    return scripted.model


async def main() -> None:
    # No URL: $IMMAGENT_DATABASE_URL, else the SQLite file ./immagent.db
    async with await Store.connect() as store:
        await store.migrate()  # once per database; deploys run `immagent db upgrade`

        agent = await store.create_agent(
            name="memory-demo",
            system_prompt="You are a friendly assistant with a good memory.",
            model=choose_model(),
        )
        first = await agent.advance("Hi, I'm Ada and I like astronomy.")
        second = await first.advance("What do you know about me?")
        print("assistant:", await second.last_response())

        # Each advance made a new state; the earlier ones are still there, unchanged.
        for state in (agent, first, second):
            count = len(await state.messages())
            print(f"state {state.id}  parent {state.parent_id}  messages {count}")

        # Later (another process, another day): load a state by id, carry on from it.
        store.clear_cache()
        loaded = await store.load_agent(str(second.id))
        lineage = await loaded.lineage()
        print("reloaded:", loaded.id == second.id, "| lineage:", len(lineage), "states")
        print("tokens (in, out):", await loaded.token_usage())
        print("as JSON:", sorted(loaded.model_dump(mode="json")))


if __name__ == "__main__":
    asyncio.run(main())
