"""The offline model the CLI uses when no real one is named: ``immagent.testing``'s ScriptedModel answering
plausibly (canned travel-assistant replies), so the demo and an offline chat read like a conversation.

It reads words, not substrings ("weather" does not contain the word "eat"), and it uses tools the way a
real model would: when a tool offered with the request fits the question (a word of its name, or two of
its description) and its required arguments can be filled from the question, it calls that tool, then
answers from the result. Nothing in the system prompt is needed for that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from immagent.testing import ScriptedModel, ScriptedReply, ScriptedRequest

#: The offline model's name (an agent stores it, so a resumed chat finds it again).
OFFLINE_MODEL = "immagent/scripted"

#: Places recognised in any case; elsewhere a capitalised name after "in", "for", "at" or "to" is one.
_CITIES = ("new york", "paris", "london", "tokyo", "sydney", "berlin", "cairo", "lisbon", "rome")
_PLACE_AFTER = re.compile(r"\b(?:in|for|at|to)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")
#: Parameter names that take a place.
_PLACE_PARAMETERS = frozenset({"city", "location", "place", "town", "region", "country", "destination"})

#: Words that say nothing about which tool fits: verbs every tool name starts with, and small words.
_FILLER = frozenset(
    {
        *("a", "an", "and", "are", "at", "be", "by", "can", "do", "does", "for", "from", "get", "give"),
        *("how", "i", "in", "is", "it", "list", "me", "my", "no", "of", "on", "or", "please", "set"),
        *("show", "tell", "that", "the", "this", "to", "what", "what's", "whats", "when", "where"),
        *("which", "will", "with", "you", "your"),
    }
)

#: (words, reply): the first entry with one of its words in the user's message answers.
_CANNED: tuple[tuple[frozenset[str], str], ...] = (
    (
        frozenset({"hello", "hi", "hey"}),
        "Hello! I'm an offline scripted model: my answers are canned, but every "
        "turn you take is stored as a new immutable state you can come back to.",
    ),
    (
        frozenset({"pack", "packing", "bring"}),
        "Pack light layers, comfortable walking shoes and a small umbrella.",
    ),
    (
        frozenset({"museum", "rain", "rainy", "indoor", "indoors"}),
        "On a rainy day: the Louvre in the morning, a long lunch, then the Musée d'Orsay in the afternoon.",
    ),
    (
        frozenset({"eat", "food", "dinner", "restaurant", "lunch"}),
        "For dinner, try a small bistro in the Marais; book ahead, and leave room for dessert.",
    ),
    (
        frozenset({"plan", "itinerary", "day"}),
        "A simple plan: a walk along the river in the morning, a market for "
        "lunch, and a viewpoint at sunset.",
    ),
    (frozenset({"thank", "thanks"}), "You're welcome! Have a great trip."),
)
#: How the model asks for an argument a fitting tool needs ("Which city?").
_WHICH = "Which"
#: Asked about the weather with no tool offered: say how to get one.
_WEATHER = frozenset({"weather", "forecast", "temperature"})
_NO_TOOL = (
    "I can't look that up offline without a tool: start the chat with "
    '--mcp "python -m immagent.examples.weather_server" and ask again.'
)


def _text(content: Any) -> str:
    """The text of an OpenAI-style ``content`` (a string or a list of text parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def words(text: str) -> set[str]:
    """The words of ``text``, lower-cased, each also without a plural "s" ("museums" -> "museum")."""
    found: set[str] = set()
    for word in re.findall(r"[^\W_]+(?:'[^\W_]+)?", text.lower()):
        found.add(word)
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            found.add(word[:-1])
    return found


def _name_words(name: str) -> set[str]:
    """The words of a tool name: ``get_weather`` and ``getWeather`` are both {"get", "weather"}."""
    return words(re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " "))


def _place(said: str) -> str | None:
    """The place the user named, if any."""
    padded = " " + " ".join(re.findall(r"[^\W_]+", said.lower())) + " "
    city = next((c for c in _CITIES if f" {c} " in padded), None)
    if city is not None:
        return city.title()
    after = _PLACE_AFTER.search(said)
    return after.group(1) if after else None


def _arguments(tool: dict[str, Any], said: str) -> tuple[dict[str, str], str | None]:
    """Arguments for ``tool`` from what the user said: a place for a place parameter, the user's words
    for any other required text; and the first required parameter that could not be filled (or None)."""
    schema = tool.get("parameters") or {}
    properties = schema.get("properties") or {}
    arguments: dict[str, str] = {}
    for name in schema.get("required") or ():
        kind = (properties.get(name) or {}).get("type", "string")
        value = said if kind == "string" else None
        if kind == "string" and name.lower() in _PLACE_PARAMETERS:
            value = _place(said)
        if value is None:
            return arguments, name
        arguments[name] = value
    return arguments, None


def _fitting(said: str, tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The offered tools (their ``function`` parts) that fit ``said``, best first: a shared word of the
    tool's name scores 2, of its description 1, and a tool needs 2."""
    asked = words(said) - _FILLER
    ranked: list[tuple[int, int, dict[str, Any]]] = []
    for order, tool in enumerate(tools):
        function = tool.get("function") or {}
        named = asked & _name_words(str(function.get("name") or ""))
        described = asked & words(str(function.get("description") or ""))
        score = 2 * len(named) + len(described)
        if score >= 2:
            ranked.append((-score, order, function))
    return [function for _, _, function in sorted(ranked, key=lambda item: item[:2])]


def _tool_answer(messages: Sequence[dict[str, Any]]) -> str:
    """The answer after tool results: what each tool said, named by what it is about."""
    results: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        results.insert(0, message)
    asked = messages[-len(results) - 1] if len(messages) > len(results) else {}
    names = {c.get("id"): (c.get("function") or {}).get("name", "") for c in asked.get("tool_calls") or ()}
    lines = []
    for result in results:
        about = " ".join(sorted(_name_words(str(names.get(result.get("tool_call_id"), ""))) - _FILLER))
        text = _text(result.get("content")).strip()
        lines.append(f"The {about or 'tool'} tool says: {text}")
    return "\n".join(lines)


def _with_question(messages: Sequence[dict[str, Any]], said: str) -> str:
    """What the user said, after the question it answers when the model has just asked for a tool's
    missing argument ("Which city?" ... "Paris")."""
    roles = [m.get("role") for m in messages[-3:]]
    if roles == ["user", "assistant", "user"] and _text(messages[-2].get("content")).startswith(f"{_WHICH} "):
        return f"{' '.join(_text(messages[-3].get('content')).split())} {said}"
    return said


def answer(messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]] = ()) -> ScriptedReply:
    """One canned answer to a chat request (OpenAI-format messages and tools, as LiteLLM passes them)."""
    used = sum(len(_text(m.get("content")).split()) for m in messages)
    last = messages[-1] if messages else {}
    said = " ".join(_text(last.get("content")).split())
    if last.get("role") == "tool":
        content = _tool_answer(messages)
    else:
        asked = _with_question(messages, said)
        fitting = _fitting(asked, tools)
        for function in fitting:
            arguments, missing = _arguments(function, asked)
            if missing is None:
                call = (f"call_{len(messages)}", str(function["name"]), json.dumps(arguments))
                return ScriptedReply(content=None, tool_calls=(call,), input_tokens=used, output_tokens=8)
        heard = words(said)
        if fitting:  # a tool fits, but the question lacks what it needs
            _, missing = _arguments(fitting[0], asked)
            content = f"{_WHICH} {missing}? Tell me and I'll ask {fitting[0]['name']}."
        elif heard & _WEATHER and not tools:
            content = _NO_TOOL
        else:
            content = next(
                (reply for keys, reply in _CANNED if heard & keys), f"(offline model) I heard: {said}"
            )
    return ScriptedReply(content=content, input_tokens=used, output_tokens=len(content.split()))


class OfflineModel(ScriptedModel):
    """The scripted model answering from the whole request, so the tools offered with it can be called."""

    def respond(self, request: ScriptedRequest) -> ScriptedReply:
        return answer(request.messages, request.tools)


def install(model: str) -> ScriptedModel:
    """Answer as ``model`` (``immagent/<name>``) offline with the canned answers and the offered tools."""
    return OfflineModel(model.split("/", 1)[1]).install()
