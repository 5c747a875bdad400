"""Quickstart: an in-memory SimpleAgent. advance() returns a NEW agent; the old one stays.

python examples/quickstart.py                             # offline
IMMAGENT_MODEL=gpt-4o-mini python examples/quickstart.py  # needs OPENAI_API_KEY
"""

from __future__ import annotations

import asyncio
import os

from immagent import SimpleAgent


def choose_model() -> str:
    """$IMMAGENT_MODEL if set, else an offline model scripted for this example."""
    if model := os.environ.get("IMMAGENT_MODEL"):
        return model
    from immagent.testing import ScriptedModel

    scripted = ScriptedModel().install()
    scripted.reply("Paris is the capital of France.")
    scripted.reply("About 2.1 million people live in the city of Paris itself.")
    return scripted.model


async def main() -> None:
    agent = SimpleAgent(
        name="geography",
        system_prompt="You are a concise geography assistant.",
        model=choose_model(),
    )

    first = await agent.advance("What is the capital of France?")
    second = await first.advance("And how many people live there?")

    print("assistant:", first.last_response())
    print("assistant:", second.last_response())
    sizes = [len(a.messages()) for a in (agent, first, second)]
    print("messages: original {}, first {}, second {}".format(*sizes))
    print("tokens (in, out):", second.token_usage())


if __name__ == "__main__":
    asyncio.run(main())
