"""Python `libsql-client` (sync and async) against skylite over http:// AND ws://.

Over http this client uses the Hrana-over-HTTP v1 endpoints (/v1/execute, /v1/batch);
it has no interactive transactions over http (it says so with TRANSACTIONS_NOT_SUPPORTED).
Over ws it speaks Hrana over WebSocket (subprotocol hrana2 only, one socket per client).
Every scenario in the `client` fixture runs four times: http/ws x sync/async.
ws-only features (interactive transactions, the dbapi2 module) are in test_libsql_client_ws.py.
Every client authenticates with the read-write token for `default` (tokens.token()); the auth
scenarios at the end use the read-only token, no/garbage tokens and a token for another database.
"""
import asyncio
import threading
import uuid

import libsql_client
import pytest

from tokens import mint, ro_token, token
I64_MAX = 2**63 - 1
I64_MIN = -(2**63)


class AsyncAdapter:
    """Drives the async client from a synchronous test through its own event loop."""

    def __init__(self, url, auth_token):
        self.loop = asyncio.new_event_loop()

        async def make():
            return libsql_client.create_client(url, auth_token=auth_token)

        self.client = self.loop.run_until_complete(make())

    def execute(self, stmt, args=None):
        return self.loop.run_until_complete(self.client.execute(stmt, args))

    def batch(self, stmts):
        return self.loop.run_until_complete(self.client.batch(stmts))

    def transaction(self):
        async def begin():
            return self.client.transaction()  # over ws it sends BEGIN on a new stream

        return AsyncTransactionAdapter(self.loop, self.loop.run_until_complete(begin()))

    def close(self):
        self.loop.run_until_complete(self.client.close())
        self.loop.close()


class AsyncTransactionAdapter:
    """The async client's transaction driven through the adapter's event loop."""

    def __init__(self, loop, tx):
        self.loop, self.tx = loop, tx

    def execute(self, stmt, args=None):
        return self.loop.run_until_complete(self.tx.execute(stmt, args))

    def commit(self):
        return self.loop.run_until_complete(self.tx.commit())

    def rollback(self):
        return self.loop.run_until_complete(self.tx.rollback())

    def close(self):
        async def close():
            self.tx.close()  # sends close_stream, which needs the running loop

        self.loop.run_until_complete(close())

    @property
    def closed(self):
        return self.tx.closed

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


_DEFAULT = object()


def make_client(url, mode, auth_token=_DEFAULT):
    """A sync client or the async one behind AsyncAdapter; the read-write token unless told."""
    if auth_token is _DEFAULT:
        auth_token = token()
    if mode == "sync":
        return libsql_client.create_client_sync(url, auth_token=auth_token)
    return AsyncAdapter(url, auth_token)


@pytest.fixture(params=["http-sync", "http-async", "ws-sync", "ws-async"])
def client(request, server_url, ws_url):
    scheme, mode = request.param.split("-")
    c = make_client(server_url if scheme == "http" else ws_url, mode)
    yield c
    c.close()


@pytest.fixture(params=["sync", "async"])
def http_client(request, server_url):
    c = make_client(server_url, request.param)
    yield c
    c.close()


@pytest.fixture(params=["http", "ws"])
def any_url(request, server_url, ws_url):
    return server_url if request.param == "http" else ws_url


def count(client, table):
    return client.execute(f"SELECT count(*) FROM {table}").rows[0][0]


def test_all_value_types_round_trip(client, name):
    client.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v)")
    values = [
        I64_MAX, I64_MIN, -1, -42, 0, 7,
        3.5, -0.25, 0.1 + 0.2, 1e300, -2.5e-300,
        "", "plain", "héllo wörld 🎉🚀 中文字符 日本語 한국어",
        b"", b"\x00", b"\x00\x01\x00\xff\x00", bytes(range(256)),
        None,
    ]
    for v in values:
        client.execute(f"INSERT INTO {name} (v) VALUES (?)", [v])
    rs = client.execute(f"SELECT v, typeof(v) FROM {name} ORDER BY id")
    assert rs.columns == ("v", "typeof(v)")
    got = [row[0] for row in rs.rows]
    assert got == values
    for sent, row in zip(values, rs.rows):
        assert type(row[0]) is type(sent), (sent, row[0])
    expected_types = {int: "integer", float: "real", str: "text", bytes: "blob", type(None): "null"}
    assert [row[1] for row in rs.rows] == [expected_types[type(v)] for v in values]


def test_literal_extremes_and_row_access(client):
    rs = client.execute(
        "SELECT 9223372036854775807 AS max, -9223372036854775808 AS min, -17 AS neg, "
        "1.5 AS f, 'ü🎉' AS t, x'00ff00' AS b, NULL AS n"
    )
    assert rs.columns == ("max", "min", "neg", "f", "t", "b", "n")
    row = rs.rows[0]
    assert row.astuple() == (I64_MAX, I64_MIN, -17, 1.5, "ü🎉", b"\x00\xff\x00", None)
    assert row["max"] == I64_MAX and row["b"] == b"\x00\xff\x00"
    assert len(rs) == 1


def test_named_arguments(client, name):
    client.execute(f"CREATE TABLE {name} (a INTEGER, b TEXT, c REAL)")
    client.execute(f"INSERT INTO {name} VALUES (:a, @b, $c)", {"a": 1, "b": "x", "c": 2.5})
    rs = client.execute(f"SELECT a, b, c FROM {name} WHERE a = :a", {"a": 1})
    assert [r.astuple() for r in rs.rows] == [(1, "x", 2.5)]


def test_rows_affected_and_last_insert_rowid(client, name):
    client.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)")
    rs = client.execute(f"INSERT INTO {name} (id, v) VALUES (41, 'a')")
    assert rs.rows_affected == 1
    assert rs.last_insert_rowid == 41
    rs = client.execute(f"INSERT INTO {name} (v) VALUES ('b'), ('c'), ('d')")
    assert rs.rows_affected == 3
    assert rs.last_insert_rowid == 44
    rs = client.execute(f"UPDATE {name} SET v = 'z' WHERE id >= 42")
    assert rs.rows_affected == 3
    rs = client.execute(f"DELETE FROM {name} WHERE v = 'z'")
    assert rs.rows_affected == 3
    assert count(client, name) == 1


def test_batch_runs_all_statements(client, name):
    results = client.batch([
        f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)",
        (f"INSERT INTO {name} (v) VALUES (?)", ["one"]),
        (f"INSERT INTO {name} (v) VALUES (:v)", {"v": "two"}),
        f"SELECT id, v FROM {name} ORDER BY id",
    ])
    assert len(results) == 4
    assert results[1].rows_affected == 1 and results[1].last_insert_rowid == 1
    assert results[2].last_insert_rowid == 2
    assert [r.astuple() for r in results[3].rows] == [(1, "one"), (2, "two")]


@pytest.mark.parametrize("bad_stmt, message", [
    ("INSERT INTO {t} (id) VALUES (1)", "UNIQUE constraint failed: {t}.id"),
    ("INSERT INTO {t} (no_such_column) VALUES (1)", "has no column named no_such_column"),
    ("INSRT INTO {t} VALUES (1)", "syntax error"),
])
def test_failing_batch_rolls_back_everything(client, name, bad_stmt, message):
    client.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY)")
    client.execute(f"INSERT INTO {name} (id) VALUES (1)")
    with pytest.raises(libsql_client.LibsqlError) as err:
        client.batch([
            f"INSERT INTO {name} (id) VALUES (2)",
            f"INSERT INTO {name} (id) VALUES (3)",
            bad_stmt.format(t=name),
            f"INSERT INTO {name} (id) VALUES (4)",
        ])
    assert message.format(t=name) in err.value.explanation
    rows = client.execute(f"SELECT id FROM {name} ORDER BY id").rows
    assert [r[0] for r in rows] == [1]


def test_sql_errors_reach_client_as_libsql_error(client, name):
    client.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, email TEXT UNIQUE)")
    client.execute(f"INSERT INTO {name} (email) VALUES ('a@example.com')")
    with pytest.raises(libsql_client.LibsqlError) as err:
        client.execute(f"INSERT INTO {name} (email) VALUES (?)", ["a@example.com"])
    assert f"UNIQUE constraint failed: {name}.email" in err.value.explanation
    assert err.value.code.startswith("SQLITE_CONSTRAINT"), err.value.code

    with pytest.raises(libsql_client.LibsqlError) as err:
        client.execute("SELEC 1")
    assert "syntax error" in err.value.explanation
    assert err.value.code not in ("UNKNOWN", "SERVER_ERROR"), err.value.code

    with pytest.raises(libsql_client.LibsqlError) as err:
        client.execute("SELECT * FROM no_such_table_anywhere")
    assert "no such table: no_such_table_anywhere" in err.value.explanation
    # the client is still usable after errors
    assert count(client, name) == 1


def test_ten_thousand_rows(client, name):
    client.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, label TEXT, half REAL)")
    rs = client.execute(
        f"WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 10000) "
        f"INSERT INTO {name} SELECT x, 'row-' || x, x / 2.0 FROM n"
    )
    assert rs.rows_affected == 10000
    rs = client.execute(f"SELECT id, label, half FROM {name} ORDER BY id")
    assert len(rs.rows) == 10000
    for i, row in enumerate(rs.rows, start=1):
        assert row.astuple() == (i, f"row-{i}", i / 2)


def test_large_text_and_blob(client, name):
    client.execute(f"CREATE TABLE {name} (t TEXT, b BLOB)")
    text = "日本語🎉" * 50_000
    blob = bytes(range(256)) * 4_000
    client.execute(f"INSERT INTO {name} VALUES (?, ?)", [text, blob])
    row = client.execute(f"SELECT t, b, length(t), length(b) FROM {name}").rows[0]
    assert row.astuple() == (text, blob, len(text), len(blob))


def test_vector_search(client, name):
    client.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, e F32_BLOB(3))")
    client.execute(f"CREATE INDEX {name}_idx ON {name} (libsql_vector_idx(e))")
    client.batch([
        f"INSERT INTO {name} (id, e) VALUES (1, vector32('[1,2,3]'))",
        f"INSERT INTO {name} (id, e) VALUES (2, vector32('[1,2,4]'))",
        f"INSERT INTO {name} (id, e) VALUES (3, vector32('[-1,-2,-3]'))",
    ])
    rs = client.execute(
        f"SELECT t.id, vector_distance_cos(t.e, vector32('[1,2,3]')) AS d, vector_extract(t.e) "
        f"FROM vector_top_k('{name}_idx', vector32('[1,2,3]'), 2) AS k "
        f"JOIN {name} AS t ON t.rowid = k.id ORDER BY d"
    )
    assert [r[0] for r in rs.rows] == [1, 2]
    assert rs.rows[0][1] == pytest.approx(0.0, abs=1e-6)
    assert 0 < rs.rows[1][1] < 0.05
    assert rs.rows[0][2] == "[1,2,3]"
    far = client.execute(f"SELECT vector_distance_cos(e, vector32('[1,2,3]')) FROM {name} WHERE id = 3")
    assert far.rows[0][0] == pytest.approx(2.0, abs=1e-6)


def test_interactive_transactions_are_refused_over_http(http_client):
    with pytest.raises(libsql_client.LibsqlError) as err:
        http_client.transaction()
    assert err.value.code == "TRANSACTIONS_NOT_SUPPORTED"


def test_transaction_left_open_by_one_request_does_not_leak(client, name):
    # Each execute runs on a fresh stream (a /v1 request over http, open_stream..close_stream
    # over ws); a BEGIN left open must be rolled back when that stream ends, so it neither
    # keeps the write lock nor hides rows.
    client.execute(f"CREATE TABLE {name} (id INTEGER)")
    client.execute("BEGIN IMMEDIATE")
    client.execute(f"INSERT INTO {name} VALUES (1)")
    assert count(client, name) == 1


def test_twenty_concurrent_async_clients(any_url, name):
    async def worker(i, table):
        c = libsql_client.create_client(any_url, auth_token=token())
        try:
            for j in range(10):
                await c.execute(f"INSERT INTO {table} (worker, n) VALUES (?, ?)", [i, j])
            await c.batch([(f"INSERT INTO {table} (worker, n) VALUES (?, ?)", [i, 100 + j]) for j in range(5)])
            rs = await c.execute(f"SELECT n FROM {table} WHERE worker = ? ORDER BY n", [i])
            return [r[0] for r in rs.rows]
        finally:
            await c.close()

    async def main():
        setup = libsql_client.create_client(any_url, auth_token=token())
        await setup.execute(f"CREATE TABLE {name} (worker INTEGER, n INTEGER, PRIMARY KEY (worker, n))")
        results = await asyncio.gather(*(worker(i, name) for i in range(20)))
        total = (await setup.execute(f"SELECT count(*) FROM {name}")).rows[0][0]
        await setup.close()
        return results, total

    results, total = asyncio.run(main())
    expected = list(range(10)) + list(range(100, 105))
    assert all(r == expected for r in results)
    assert total == 20 * 15


def test_twenty_concurrent_sync_clients_in_threads(any_url, name):
    with libsql_client.create_client_sync(any_url, auth_token=token()) as setup:
        setup.execute(f"CREATE TABLE {name} (worker INTEGER, n INTEGER)")
    results, errors = {}, []

    def worker(i):
        try:
            with libsql_client.create_client_sync(any_url, auth_token=token()) as c:
                for j in range(10):
                    c.execute(f"INSERT INTO {name} VALUES (?, ?)", [i, j])
                rows = c.execute(f"SELECT n FROM {name} WHERE worker = ? ORDER BY n", [i]).rows
                results[i] = [r[0] for r in rows]
        except Exception as e:  # collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert sorted(results) == list(range(20))
    assert all(v == list(range(10)) for v in results.values())


# ---- authentication and read-only tokens -------------------------------------------------

@pytest.fixture(params=["http-sync", "http-async", "ws-sync", "ws-async"])
def transport(request, server_url, ws_url):
    """(url, mode) for each of the four ways this client talks to the server."""
    scheme, mode = request.param.split("-")
    return (server_url if scheme == "http" else ws_url), mode


@pytest.fixture(scope="module")
def ro_table(server_url):
    """A table in `default` holding rows 1 and 2, made with the read-write token."""
    table = "ro_" + uuid.uuid4().hex[:12]
    with libsql_client.create_client_sync(server_url, auth_token=token()) as c:
        c.batch([f"CREATE TABLE {table} (id INTEGER PRIMARY KEY, v TEXT)",
                 f"INSERT INTO {table} VALUES (1, 'one'), (2, 'two')"])
    return table


def rows_of(server_url, table):
    with libsql_client.create_client_sync(server_url, auth_token=token()) as c:
        return [r.astuple() for r in c.execute(f"SELECT id, v FROM {table} ORDER BY id").rows]


def test_read_only_token_reads_but_writes_are_refused(transport, server_url, ro_table):
    url, mode = transport
    c = make_client(url, mode, ro_token())
    try:
        assert [r[0] for r in c.execute(f"SELECT v FROM {ro_table} ORDER BY id").rows] == ["one", "two"]
        for write in (lambda: c.execute(f"INSERT INTO {ro_table} VALUES (3, 'three')"),
                      lambda: c.batch([f"SELECT 1", f"UPDATE {ro_table} SET v = 'x'"]),
                      lambda: c.execute(f"CREATE TABLE {ro_table}_new (x)")):
            with pytest.raises(libsql_client.LibsqlError) as err:
                write()
            assert "read-only" in err.value.explanation, err.value
            assert err.value.code in ("SQLITE_READONLY", "SQLITE_AUTH"), err.value.code
        # the client is still usable for reads after the refusals
        assert c.execute(f"SELECT count(*) FROM {ro_table}").rows[0][0] == 2
    finally:
        c.close()
    assert rows_of(server_url, ro_table) == [(1, "one"), (2, "two")]


def test_read_only_token_cannot_write_in_a_ws_transaction(ws_url, server_url, ro_table):
    c = make_client(ws_url, "sync", ro_token())
    try:
        tx = c.transaction()
        try:
            assert tx.execute(f"SELECT count(*) FROM {ro_table}").rows[0][0] == 2
            with pytest.raises(libsql_client.LibsqlError) as err:
                tx.execute(f"DELETE FROM {ro_table}")
            assert "read-only" in err.value.explanation, err.value
        finally:
            tx.close()
    finally:
        c.close()
    assert rows_of(server_url, ro_table) == [(1, "one"), (2, "two")]


@pytest.mark.parametrize("bad_token", [None, "", "garbage", "a.b.c"], ids=["none", "empty", "garbage", "not-a-jwt"])
def test_missing_or_garbage_token_is_an_authentication_error(transport, bad_token):
    # without a token this client sends "authorization: Bearer None" over http and a hello
    # with jwt null over ws; the server answers 401 (http) or hello_error (ws)
    url, mode = transport
    c = make_client(url, mode, bad_token)
    try:
        with pytest.raises(libsql_client.LibsqlError) as err:
            c.execute("SELECT 1")
    finally:
        try:
            c.close()
        except libsql_client.LibsqlError:
            pass  # the ws client re-raises the hello_error when closed
    if url.startswith("http"):
        # a 401 whose status the client shows (as against sqld): the body has no `message`,
        # which this client would otherwise report without the status
        assert err.value.code == "SERVER_ERROR" and "401" in str(err.value), err.value
    else:
        # the hello_error gives code and message
        assert err.value.code in ("AUTH_JWT_MISSING", "AUTH_JWT_INVALID"), err.value
        assert "token" in err.value.explanation, err.value


def test_token_for_another_database_is_refused_on_default(transport):
    url, mode = transport
    c = make_client(url, mode, mint("--db", "other"))
    try:
        with pytest.raises(libsql_client.LibsqlError) as err:
            c.execute("SELECT 1")
    finally:
        try:
            c.close()
        except libsql_client.LibsqlError:
            pass
    if url.startswith("http"):
        assert err.value.code == "SERVER_ERROR" and "403" in str(err.value), err.value
    else:
        assert err.value.code == "AUTH_DATABASE_FORBIDDEN", err.value
        assert "`other`, not `default`" in err.value.explanation, err.value
