"""The offline model the CLI uses when no real one is named: ``immagent.testing``'s ScriptedModel with a
responder that answers plausibly (canned travel-assistant replies) so the demo and an offline chat read
like a conversation. It asks for ``get_weather`` only when its system prompt mentions that tool.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from immagent.testing import ScriptedModel, ScriptedReply

#: The offline model's name (an agent stores it, so a resumed chat finds it again).
OFFLINE_MODEL = "immagent/scripted"

_CITIES = ("paris", "london", "new york", "tokyo", "sydney", "berlin", "cairo")

#: (keywords, reply): the first entry with a keyword in the user's message answers.
_CANNED: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("hello", " hi ", " hi!", " hi,", " hey"),
        "Hello! I'm an offline scripted model: my answers are canned, but every "
        "turn you take is stored as a new immutable state you can come back to.",
    ),
    (("pack", "bring"), "Pack light layers, comfortable walking shoes and a small umbrella."),
    (
        ("museum", "rain", "indoor"),
        "On a rainy day: the Louvre in the morning, a long lunch, then the Musée d'Orsay in the afternoon.",
    ),
    (
        ("eat", "food", "dinner", "restaurant", "lunch"),
        "For dinner, try a small bistro in the Marais; book ahead, and leave room for dessert.",
    ),
    (
        ("plan", "itinerary", "day"),
        "A simple plan: a walk along the river in the morning, a market for "
        "lunch, and a viewpoint at sunset.",
    ),
    (("thank",), "You're welcome! Have a great trip."),
)


def _text(content: Any) -> str:
    """The text of an OpenAI-style ``content`` (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _words(messages: Sequence[dict[str, Any]]) -> int:
    return sum(len(_text(m.get("content")).split()) for m in messages)


def respond(messages: Sequence[dict[str, Any]]) -> ScriptedReply:
    """One canned answer to a chat request (OpenAI-format messages, as LiteLLM passes them)."""
    from immagent.testing import ScriptedReply

    last = messages[-1] if messages else {}
    system = next((_text(m.get("content")) for m in messages if m.get("role") == "system"), "")
    if last.get("role") == "tool":
        result = _text(last.get("content"))
        content = f"The weather tool says: {result}. Plan accordingly!"
    else:
        said = _text(last.get("content"))
        lowered = f" {said.lower()} "
        city = next((c for c in _CITIES if c in lowered), None)
        if "get_weather" in system and "weather" in lowered and city is not None:
            arguments = json.dumps({"city": city.title()})
            call = (f"call_{len(messages)}", "get_weather", arguments)
            return ScriptedReply(
                content=None, tool_calls=(call,), input_tokens=_words(messages), output_tokens=8
            )
        heard = " ".join(said.split())
        content = next(
            (reply for keys, reply in _CANNED if any(k in lowered for k in keys)),
            f"(offline model) I heard: {heard}",
        )
    return ScriptedReply(content=content, input_tokens=_words(messages), output_tokens=len(content.split()))


def install(model: str) -> ScriptedModel:
    """Answer as ``model`` (``immagent/<name>``) offline with the canned responder."""
    from immagent.testing import ScriptedModel

    name = model.split("/", 1)[1]
    return ScriptedModel(name, responder=respond).install()
