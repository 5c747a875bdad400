"""``immagent chat`` driven through standard input, as a person (or a script) would: streamed replies,
every turn persisted, /back and /branch growing new branches, Ctrl-C cancelling a reply without a trace,
and one clear line for a missing API key. The model is the scripted OpenAI-compatible server over HTTP."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from sqlalchemy.ext.asyncio import create_async_engine

from immagent import Store
from tests.support import cli as cli_support
from tests.support.cli import ChatProcess, cli_env, run_cli
from tests.support.db import snapshot
from tests.support.openai_server import ScriptedOpenAIServer

chat_processes = cli_support.chat_processes

MODEL = "gpt-4o-mini"
STATE = re.compile(r"^\[state ([0-9a-f-]{36})\]$", re.MULTILINE)


def model_env(llm: ScriptedOpenAIServer, url: str) -> dict[str, str]:
    return cli_env(
        IMMAGENT_DATABASE_URL=url,
        OPENAI_API_KEY="sk-immagent-test",
        OPENAI_BASE_URL=llm.base_url,
        OPENAI_API_BASE=llm.base_url,
    )


def user_turns(request: dict[str, object]) -> list[str]:
    messages = request["messages"]
    assert isinstance(messages, list)
    return [m["content"] for m in messages if m["role"] == "user"]


async def test_a_chat_session_through_stdin_streams_persists_and_branches(
    llm: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    script = "\n".join(
        [
            "first question",
            "second question",
            "/back",
            "a different second question",
            "/branch",
            "/branch 1",
            "third take",
            "/history",
            "/tree",
            "/meta",
            "/exit",
        ]
    )
    result = run_cli(
        "chat", "--model", MODEL, "--name", "cli-chat", cwd=tmp_path, env=model_env(llm, url), stdin=script
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout

    # The model saw the history of the state each turn grew from: /back and /branch dropped turns.
    assert [user_turns(r) for r in llm.requests] == [
        ["first question"],
        ["first question", "second question"],
        ["first question", "a different second question"],
        ["first question", "third take"],
    ]
    assert all(r["stream"] is True for r in llm.requests)
    assert "assistant> echo: a different second question" in out

    states = STATE.findall(out)
    assert len(states) == 4  # one state per turn, each printed as it was committed
    async with await Store.connect(url) as store:
        assert await store.count_agents() == 5  # the new agent and one state per turn
        first = await store.load_agent(states[0])
        children = await first.children()
        assert [str(c.id) for c in children] == states[1:]  # three branches from the first turn
        last = await store.load_agent(states[-1])
        assert [m.content for m in await last.messages()] == [
            "first question",
            "echo: first question",
            "third take",
            "echo: third take",
        ]
        assert last.name == "cli-chat" and last.model == MODEL

    history = out.split("now at state")[-1]
    assert "[3] user: third take" in history and "[4] assistant: echo: third take" in history
    tree = out.split("[4] assistant: echo: third take")[1]
    assert tree.count("├── ") == 2 and tree.count("└── ") == 1  # three branches under the first turn
    assert f"{states[-1]}  4 msgs" in tree and "◀ current" in tree
    assert f"state     {states[-1]}" in out  # /meta
    assert out.rstrip().endswith(f"continue with: immagent chat --agent {states[-1]}")


async def test_a_resumed_chat_continues_from_the_given_state(
    llm: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    env = model_env(llm, url)
    first = run_cli("chat", "--model", MODEL, cwd=tmp_path, env=env, stdin="remember the number 7\n")
    assert first.returncode == 0, first.stderr
    [state] = STATE.findall(first.stdout)

    second = run_cli("chat", "--agent", state, cwd=tmp_path, env=env, stdin="what was it?\n")
    assert second.returncode == 0, second.stderr
    assert f"resumed “chat” at state {state} (2 messages, model {MODEL})" in second.stdout
    assert user_turns(llm.last_request) == ["remember the number 7", "what was it?"]

    refused = run_cli("chat", "--agent", state, "--model", "gpt-4o", cwd=tmp_path, env=env, stdin="")
    assert refused.returncode == 2
    assert "--model and --system are for a new agent" in refused.stderr


async def test_ctrl_c_during_a_streamed_reply_cancels_the_turn_and_writes_nothing(
    llm: ScriptedOpenAIServer, tmp_path: Path, chat_processes: list[ChatProcess]
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    chat = ChatProcess("--model", MODEL, cwd=tmp_path, env=model_env(llm, url))
    chat_processes.append(chat)
    chat.expect(r"/help for commands")
    engine = create_async_engine(url)
    try:
        before = await snapshot(engine)
        assert before, "the new agent's state is already stored"

        words = [f"word{i}" for i in range(40)]
        llm.reply(" ".join(words), chunk_delay=0.25)  # ten seconds of streaming
        chat.send("tell me a long story")
        chat.expect(r"assistant> word0 word1 ")  # the reply is streaming
        chat.interrupt()
        chat.expect(r"\[cancelled: this turn was not saved\]", where="err")
        assert "word39" not in chat.out

        llm.reply("still here")
        chat.send("are you there?")
        chat.expect(r"assistant> still here")
        chat.send("/exit")
        assert chat.finish() == 0, chat.err

        after = await snapshot(engine)
    finally:
        await engine.dispose()
    # Only the second turn was written: two messages and one state more than before, nothing else.
    assert len(after) == len(before) + 3
    assert all(row in after for row in before)
    assert not any("word1" in str(row) for row in after)
    assert user_turns(llm.last_request) == ["are you there?"]  # the cancelled turn is not in the history


def test_a_missing_api_key_is_one_error_line_and_nothing_is_written(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    result = run_cli(
        "chat", "--model", MODEL, cwd=tmp_path, env=cli_env(IMMAGENT_DATABASE_URL=url), stdin="hello\n"
    )
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line == f"error: model '{MODEL}' needs an API key: set the OPENAI_API_KEY environment variable"
    count = run_cli("agents", "--count", cwd=tmp_path, env=cli_env(IMMAGENT_DATABASE_URL=url))
    assert count.stdout.strip() == "0"


def test_a_bad_agent_id_is_one_error_line(tmp_path: Path) -> None:
    env = cli_env(IMMAGENT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}")
    missing = "01a213bf-dead-72ad-86e9-593d79ca1943"
    result = run_cli("chat", "--agent", missing, cwd=tmp_path, env=env, stdin="hello\n")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [f"error: agent {missing} not found"]


def test_a_failed_turn_prints_one_line_keeps_chatting_and_exits_1(
    llm: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    llm.fail(401, "Incorrect API key provided")
    llm.reply("second try works")
    result = run_cli("chat", "--model", MODEL, cwd=tmp_path, env=model_env(llm, url), stdin="one\ntwo\n")
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "was refused: Incorrect API key" in errors[0]
    assert "Traceback" not in result.stderr
    assert "assistant> second try works" in result.stdout
    assert len(STATE.findall(result.stdout)) == 1


def test_the_offline_model_chats_without_any_key(tmp_path: Path) -> None:
    env = cli_env(IMMAGENT_DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}")
    result = run_cli("chat", cwd=tmp_path, env=env, stdin="What should I pack?\n/exit\n")
    assert result.returncode == 0, result.stderr
    assert "model immagent/scripted" in result.stdout
    assert "assistant> Pack light layers" in result.stdout


async def test_a_thread_chat_moves_the_thread_with_every_turn_and_undo_moves_it_back(
    llm: ScriptedOpenAIServer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    env = model_env(llm, url)
    script = "first question\nsecond question\n/undo\nanother second question\n/exit\n"
    result = run_cli("chat", "--model", MODEL, "--thread", "support-1", cwd=tmp_path, env=env, stdin=script)
    assert result.returncode == 0, result.stderr
    assert (
        "new agent “support-1” at state" in result.stdout
        and "on thread 'support-1' (position 0)" in result.stdout
    )
    assert "thread support-1 moved to position 3" in result.stdout
    assert result.stdout.rstrip().endswith("continue with: immagent chat --thread support-1")
    async with await Store.connect(url) as store:
        thread = await store.load_thread("support-1")
        assert [(m.position, m.kind) for m in await thread.log()] == [
            (0, "create"), (1, "advance"), (2, "advance"), (3, "move"), (4, "advance"),
        ]  # fmt: skip
        head = await thread.head()
        assert [m.content for m in await head.messages()][::2] == [
            "first question",
            "another second question",
        ]

    resumed = run_cli("chat", "--thread", "support-1", cwd=tmp_path, env=env, stdin="and now?\n")
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed “support-1”" in resumed.stdout and "(position 4)" in resumed.stdout
    assert user_turns(llm.last_request) == ["first question", "another second question", "and now?"]
    async with await Store.connect(url) as store:
        assert (await store.load_thread("support-1")).position == 5

    plain = run_cli("chat", "--model", MODEL, cwd=tmp_path, env=env, stdin="/undo\n")
    assert "/undo moves a thread: start the chat with --thread KEY" in plain.stdout


async def test_the_offline_chat_calls_a_fitting_weather_tool_and_answers_with_its_result(
    tmp_path: Path,
) -> None:
    # The command from the issue, with the test's interpreter: no key, no system prompt naming the tool.
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    server = f"{shlex.quote(sys.executable)} -m immagent.examples.weather_server"
    script = "What's the weather in Paris?\nWhere should we eat tonight?\n"
    result = run_cli(
        "chat", "--mcp", server, cwd=tmp_path, env=cli_env(IMMAGENT_DATABASE_URL=url), stdin=script
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert '[tool] get_weather({"city": "Paris"})' in out
    assert "[tool] get_weather -> Paris: 18°C, light rain" in out
    assert "assistant> The weather tool says: Paris: 18°C, light rain" in out
    assert out.count("For dinner") == 1  # "weather" has "eat" inside it, but not as a word

    weather, dinner = STATE.findall(out)
    async with await Store.connect(url) as store:
        state = await store.load_agent(weather)
        assert "get_weather" not in await state.system_prompt()  # offered, not named, and still used
        messages = await state.messages()
        assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
        [call] = messages[1].tool_calls or ()
        assert (call.name, call.arguments) == ("get_weather", '{"city": "Paris"}')
        assert (messages[2].tool_call_id, messages[2].content) == (call.id, "Paris: 18°C, light rain")
        assert messages[3].content == "The weather tool says: Paris: 18°C, light rain"
        last = await (await store.load_agent(dinner)).last_response()
        assert last is not None and last.startswith("For dinner")
