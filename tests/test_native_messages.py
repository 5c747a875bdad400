"""Native forms: a message as another framework wrote it, stored beside the readable projection and read
back exactly on SQLite, PostgreSQL and MySQL/MariaDB; bad forms refused, naming the field, before any
write; the CLI and export keep showing and carrying them."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from pydantic import ValidationError as PydanticValidationError

from immagent import Message, NativeForm, PersistentAgent, Store, ToolCall, ValidationError
from immagent._validation import NATIVE_MAX_BYTES, NATIVE_MAX_DEPTH
from immagent.cli._common import message_lines
from immagent.cli.transfer import StateExport, export_document, export_text
from tests.support.db import snapshot

#: Values JSON can hold that a backend might be tempted to change: key order (jsonb would sort it),
#: unicode, escapes, numbers jsonb would turn into others (1e16 into an int, -0.0 into 0.0), empty
#: containers, deep nesting.
AWKWARD: dict[str, Any] = {
    "z": 1,
    "a": [None, True, False, 0, -1, 2**63 + 1, 10**30, 0.1, 1e-7, -2.5e-300, 123456789.123456789, 1e15],
    "floats jsonb changes": [1e16, -0.0, 1.7976931348623157e308, 1e22],
    "unicode": 'é 漢字 🦀 \u200b \\u0000 "quoted" \n\t',
    "": {"": [], "nested": {"deeper": [[[{"x": "y"}]]]}},
    "float_integral": 3.0,
    "keys": {"b": 1, "a": 2, "B": 3, "10": 4, "9": 5},
}


def deep(levels: int) -> Any:
    """JSON nested ``levels`` deep (objects and arrays in turn)."""
    value: Any = "bottom"
    for n in range(levels):
        value = [value] if n % 2 == 0 else {"down": value}
    return value


async def make(store: Store) -> PersistentAgent:
    return await store.create_agent(name="native", system_prompt="p", model="m")


def same_json(one: Any, two: Any) -> bool:
    """Equal, and equal as JSON text: a float stays a float (and -0.0 stays -0.0), keys keep their order."""
    return one == two and json.dumps(one) == json.dumps(two)


async def test_a_native_form_is_stored_and_read_back_exactly(store: Store) -> None:
    agent = await make(store)
    forms = [
        NativeForm(format="test/awkward", data=AWKWARD),
        NativeForm(format="test/scalar", data="just a string"),
        NativeForm(format="test/list", data=[1, 2.0, "3"]),
        NativeForm(format="test/deep", data=deep(NATIVE_MAX_DEPTH)),
        NativeForm(format="test/null", data=None),
    ]
    given = [Message(role="user", content=f"m{i}", native=form) for i, form in enumerate(forms)]
    given.append(Message(role="assistant", content="plain"))
    grown = await agent.extend(given)
    store.clear_cache()
    read = await (await store.load_agent(grown.id)).messages()
    assert [m.native for m in read] == [*forms, None]
    for form, message in zip(forms, read, strict=False):
        assert message.native is not None
        assert same_json(message.native.data, form.data), form.format
    assert read[0].native is not None and isinstance(read[0].native.data["float_integral"], float)
    assert read == await grown.messages()  # what the writer kept equals what a reader gets
    assert read[0].llm_form() == {"role": "user", "content": "m0"}  # the model sees the projection


async def test_a_native_form_is_a_frozen_json_value_checked_when_made() -> None:
    form = NativeForm(format="pydantic-ai/message", data=({"t": (1, 2)},))
    assert form.data == [{"t": [1, 2]}]  # as JSON gives it back: tuples are lists
    with pytest.raises(PydanticValidationError):
        form.format = "other"  # type: ignore[misc]
    bad_values = (math.nan, math.inf, -math.inf, object(), {1: "a"}, "nul\x00", "\ud800", {"k": [b"x"]})
    for bad in (*bad_values, deep(NATIVE_MAX_DEPTH + 1)):
        with pytest.raises(PydanticValidationError, match=r"native\.data"):
            NativeForm(format="x/y", data=bad)
    for bad_format in ("", " x", "a\x00b", "x" * 256, 3):
        with pytest.raises(PydanticValidationError, match="format"):
            NativeForm(format=bad_format, data=1)  # type: ignore[arg-type]
    assert Message(role="user", content="x").native is None


def unchecked(data: Any, format: str = "x/y") -> Message:
    """A message whose native form skipped validation (model_construct): extend() must still refuse it."""
    return Message(role="user", content="x", native=NativeForm.model_construct(format=format, data=data))


BAD_MESSAGES: list[tuple[Any, str]] = [
    ([unchecked(math.nan)], "messages[0].native.data"),
    ([unchecked({"k": object()})], "messages[0].native.data"),
    ([unchecked({2: "int key"})], "messages[0].native.data"),
    ([unchecked(["a\x00"])], "messages[0].native.data"),
    ([unchecked({"s": "\udfff"})], "messages[0].native.data"),
    ([unchecked([math.inf])], "messages[0].native.data"),
    ([unchecked("x" * NATIVE_MAX_BYTES)], "messages[0].native.data"),
    ([unchecked(deep(NATIVE_MAX_DEPTH + 1))], "messages[0].native.data"),
    ([unchecked(1, format="")], "messages[0].native.format"),
    ([Message(role="user", content="ok"), unchecked(math.inf)], "messages[1].native.data"),
    ([Message(role="user", content="bad\x00")], "messages[0].content"),
    ([Message(role="tool", content="r", tool_call_id="c" * 256)], "messages[0].tool_call_id"),
    (
        [Message(role="assistant", tool_calls=(ToolCall(id="c", name="f\x00"),))],
        "messages[0].tool_calls[0].name",
    ),
    ([Message.model_construct(role="user", input_tokens=-1)], "messages[0].input_tokens"),
    ([Message.model_construct(role="system", content="x")], "messages[0].role"),
    ([{"role": "user", "content": "a dict"}], "messages[0]"),
    ([], "messages"),
    ("hello", "messages"),
    (Message(role="user", content="not in a list"), "messages"),
]


@pytest.mark.parametrize(("messages", "field"), BAD_MESSAGES, ids=[f for _, f in BAD_MESSAGES])
async def test_extend_refuses_bad_messages_naming_the_field_before_anything_is_written(
    store: Store, messages: Any, field: str
) -> None:
    agent = await (await make(store)).extend([Message(role="user", content="first")])
    thread = await store.create_thread("t", agent)
    before = await snapshot(store.engine)
    with pytest.raises(ValidationError) as caught:
        await agent.extend(messages)
    assert caught.value.field == field
    with pytest.raises(ValidationError) as again:
        await thread.extend(messages)
    assert again.value.field == field
    assert await snapshot(store.engine) == before


async def test_show_marks_native_messages_and_export_import_keeps_their_forms(store: Store) -> None:
    form = NativeForm(format="pydantic-ai/message", data={"parts": [{"part_kind": "text", "content": "hi"}]})
    agent = await (await make(store)).extend(
        [Message(role="assistant", content="hi", input_tokens=3, output_tokens=1, native=form)]
    )
    [line] = message_lines(0, (await agent.messages())[0])
    assert line == "[0] assistant: hi  [tokens in 3, out 1]  [pydantic-ai/message]"

    document = await export_document(store, agent.id)
    assert document.version == 2  # an immagent without native forms refuses it instead of dropping them
    text = export_text(document)
    assert json.loads(text)["messages"][0]["native"] == form.model_dump()
    written = await agent.messages()
    await store.erase_tree(agent.root_id)  # gone from the database; the document recreates it
    store.clear_cache()
    parsed = StateExport.model_validate_json(text)
    await store.import_states(parsed.agents, parsed.messages, parsed.system_prompts)
    copied = await (await store.load_agent(agent.id)).messages()
    assert copied == written and copied[0].native == form

    plain = await export_document(store, (await make(store)).id)
    assert plain.version == 1
