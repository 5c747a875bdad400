"""Quickstart: an in-memory SimpleAgent. Every advance returns a NEW agent; the old one is unchanged.

python examples/quickstart.py                           # offline, scripted replies
IMMAGENT_MODEL=gpt-4o-mini python examples/quickstart.py   # a real model (needs OPENAI_API_KEY)
"""

from __future__ import annotations

import asyncio
import os

from immagent import SimpleAgent


def choose_model() -> str:
    """$IMMAGENT_MODEL when set, else the offline scripted model with replies written for this script."""
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
    print(
        f"messages: original {len(agent.messages())}, first {len(first.messages())}, "
        f"second {len(second.messages())}"
    )
    print("tokens (in, out):", second.token_usage())


if __name__ == "__main__":
    asyncio.run(main())
