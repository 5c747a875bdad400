"""immagent's Alembic migrations on SQLite, PostgreSQL and MySQL/MariaDB: the exact schema, round trips,
idempotence, models vs migrations, data kept across an upgrade, offline SQL, the three ways to run them,
and the schema check of the store (once per store, behind/empty/ahead)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    Uuid,
    event,
    insert,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from immagent import AgentNotFoundError, SchemaError, Store
from immagent._ids import content_id, uuid7
from immagent._messages import utcnow
from immagent._migrations import HEAD_REVISION, MYSQL_EXACT_COLLATION, VERSION_TABLE, drift_sync
from immagent._migrations import history as scripts
from immagent.testing import ScriptedModel
from tests.support.db import BACKENDS, backend_of
from tests.support.schema import REPO, execute, immagent_cli, read, rows, run, schema

ON_EVERY_BACKEND = pytest.mark.parametrize("fresh_db_url", BACKENDS, indirect=True)

# The generic type of each column, then per backend how the database reports it. MariaDB's JSON is a
# LONGTEXT with a json_valid() check; MySQL's TEXT would stop at 64 KiB.
_TYPES = {
    "sqlite": {"uuid": "CHAR(32)", "json": "JSON", "exact_json": "JSON", "time": "DATETIME", "text": "TEXT"},
    "postgresql": {
        "uuid": "UUID",
        "json": "JSONB",
        "exact_json": "JSON",
        "time": "TIMESTAMP WITH TIME ZONE",
        "text": "TEXT",
    },
    "mysql": {
        "uuid": "CHAR(32)",
        "json": "LONGTEXT",
        "exact_json": "LONGTEXT",
        "time": "DATETIME(6)",
        "text": "LONGTEXT",
    },
}
_COLUMNS = {
    "immagent_texts": [("id", "uuid", False), ("content", "text", False), ("created_at", "time", False)],
    "immagent_messages": [
        ("id", "uuid", False),
        ("tenant", "VARCHAR(64)", False),
        ("root_id", "uuid", False),
        ("parent_id", "uuid", True),
        ("depth", "INTEGER", False),
        ("role", "VARCHAR(16)", False),
        ("content", "text", True),
        ("tool_calls", "json", True),
        ("tool_call_id", "VARCHAR(255)", True),
        ("input_tokens", "INTEGER", True),
        ("output_tokens", "INTEGER", True),
        ("created_at", "time", False),
        ("native", "exact_json", True),
    ],
    "immagent_agents": [
        ("id", "uuid", False),
        ("tenant", "VARCHAR(64)", False),
        ("root_id", "uuid", False),
        ("parent_id", "uuid", True),
        ("name", "VARCHAR(255)", False),
        ("system_prompt_id", "uuid", False),
        ("head_id", "uuid", True),
        ("model", "VARCHAR(255)", False),
        ("metadata", "json", False),
        ("model_settings", "json", False),
        ("created_at", "time", False),
    ],
    "immagent_threads": [
        ("tenant", "VARCHAR(64)", False),
        ("key", "VARCHAR(255)", False),
        ("metadata", "json", False),
        ("created_at", "time", False),
    ],
    "immagent_thread_moves": [
        ("tenant", "VARCHAR(64)", False),
        ("key", "VARCHAR(255)", False),
        ("position", "INTEGER", False),
        ("agent_id", "uuid", False),
        ("kind", "VARCHAR(16)", False),
        ("created_at", "time", False),
        ("root_id", "uuid", False),
    ],
    VERSION_TABLE: [("version_num", "VARCHAR(32)", False)],
}
_PRIMARY_KEYS = {  # a tree's rows are keyed with their tree (the Citus distribution column)
    "immagent_messages": ("id", "root_id"),
    "immagent_agents": ("id", "root_id"),
    "immagent_threads": ("tenant", "key"),
    "immagent_thread_moves": ("tenant", "key", "position"),
}


def expected_schema(backend: str) -> dict[str, Any]:
    """The whole immagent schema at head, written out by hand."""
    types = _TYPES[backend]
    tables: dict[str, Any] = {
        name: {
            "columns": {col: (types.get(kind, kind), nullable) for col, kind, nullable in columns},
            "primary_key": (f"pk_{name}", _PRIMARY_KEYS.get(name, ("id",))),
            "foreign_keys": [],
            "indexes": [],
        }
        for name, columns in _COLUMNS.items()
    }
    tables[VERSION_TABLE]["primary_key"] = (f"{VERSION_TABLE}_pkc", ("version_num",))
    if backend == "mysql":  # MySQL names every primary key PRIMARY; tables say how their text compares
        for name, table in tables.items():
            table["primary_key"] = (None, table["primary_key"][1])
            exact = name != VERSION_TABLE  # Alembic's own table keeps the database's default
            table["options"] = ("InnoDB", MYSQL_EXACT_COLLATION["mariadb"] if exact else "utf8mb4_general_ci")
    tables["immagent_messages"]["foreign_keys"] = [
        (
            "fk_immagent_messages_parent_immagent_messages",
            ("parent_id", "root_id"),
            "immagent_messages",
            ("id", "root_id"),
        )
    ]
    tables["immagent_messages"]["indexes"] = [
        ("ix_immagent_messages_parent_id_root_id", ("parent_id", "root_id"), False),
        ("ix_immagent_messages_tenant_root_id", ("tenant", "root_id"), False),
    ]
    tables["immagent_agents"]["foreign_keys"] = [
        (
            "fk_immagent_agents_head_immagent_messages",
            ("head_id", "root_id"),
            "immagent_messages",
            ("id", "root_id"),
        ),
        (
            "fk_immagent_agents_system_prompt_id_immagent_texts",
            ("system_prompt_id",),
            "immagent_texts",
            ("id",),
        ),
    ]
    tables["immagent_agents"]["indexes"] = [
        ("ix_immagent_agents_head_id_root_id", ("head_id", "root_id"), False),
        ("ix_immagent_agents_name", ("name",), False),
        ("ix_immagent_agents_parent_id", ("parent_id",), False),
        ("ix_immagent_agents_root_id", ("root_id",), False),
        ("ix_immagent_agents_system_prompt_id", ("system_prompt_id",), False),
        ("ix_immagent_agents_tenant_created_at_id", ("tenant", "created_at", "id"), False),
    ]
    tables["immagent_threads"]["indexes"] = [
        ("ix_immagent_threads_tenant_created_at_key", ("tenant", "created_at", "key"), False)
    ]
    tables["immagent_thread_moves"]["foreign_keys"] = [
        (
            "fk_immagent_thread_moves_agent_immagent_agents",
            ("agent_id", "root_id"),
            "immagent_agents",
            ("id", "root_id"),
        ),
        (
            "fk_immagent_thread_moves_thread_immagent_threads",
            ("tenant", "key"),
            "immagent_threads",
            ("tenant", "key"),
        ),
    ]
    tables["immagent_thread_moves"]["indexes"] = [
        ("ix_immagent_thread_moves_agent_id_root_id", ("agent_id", "root_id"), False)
    ]
    return {
        "tables": dict(sorted(tables.items())),
        "triggers": sorted(f"{t}_no_update" for t in _COLUMNS if t != VERSION_TABLE),
        "functions": ["immagent_refuse_update"] if backend == "postgresql" else [],
    }


async def version_rows(url: str) -> list[str]:
    return list((await read(url, rows))[VERSION_TABLE])


async def populate(store: Store) -> None:
    """A few agents with histories, a clone and a metadata child (the scripted model answers)."""
    model = ScriptedModel("migrations").install()
    try:
        first = await store.create_agent(name="one", system_prompt="be brief", model=model.model)
        second = await first.advance("hello")
        third = await second.advance("again")
        await third.clone()
        await second.with_metadata({"k": "v"})
        await store.create_agent(name="two", system_prompt="be brief", model=model.model, metadata={"a": 1})
    finally:
        model.uninstall()


# ---------------------------------------------------------------------------------------------- schema


@ON_EVERY_BACKEND
async def test_an_empty_database_upgrades_to_exactly_the_expected_schema(fresh_db_url: str) -> None:
    assert await read(fresh_db_url, schema) == {"tables": {}, "triggers": [], "functions": []}
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate()
        assert await store.schema_revision() == HEAD_REVISION
    assert await read(fresh_db_url, schema) == expected_schema(backend_of(fresh_db_url))
    assert [r[0] for r in await version_rows(fresh_db_url)] == [HEAD_REVISION]


@ON_EVERY_BACKEND
async def test_head_to_base_removes_everything_but_the_version_table_and_back_up_restores_it(
    fresh_db_url: str,
) -> None:
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate()
        await populate(store)
        await store._downgrade("base")
        assert await store.schema_revision() is None
        at_base = await read(fresh_db_url, schema)
        assert list(at_base["tables"]) == [VERSION_TABLE]
        assert at_base["triggers"] == [] and at_base["functions"] == []
        assert await version_rows(fresh_db_url) == []

        await store.migrate()
        assert await read(fresh_db_url, schema) == expected_schema(backend_of(fresh_db_url))
        assert await store.count_agents() == 0
        await populate(store)
        assert await store.count_agents() == 6


@ON_EVERY_BACKEND
async def test_a_second_upgrade_runs_no_ddl_and_changes_nothing(fresh_db_url: str) -> None:
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate()
        await populate(store)
        before = (await read(fresh_db_url, schema), await read(fresh_db_url, rows))

        statements: list[str] = []
        event.listen(store.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        await store.migrate()
        changing = [
            s
            for s in statements
            if s.split()[0].upper() in ("CREATE", "ALTER", "DROP", "INSERT", "UPDATE", "DELETE")
        ]
        assert statements, "the listener saw nothing: the test would prove nothing"
        assert changing == []
    assert (await read(fresh_db_url, schema), await read(fresh_db_url, rows)) == before


@ON_EVERY_BACKEND
async def test_the_models_and_the_migrations_agree_and_check_reports_drift(fresh_db_url: str) -> None:
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate()
        async with store.engine.connect() as conn:
            assert await conn.run_sync(drift_sync) == []
    ok = await immagent_cli("db", "check", "--url", fresh_db_url)
    assert ok.returncode == 0, ok.stderr
    assert f"revision {HEAD_REVISION} (head) matches the models" in ok.stdout

    await execute(fresh_db_url, "CREATE INDEX ix_immagent_agents_model ON immagent_agents (model)")
    drifted = await immagent_cli("db", "check", "--url", fresh_db_url)
    assert drifted.returncode == 1
    assert "remove_index" in drifted.stderr and "ix_immagent_agents_model" in drifted.stderr


async def write_0001_rows(url: str) -> dict[str, Any]:
    """Rows as immagent 0.2.0 (revision 0001) wrote them, inserted with that revision's columns: a prompt,
    a root, two turns, a clone of the second state, and an unrelated root."""
    prompt, root, other = content_id("be brief"), uuid7(), uuid7()
    texts = [{"id": prompt, "content": "be brief", "created_at": utcnow()}]
    messages, head = [], None
    for depth, (role, content) in enumerate(
        [("user", "hi"), ("assistant", "hello"), ("user", "more"), ("assistant", "ok")]
    ):
        message = {"id": uuid7(), "root_id": root, "parent_id": head, "depth": depth, "role": role,
                   "content": content, "tool_calls": None, "tool_call_id": None, "input_tokens": depth,
                   "output_tokens": None, "created_at": utcnow()}  # fmt: skip
        messages.append(message)
        head = message["id"]

    def agent(id_: UUID, root_id: UUID, parent: UUID | None, head_id: UUID | None) -> dict[str, Any]:
        return {"id": id_, "root_id": root_id, "parent_id": parent, "name": "old", "system_prompt_id": prompt,
                "head_id": head_id, "model": "immagent/upgrade", "metadata": {"k": 1}, "model_settings": {},
                "created_at": utcnow()}  # fmt: skip

    first, second = uuid7(), uuid7()
    agents = [
        agent(root, root, None, None),
        agent(first, root, root, messages[1]["id"]),
        agent(second, root, first, messages[3]["id"]),
        agent(uuid7(), root, first, messages[3]["id"]),
        agent(other, other, None, None),
    ]
    engine = create_async_engine(url)
    try:
        async with engine.begin() as conn:
            for name, values in (("texts", texts), ("messages", messages), ("agents", agents)):
                await conn.execute(insert(_TABLES_0001[f"immagent_{name}"]), values)
    finally:
        await engine.dispose()
    return {"second": second, "root": root, "messages": messages}


def _tables_0001() -> dict[str, Table]:
    """Revision 0001's columns, written out (not reflected: SQLite would report UUIDs as CHAR)."""
    metadata, time, json = MetaData(), DateTime(timezone=True), JSON(none_as_null=True)
    uuid = Uuid().with_variant(Uuid(native_uuid=False), "mysql", "mariadb")
    text_cols = [Column("id", uuid), Column("content", Text), Column("created_at", time)]
    message_cols = [Column(n, uuid) for n in ("id", "root_id", "parent_id")] + [
        Column("depth", Integer), Column("role", String(16)), Column("content", Text),
        Column("tool_calls", json), Column("tool_call_id", String(255)), Column("input_tokens", Integer),
        Column("output_tokens", Integer), Column("created_at", time),
    ]  # fmt: skip
    agent_cols = [Column(n, uuid) for n in ("id", "root_id", "parent_id")] + [
        Column("name", String(255)), Column("system_prompt_id", uuid), Column("head_id", uuid),
        Column("model", String(255)), Column("metadata", json), Column("model_settings", json),
        Column("created_at", time),
    ]  # fmt: skip
    return {
        "immagent_texts": Table("immagent_texts", metadata, *text_cols),
        "immagent_messages": Table("immagent_messages", metadata, *message_cols),
        "immagent_agents": Table("immagent_agents", metadata, *agent_cols),
    }


_TABLES_0001 = _tables_0001()


MYSQL_TRAPS = {
    "name": ("MODIFY name VARCHAR(255) COLLATE utf8mb4_general_ci NOT NULL", "column_collation"),
    "created_at": ("MODIFY created_at DATETIME NOT NULL", "datetime_precision"),
    "table": ("COLLATE utf8mb4_general_ci", "table_collation"),
}


@pytest.mark.parametrize("fresh_db_url", ["mysql"], indirect=True)
@pytest.mark.parametrize("trap", sorted(MYSQL_TRAPS))
async def test_check_reports_what_alembic_does_not_compare_on_mysql(fresh_db_url: str, trap: str) -> None:
    """A case-insensitive, PAD SPACE collation or a DATETIME without microseconds is drift on MySQL."""
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate()
    alter, kind = MYSQL_TRAPS[trap]
    await execute(fresh_db_url, f"ALTER TABLE immagent_agents {alter}")
    drifted = await immagent_cli("db", "check", "--url", fresh_db_url)
    assert drifted.returncode == 1
    assert kind in drifted.stderr and "immagent_agents" in drifted.stderr


@ON_EVERY_BACKEND
async def test_an_upgrade_from_0001_keeps_every_row_and_every_history(fresh_db_url: str) -> None:
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate("0001")
    written = await write_0001_rows(fresh_db_url)
    before = await read(fresh_db_url, rows)
    async with await Store.connect(fresh_db_url) as store:  # at 0001 the store refuses, naming the fix
        with pytest.raises(SchemaError, match=r"revision 0001, behind .*`immagent db upgrade`"):
            await store.count_agents()

    upgraded = await immagent_cli("db", "upgrade", "--url", fresh_db_url)
    assert upgraded.returncode == 0, upgraded.stderr
    after = await read(fresh_db_url, rows)
    assert after["immagent_texts"] == before["immagent_texts"]
    # Every row kept, now in the default tenant (0002), messages without a native form (0003).
    assert after["immagent_agents"] == sorted(((*r, "default") for r in before["immagent_agents"]), key=repr)
    assert after["immagent_messages"] == sorted(
        ((*r, "default", None) for r in before["immagent_messages"]), key=repr
    )
    assert after["immagent_threads"] == after["immagent_thread_moves"] == []

    async with await Store.connect(fresh_db_url) as store:
        assert await store.count_agents() == 5
        state = await store.load_agent(written["second"])
        assert state.tenant == "default"
        assert [m.content for m in await state.messages()] == ["hi", "hello", "more", "ok"]
        assert (await state.lineage())[0].id == written["root"]
        thread = await store.create_thread("old-conversation", state)
        assert (await thread.head()).id == state.id
        assert await store.tenant("acme").count_agents() == 0


@ON_EVERY_BACKEND
async def test_a_downgrade_to_0001_keeps_agents_and_messages_and_drops_threads(fresh_db_url: str) -> None:
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate()
        await populate(store)
        latest = (await store.list_agents(limit=1))[0]
        await store.create_thread("t", latest)
        at_head = await read(fresh_db_url, rows)
        await store._downgrade("0001")
        assert await store.schema_revision() == "0001"
    at_0001 = await read(fresh_db_url, rows)
    assert "immagent_threads" not in at_0001 and "immagent_thread_moves" not in at_0001
    # The same rows, without the tenant column (and, for messages, the native one).
    assert at_0001["immagent_agents"] == sorted((r[:-1] for r in at_head["immagent_agents"]), key=repr)
    assert at_0001["immagent_messages"] == sorted((r[:-2] for r in at_head["immagent_messages"]), key=repr)
    at_0001_schema = await read(fresh_db_url, schema)
    assert sorted(at_0001_schema["triggers"]) == sorted(
        f"{t}_no_update" for t in ("immagent_agents", "immagent_messages", "immagent_texts")
    )
    async with await Store.connect(fresh_db_url) as store:
        await store.migrate()
        assert await read(fresh_db_url, schema) == expected_schema(backend_of(fresh_db_url))
        assert await store.count_agents() == 6
        assert (await store.load_agent(latest.id)).head_id == latest.head_id


# ----------------------------------------------------------------------------- the ways to run them


@ON_EVERY_BACKEND
async def test_the_cli_upgrades_downgrades_and_reports_the_revision(fresh_db_url: str) -> None:
    current = await immagent_cli("db", "current", "--url", fresh_db_url)
    assert (current.returncode, current.stdout.strip()) == (0, "none (no immagent schema)")

    up = await immagent_cli("db", "upgrade", HEAD_REVISION, "--url", fresh_db_url)
    assert up.returncode == 0, up.stderr
    assert up.stdout.strip() == f"immagent schema at revision {HEAD_REVISION} (head)"
    current = await immagent_cli("db", "current", "--url", fresh_db_url)
    assert current.stdout.strip() == f"{HEAD_REVISION} (head)"
    history = await immagent_cli("db", "history", "--url", fresh_db_url)
    previous = dict((rev, down) for rev, down, _ in scripts())[HEAD_REVISION]
    assert history.stdout.splitlines()[0].startswith(f"{previous} -> {HEAD_REVISION} (head, current): ")
    assert history.stdout.splitlines()[-1].startswith("<base> -> 0001: Initial")

    down = await immagent_cli("db", "downgrade", "base", "--url", fresh_db_url)
    assert down.returncode == 0, down.stderr
    assert down.stdout.strip() == "immagent schema at revision none (no immagent schema)"
    assert list((await read(fresh_db_url, schema))["tables"]) == [VERSION_TABLE]

    bad = await immagent_cli("db", "upgrade", "nosuchrevision", "--url", fresh_db_url)
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("fresh_db_url", ["mysql"], indirect=True)
async def test_a_mariadb_url_migrates_to_the_same_schema_as_a_mysql_one(fresh_db_url: str) -> None:
    """SQLAlchemy names the dialect after the scheme (mariadb:// is "mariadb"); both get the same tables."""
    url = make_url(fresh_db_url)
    if not await read(fresh_db_url, lambda conn: conn.dialect.is_mariadb):
        pytest.skip("the test server is MySQL: mariadb:// needs a MariaDB server")
    as_mariadb = url.set(drivername="mariadb+asyncmy").render_as_string(hide_password=False)
    async with await Store.connect(as_mariadb) as store:
        await store.migrate()
        async with store.engine.connect() as conn:
            assert conn.dialect.name == "mariadb"
            assert await conn.run_sync(drift_sync) == []
    assert await read(fresh_db_url, schema) == expected_schema("mysql")


@ON_EVERY_BACKEND
async def test_alembic_runs_the_migrations_from_a_checkout(fresh_db_url: str) -> None:
    result = await run(
        sys.executable, "-m", "alembic", "-c", "alembic.ini", "upgrade", "head",
        cwd=REPO, env={"IMMAGENT_DATABASE_URL": fresh_db_url},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    previous = dict((rev, down) for rev, down, _ in scripts())[HEAD_REVISION]
    assert f"Running upgrade {previous} -> {HEAD_REVISION}" in result.stderr  # alembic.ini's logging is used
    assert await read(fresh_db_url, schema) == expected_schema(backend_of(fresh_db_url))


async def test_offline_sql_prints_the_ddl_without_touching_a_database(tmp_path: Path) -> None:
    missing = tmp_path / "never-created.db"
    lite = await immagent_cli("db", "upgrade", "--sql", "--url", f"sqlite:///{missing}")
    assert lite.returncode == 0, lite.stderr
    assert "CREATE TABLE immagent_texts" in lite.stdout
    assert "CREATE TRIGGER immagent_agents_no_update" in lite.stdout
    assert f"INSERT INTO {VERSION_TABLE} (version_num) VALUES ('0001')" in lite.stdout
    assert f"SET version_num='{HEAD_REVISION}'" in lite.stdout
    assert "CREATE TRIGGER immagent_thread_moves_no_update" in lite.stdout
    assert "ALTER TABLE immagent_messages ADD COLUMN native JSON" in lite.stdout
    assert not missing.exists()

    # Nothing listens on port 1: the PostgreSQL DDL is rendered without any connection.
    pg = await immagent_cli("db", "upgrade", "--sql", "--url", "postgresql://nobody@127.0.0.1:1/nowhere")
    assert pg.returncode == 0, pg.stderr
    assert "JSONB" in pg.stdout and "CREATE FUNCTION immagent_refuse_update()" in pg.stdout
    assert pg.stdout.lstrip().startswith("BEGIN;") and pg.stdout.rstrip().endswith("COMMIT;")

    down = await immagent_cli(
        "db", "downgrade", "base", "--sql", "--url", "postgresql://nobody@127.0.0.1:1/x"
    )
    assert down.returncode == 0, down.stderr
    assert "DROP TABLE immagent_agents" in down.stdout and f"DELETE FROM {VERSION_TABLE}" in down.stdout

    # The URL's scheme says which server: the exact collation is named differently on each.
    for scheme, collation in (("mariadb", "utf8mb4_nopad_bin"), ("mysql", "utf8mb4_0900_bin")):
        my = await immagent_cli("db", "upgrade", "--sql", "--url", f"{scheme}://nobody@127.0.0.1:1/x")
        assert my.returncode == 0, my.stderr
        assert f"COLLATE {collation}" in my.stdout and "DATETIME(6)" in my.stdout
        assert "SIGNAL SQLSTATE '45000'" in my.stdout


async def test_the_url_comes_from_the_option_else_the_environment_else_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    option, env = tmp_path / "option.db", tmp_path / "env.db"
    via_env = {"IMMAGENT_DATABASE_URL": f"sqlite:///{env}"}
    chosen = await immagent_cli("db", "upgrade", "--url", f"sqlite:///{option}", env=via_env)
    assert chosen.returncode == 0, chosen.stderr
    assert option.exists() and not env.exists()

    chosen = await immagent_cli("db", "upgrade", env=via_env)
    assert chosen.returncode == 0, chosen.stderr
    assert env.exists() and not (tmp_path / "immagent.db").exists()

    chosen = await immagent_cli("db", "upgrade")
    assert chosen.returncode == 0, chosen.stderr
    default = f"sqlite+aiosqlite:///{tmp_path / 'immagent.db'}"
    assert [r[0] for r in await version_rows(default)] == [HEAD_REVISION]


# ------------------------------------------------------------------------------ the store's schema check


@ON_EVERY_BACKEND
async def test_a_database_downgraded_to_base_fails_clearly_until_migrate(fresh_db_url: str) -> None:
    async with await Store.connect(fresh_db_url) as setup:
        await setup.migrate()
        await setup._downgrade("base")
    async with await Store.connect(fresh_db_url) as store:
        with pytest.raises(SchemaError) as caught:
            await store.create_agent(name="a", system_prompt="p", model="m")
        message = str(caught.value)
        assert "revision: none" in message and f"needs revision {HEAD_REVISION}" in message
        assert "immagent db upgrade" in message
        assert (caught.value.database_revision, caught.value.library_revision) == (None, HEAD_REVISION)
        with pytest.raises(SchemaError):
            await store.load_agent("0193a0c0-0000-7000-8000-000000000000")  # still refused, not cached
        await store.migrate()
        agent = await store.create_agent(name="a", system_prompt="p", model="m")
        assert (await store.load_agent(agent.id)) is agent


@ON_EVERY_BACKEND
async def test_a_database_a_newer_immagent_migrated_is_refused_and_left_alone(fresh_db_url: str) -> None:
    async with await Store.connect(fresh_db_url) as setup:
        await setup.migrate()
    await execute(fresh_db_url, f"UPDATE {VERSION_TABLE} SET version_num = '9001'")
    async with await Store.connect(fresh_db_url) as store:
        with pytest.raises(SchemaError) as caught:
            await store.list_agents()
        message = str(caught.value)
        assert "revision 9001" in message and f"head {HEAD_REVISION}" in message and "newer" in message
        assert "pip install -U immagent" in message
        assert (caught.value.database_revision, caught.value.library_revision) == ("9001", HEAD_REVISION)
        with pytest.raises(SchemaError, match="newer"):
            await store.migrate()
    cli = await immagent_cli("db", "upgrade", "--url", fresh_db_url)
    assert cli.returncode == 1
    assert cli.stderr.strip().splitlines() == [f"error: {message}"]
    assert [r[0] for r in await version_rows(fresh_db_url)] == ["9001"]


async def test_the_revision_is_read_once_per_store(store: Store) -> None:
    reads: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "SELECT version_num" in statement:
            reads.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", seen)
    try:
        agent = await store.create_agent(name="a", system_prompt="p", model="m")
        store.clear_cache()
        await store.load_agent(agent.id)
        await store.list_agents()
        with pytest.raises(AgentNotFoundError):
            await store.load_agent("0193a0c0-0000-7000-8000-000000000000")
    finally:
        event.remove(store.engine.sync_engine, "before_cursor_execute", seen)
    assert len(reads) == 1
