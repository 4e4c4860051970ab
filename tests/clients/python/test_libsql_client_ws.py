"""Python `libsql-client` 0.3.1 features that exist only over ws:// (Hrana over WebSocket).

The shared scenarios (values, args, batches, errors, 10,000 rows, concurrency, vectors) run
over ws:// from test_libsql_client.py. This file covers what the http transport lacks:
the negotiated subprotocol, interactive transactions (`client.transaction()`, sync and async),
and the package's sqlite3-style `libsql_client.dbapi2` module, which is this client's way to
run a script (`executescript` -> Hrana `sequence`) and `executemany` (stored SQL + batch).
"""
import asyncio
import sqlite3

import libsql_client
import libsql_client.dbapi2 as dbapi2
import pytest

from test_libsql_client import make_client
from tokens import token


@pytest.fixture(params=["sync", "async"])
def ws_client(request, ws_url):
    c = make_client(ws_url, request.param)
    yield c
    c.close()


def count(client, table):
    return client.execute(f"SELECT count(*) FROM {table}").rows[0][0]


def test_negotiates_hrana2(ws_url):
    async def main():
        async with libsql_client.create_client(ws_url, auth_token=token()) as c:
            assert (await c.execute("SELECT 'hello'")).rows[0][0] == "hello"
            # the client offers only "hrana2"; the socket is the client's one connection
            return c._conn._socket.protocol

    assert asyncio.run(main()) == "hrana2"


def test_transaction_commit_makes_rows_visible_and_errors_do_not_end_it(ws_client, name):
    ws_client.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)")
    tx = ws_client.transaction()
    try:
        rs = tx.execute(f"INSERT INTO {name} (id, v) VALUES (?, ?)", [1, "one"])
        assert rs.rows_affected == 1 and rs.last_insert_rowid == 1
        tx.execute(f"INSERT INTO {name} (id, v) VALUES (:id, :v)", {"id": 2, "v": "två 🎉"})
        with pytest.raises(libsql_client.LibsqlError) as err:
            tx.execute(f"INSERT INTO {name} (id) VALUES (1)")
        assert f"UNIQUE constraint failed: {name}.id" in err.value.explanation
        assert err.value.code.startswith("SQLITE_CONSTRAINT"), err.value.code
        assert count(tx, name) == 2, "the transaction sees its own writes"
        assert count(ws_client, name) == 0, "others do not see uncommitted writes"
        tx.commit()
    finally:
        tx.close()
    assert tx.closed
    rows = ws_client.execute(f"SELECT id, v FROM {name} ORDER BY id").rows
    assert [r.astuple() for r in rows] == [(1, "one"), (2, "två 🎉")]


def test_transaction_rollback_discards_everything(ws_client, name):
    ws_client.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)")
    ws_client.execute(f"INSERT INTO {name} VALUES (1)")
    tx = ws_client.transaction()
    tx.execute(f"INSERT INTO {name} VALUES (2)")
    tx.execute(f"DELETE FROM {name} WHERE id = 1")
    assert [r[0] for r in tx.execute(f"SELECT id FROM {name}").rows] == [2]
    tx.rollback()
    assert tx.closed
    assert [r[0] for r in ws_client.execute(f"SELECT id FROM {name}").rows] == [1]
    # the write lock is free again
    ws_client.execute(f"INSERT INTO {name} VALUES (3)")
    assert count(ws_client, name) == 2


def test_closing_a_transaction_without_commit_rolls_it_back(ws_client, name):
    ws_client.execute(f"CREATE TABLE {name} (id INTEGER)")
    with ws_client.transaction() as tx:
        tx.execute(f"INSERT INTO {name} VALUES (1)")
    ws_client.execute(f"INSERT INTO {name} VALUES (2)")
    assert [r[0] for r in ws_client.execute(f"SELECT id FROM {name}").rows] == [2]


def test_a_committed_transaction_refuses_more_statements(ws_client, name):
    ws_client.execute(f"CREATE TABLE {name} (id INTEGER)")
    tx = ws_client.transaction()
    tx.execute(f"INSERT INTO {name} VALUES (1)")
    tx.commit()
    with pytest.raises(libsql_client.LibsqlError) as err:
        tx.execute(f"INSERT INTO {name} VALUES (2)")
    assert err.value.code == "TRANSACTION_CLOSED"
    assert count(ws_client, name) == 1


def test_transaction_with_every_value_type_and_a_large_result(ws_client, name):
    ws_client.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v)")
    values = [2**63 - 1, -(2**63), -5, 2.5, "ü🎉", b"\x00\x00\xff", None]
    tx = ws_client.transaction()
    for v in values:
        tx.execute(f"INSERT INTO {name} (v) VALUES (?)", [v])
    tx.execute(
        f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10000) "
        f"INSERT INTO {name} (v) SELECT x FROM n"
    )
    rows = tx.execute(f"SELECT v FROM {name} ORDER BY id").rows
    tx.commit()
    assert [r[0] for r in rows[: len(values)]] == values
    assert [r[0] for r in rows[len(values):]] == list(range(1, 10001))


def test_twenty_concurrent_async_transactions(ws_url, name):
    async def worker(i):
        async with libsql_client.create_client(ws_url, auth_token=token()) as c:
            tx = c.transaction()
            try:
                await tx.execute(f"INSERT INTO {name} VALUES (?, 0)", [i])
                await tx.execute(f"INSERT INTO {name} VALUES (?, 1)", [i])
                await tx.commit()
            finally:
                tx.close()

    async def main():
        async with libsql_client.create_client(ws_url, auth_token=token()) as c:
            await c.execute(f"CREATE TABLE {name} (worker INTEGER, n INTEGER)")
            await asyncio.gather(*(worker(i) for i in range(20)))
            rs = await c.execute(f"SELECT worker, group_concat(n) FROM {name} GROUP BY worker ORDER BY worker")
            return [r.astuple() for r in rs.rows]

    assert asyncio.run(main()) == [(i, "0,1") for i in range(20)]


# ---- libsql_client.dbapi2 (sqlite3-compatible module over ws://) --------------------------

@pytest.fixture
def dbapi_conn(ws_url):
    conn = dbapi2.connect(ws_url, auth_token=token())
    yield conn
    conn.close()


def test_dbapi_connect_gives_a_remote_connection(dbapi_conn):
    assert type(dbapi_conn).__name__ == "ConnectionHrana"
    row = dbapi_conn.execute("SELECT 9223372036854775807, -3, x'00ff00', 1.5, NULL, 'ü🎉'").fetchone()
    assert row == (2**63 - 1, -3, b"\x00\xff\x00", 1.5, None, "ü🎉")


def test_dbapi_executescript_runs_a_sequence(dbapi_conn, name):
    cur = dbapi_conn.cursor()
    cur.executescript(f"""
        CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT);
        INSERT INTO {name} (v) VALUES ('a');
        INSERT INTO {name} (v) VALUES ('b; not a separator');
        UPDATE {name} SET v = upper(v) WHERE id = 1;
    """)
    assert cur.execute(f"SELECT v FROM {name} ORDER BY id").fetchall() == [("A",), ("b; not a separator",)]
    # a failing statement stops the script; the statements before it have run
    with pytest.raises(libsql_client.LibsqlError) as err:
        cur.executescript(f"INSERT INTO {name} (v) VALUES ('c'); SELEC 1; INSERT INTO {name} (v) VALUES ('d');")
    assert "syntax error" in err.value.explanation
    assert [r[0] for r in cur.execute(f"SELECT v FROM {name} ORDER BY id").fetchall()] == ["A", "b; not a separator", "c"]


def test_dbapi_executemany_commit_and_rollback(dbapi_conn, name):
    cur = dbapi_conn.cursor()
    cur.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)")
    dbapi_conn.commit()
    # executemany stores the SQL once (store_sql) and runs it in one batch by sql_id
    cur.executemany(f"INSERT INTO {name} (v) VALUES (?)", [("a",), ("b",), ("c",)])
    assert cur.rowcount == 3
    assert dbapi_conn.in_transaction
    dbapi_conn.rollback()
    assert cur.execute(f"SELECT count(*) FROM {name}").fetchone() == (0,)
    cur.executemany(f"INSERT INTO {name} (v) VALUES (:v)", [{"v": "x"}, {"v": "y"}])
    cur.execute(f"INSERT INTO {name} (v) VALUES (?)", ("z",))
    assert cur.lastrowid == 3
    dbapi_conn.commit()
    assert not dbapi_conn.in_transaction
    rows = cur.execute(f"SELECT id, v FROM {name} ORDER BY id").fetchall()
    assert rows == [(1, "x"), (2, "y"), (3, "z")]
    assert [d[0] for d in cur.description] == ["id", "v"]


def test_dbapi_errors_are_sqlite3_exceptions(dbapi_conn, name):
    dbapi_conn.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)")
    dbapi_conn.execute(f"INSERT INTO {name} VALUES (1)")
    dbapi_conn.commit()
    with pytest.raises(sqlite3.OperationalError, match="syntax error"):
        dbapi_conn.execute("SELEC 1")
    with pytest.raises(sqlite3.DatabaseError, match=f"UNIQUE constraint failed: {name}.id"):
        dbapi_conn.execute(f"INSERT INTO {name} VALUES (1)")
    dbapi_conn.rollback()
    assert dbapi_conn.execute(f"SELECT count(*) FROM {name}").fetchone() == (1,)
