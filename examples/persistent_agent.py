"""A PersistentAgent: every state is a row in the database, addressable by id, and never changes.

python examples/persistent_agent.py        # SQLite file ./immagent.db, offline scripted replies
IMMAGENT_DATABASE_URL=postgresql://user@host/db IMMAGENT_MODEL=gpt-4o-mini python examples/persistent_agent.py
"""

from __future__ import annotations

import asyncio
import os

from immagent import Store


def choose_model() -> str:
    """$IMMAGENT_MODEL when set, else the offline scripted model with replies written for this script."""
    if model := os.environ.get("IMMAGENT_MODEL"):
        return model
    from immagent.testing import ScriptedModel

    scripted = ScriptedModel().install()
    scripted.reply("Nice to meet you, Ada! I'll remember that you like astronomy.")
    scripted.reply("You told me your name is Ada, and that you like astronomy.")
    return scripted.model


async def main() -> None:
    # No URL: $IMMAGENT_DATABASE_URL, else sqlite+aiosqlite:///immagent.db in the current folder.
    async with await Store.connect() as store:
        await store.migrate()  # once per database (deploys run `immagent db upgrade` instead)

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
            print(f"state {state.id}  parent {state.parent_id}  messages {len(await state.messages())}")

        # Later (another process, another day): load a state by id and carry on from it.
        store.clear_cache()
        loaded = await store.load_agent(str(second.id))
        print("reloaded:", loaded.id == second.id, "| lineage:", len(await loaded.lineage()), "states")
        print("tokens (in, out):", await loaded.token_usage())
        print("as JSON:", sorted(loaded.model_dump(mode="json")))


if __name__ == "__main__":
    asyncio.run(main())
