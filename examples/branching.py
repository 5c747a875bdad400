"""Branching: advance one state twice and get two futures that share their past.

python examples/branching.py       # offline, SQLite file ./immagent.db
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
    scripted.reply("Lisbon in May: mild, sunny, and full of viewpoints.")
    scripted.reply("Ride tram 28 up to Alfama, then watch the sunset from a miradouro.")
    scripted.reply("Take the train to Sintra: palaces in the hills, 40 minutes away.")
    return scripted.model


async def main() -> None:
    async with await Store.connect() as store:
        await store.migrate()
        start = await store.create_agent(
            name="trip-planner",
            system_prompt="You plan short city trips.",
            model=choose_model(),
        )
        base = await start.advance("I'm going to Lisbon in May.")

        # Two turns from the same state: a branch point. Neither overwrites the other.
        city = await base.advance("What should I do in the city?")
        away = await base.advance("Suggest a day trip instead.")
        print("city branch:", await city.last_response())
        print("away branch:", await away.last_response())

        shared = [m.id for m in await base.messages()]
        for branch in (city, away):
            ids = [m.id for m in await branch.messages()]
            assert ids[: len(shared)] == shared  # the same stored messages, not copies
        print("both branches share", len(shared), "messages with their parent")
        print("children of base:", len(await base.children()))

        # conversation_id identifies a history: same id, same messages (O(1) check).
        twin = await city.clone()  # a sibling with the same history; nothing copied
        same = twin.conversation_id == city.conversation_id
        print("clone has the same conversation:", same)
        print("branches differ:", city.conversation_id != away.conversation_id)

        # Drop a branch: delete its state; gc() removes messages no state reaches.
        await store.delete(away)
        print("gc removed:", await store.gc())
        kept = await store.load_agent(city.id)
        print("city branch intact:", len(await kept.messages()), "messages")


if __name__ == "__main__":
    asyncio.run(main())
