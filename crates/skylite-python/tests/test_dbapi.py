"""PEP 249 and stdlib sqlite3 compatibility of `skylite`, against the server and a local file:
module attributes, results, rowcount/lastrowid/description, parameter styles, executemany
as one request, sqlite3's transaction behaviour and its round trips, errors with SQLite's
codes, values at their edges, and threads."""
import datetime
import math
import sqlite3
import threading

import pytest

import skylite


def test_module_attributes():
    assert skylite.apilevel == "2.0"
    assert skylite.paramstyle == "qmark"
    assert skylite.threadsafety in (1, 2, 3)
    for exc in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
                "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
                "NotSupportedError"):
        assert issubclass(getattr(skylite, exc), Exception)
    assert issubclass(skylite.IntegrityError, skylite.DatabaseError)
    assert issubclass(skylite.DatabaseError, skylite.Error)
    # Code written for sqlite3 catches skylite's errors unchanged.
    assert issubclass(skylite.IntegrityError, sqlite3.IntegrityError)
    assert issubclass(skylite.OperationalError, sqlite3.OperationalError)
    assert skylite.Binary(b"x") == b"x"
    assert skylite.Date(2024, 1, 2) == datetime.date(2024, 1, 2)
    assert skylite.Timestamp(2024, 1, 2, 3, 4, 5).hour == 3
    assert isinstance(skylite.DateFromTicks(0), datetime.date)
    assert isinstance(skylite.TimeFromTicks(0), datetime.time)
    assert isinstance(skylite.TimestampFromTicks(0), datetime.datetime)


def test_results_description_rowcount_lastrowid(connect, name):
    con = connect()
    cur = con.cursor()
    cur.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, body TEXT)")
    assert cur.description is None
    cur.execute(f"INSERT INTO {name} (body) VALUES (?)", ("a",))
    assert cur.rowcount == 1
    first = cur.lastrowid
    assert isinstance(first, int)
    cur.executemany(f"INSERT INTO {name} (body) VALUES (?)", [("b",), ("c",), ("d",)])
    assert cur.rowcount == 3
    con.commit()
    cur.execute(f"UPDATE {name} SET body = upper(body) WHERE id > ?", (first,))
    assert cur.rowcount == 3
    con.commit()
    cur.execute(f"SELECT id, body FROM {name} ORDER BY id")
    assert [d[0] for d in cur.description] == ["id", "body"]
    assert all(len(d) == 7 for d in cur.description)
    assert cur.rowcount == -1
    assert cur.fetchone() == (first, "a")
    assert cur.fetchmany(2) == [(first + 1, "B"), (first + 2, "C")]
    assert cur.fetchall() == [(first + 3, "D")]
    assert cur.fetchone() is None
    assert cur.fetchall() == []
    # Iteration, arraysize, connection shortcuts.
    cur.arraysize = 3
    assert len(cur.execute(f"SELECT * FROM {name}").fetchmany()) == 3
    assert [r[1] for r in con.execute(f"SELECT * FROM {name} ORDER BY id")] == ["a", "B", "C", "D"]
    # An empty result still has a description.
    cur.execute(f"SELECT id FROM {name} WHERE 0")
    assert cur.description[0][0] == "id" and cur.fetchall() == []
    # RETURNING.
    cur.execute(f"INSERT INTO {name} (body) VALUES ('e') RETURNING id, body")
    assert cur.fetchone()[1] == "e"
    con.commit()


def test_parameter_styles(connect):
    con = connect()
    assert con.execute("SELECT ?, ?", (1, "x")).fetchone() == (1, "x")
    assert con.execute("SELECT ?2, ?1", [1, 2]).fetchone() == (2, 1)
    assert con.execute("SELECT :a, :b", {"a": 1, "b": 2}).fetchone() == (1, 2)
    assert con.execute("SELECT @a, $b", {"a": 3, "b": 4}).fetchone() == (3, 4)
    with pytest.raises(skylite.ProgrammingError):
        con.execute("SELECT ?", "not a sequence")
    with pytest.raises(skylite.ProgrammingError):
        con.execute("SELECT ?", (object(),))


def test_executemany_is_one_request(connect, name, target):
    con = connect()
    con.execute(f"CREATE TABLE {name} (x)")
    before = con.total_round_trips
    con.executemany(f"INSERT INTO {name} VALUES (?)", ((i,) for i in range(500)))
    con.commit()
    if target[0] == "remote":
        assert con.total_round_trips - before == 2  # BEGIN + 500 inserts, then COMMIT
    assert con.execute(f"SELECT count(*) FROM {name}").fetchone() == (500,)


def test_sqlite3_transactions_and_round_trips(connect, name, target):
    con = connect()
    con.execute(f"CREATE TABLE {name} (x)")
    assert not con.in_transaction  # DDL does not open a transaction (legacy control)
    con.execute(f"SELECT * FROM {name}")
    assert not con.in_transaction
    start = con.total_round_trips
    con.rollback()
    con.commit()
    assert con.total_round_trips == start, "nothing open: no request"
    con.execute(f"INSERT INTO {name} VALUES (1)")
    assert con.in_transaction
    con.commit()
    if target[0] == "remote":
        assert con.total_round_trips - start == 2, "a write transaction is two round trips"
    con.execute(f"INSERT INTO {name} VALUES (2)")
    con.rollback()
    assert not con.in_transaction
    assert con.execute(f"SELECT x FROM {name}").fetchall() == [(1,)]
    # Another connection does not see uncommitted rows.
    other = connect()
    con.execute(f"INSERT INTO {name} VALUES (3)")
    assert other.execute(f"SELECT count(*) FROM {name}").fetchone() == (1,)
    con.commit()
    assert other.execute(f"SELECT count(*) FROM {name}").fetchone() == (2,)
    # Context manager: commit on success, rollback on error; the connection stays open.
    with con:
        con.execute(f"INSERT INTO {name} VALUES (4)")
    with pytest.raises(ZeroDivisionError):
        with con:
            con.execute(f"INSERT INTO {name} VALUES (5)")
            1 / 0
    assert sorted(r[0] for r in con.execute(f"SELECT x FROM {name}")) == [1, 3, 4]


def test_isolation_level_none_and_autocommit_attribute(connect, name):
    con = connect(isolation_level=None)
    con.execute(f"CREATE TABLE {name} (x)")
    con.execute(f"INSERT INTO {name} VALUES (1)")
    assert not con.in_transaction
    con.execute("BEGIN")
    assert con.in_transaction
    con.execute(f"INSERT INTO {name} VALUES (2)")
    con.execute("ROLLBACK")
    # autocommit=False: a transaction is always open; commit() starts the next one.
    con2 = connect(autocommit=False)
    assert con2.autocommit is False
    con2.execute(f"SELECT * FROM {name}")
    assert con2.in_transaction
    con2.execute(f"INSERT INTO {name} VALUES (3)")
    con2.commit()
    con2.execute(f"INSERT INTO {name} VALUES (4)")
    con2.rollback()
    con2.autocommit = True
    con2.execute(f"INSERT INTO {name} VALUES (5)")
    assert not con2.in_transaction
    con2.commit()  # does nothing with autocommit=True
    assert sorted(r[0] for r in con.execute(f"SELECT x FROM {name}")) == [1, 3, 5]
    with pytest.raises(ValueError):
        connect(autocommit="yes")
    with pytest.raises(ValueError):
        connect(isolation_level="SOMETIMES")


def test_errors_carry_sqlite_codes(connect, name):
    con = connect()
    con.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, u UNIQUE, n NOT NULL)")
    con.execute(f"INSERT INTO {name} VALUES (1, 1, 1)")
    with pytest.raises(skylite.IntegrityError) as e:
        con.execute(f"INSERT INTO {name} VALUES (2, 1, 1)")
    assert e.value.sqlite_errorname == "SQLITE_CONSTRAINT_UNIQUE"
    assert e.value.sqlite_errorcode == 2067
    with pytest.raises(sqlite3.IntegrityError) as e:
        con.execute(f"INSERT INTO {name} VALUES (3, 3, NULL)")
    assert e.value.sqlite_errorname == "SQLITE_CONSTRAINT_NOTNULL"
    with pytest.raises(skylite.IntegrityError) as e:
        con.execute(f"INSERT INTO {name} VALUES (1, 4, 4)")
    assert e.value.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY"
    with pytest.raises(skylite.OperationalError) as e:
        con.execute("SELEC 1")
    assert e.value.sqlite_errorcode == 1 and "syntax error" in str(e.value)
    with pytest.raises(skylite.OperationalError):
        con.execute("SELECT * FROM no_such_table")
    with pytest.raises(skylite.ProgrammingError):
        con.execute("SELECT 1; SELECT 2")
    # The transaction survives a failed statement, as in sqlite3.
    assert con.in_transaction
    con.rollback()
    con.close()
    with pytest.raises(skylite.ProgrammingError):
        con.execute("SELECT 1")
    con.close()  # twice is fine


def test_values_at_their_edges(connect, name):
    con = connect()
    con.execute(f"CREATE TABLE {name} (v)")
    values = [
        None, 0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1, 0.0, -0.0, 1.5, 5e-324,
        1.7976931348623157e308, math.inf, -math.inf, "", "héllo 🌍", "a\x00b", "x" * 100_000,
        b"", b"\x00\xff" * 10, bytes(range(256)) * 4096, True, False,
    ]
    con.executemany(f"INSERT INTO {name} (rowid, v) VALUES (?, ?)",
                    [(i + 1, v) for i, v in enumerate(values)])
    con.commit()
    got = [r[0] for r in con.execute(f"SELECT v FROM {name} ORDER BY rowid")]
    expected = [int(v) if isinstance(v, bool) else v for v in values]
    for g, e in zip(got, expected):
        assert type(g) is type(e), (g, e)
        if isinstance(e, float):
            assert math.copysign(1, g) == math.copysign(1, e) and (g == e)
        else:
            assert g == e
    assert isinstance(got[6], int) and got[6] == 2**53 + 1
    with pytest.raises(OverflowError):
        con.execute("SELECT ?", (2**63,))
    assert con.execute("SELECT 1e999, -1e999").fetchone() == (math.inf, -math.inf)
    # bytearray and memoryview bind as blobs; dates as ISO text (sqlite3's default adapters).
    assert con.execute("SELECT ?, ?", (bytearray(b"ab"), memoryview(b"cd"))).fetchone() == (b"ab", b"cd")
    assert con.execute("SELECT ?, ?", (datetime.date(2024, 2, 29),
                                       datetime.datetime(2024, 2, 29, 12, 0, 1))).fetchone() \
        == ("2024-02-29", "2024-02-29 12:00:01")
    assert con.execute("SELECT typeof(?)", (1.0,)).fetchone() == ("real",)


def test_row_factory(connect):
    con = connect()
    con.row_factory = skylite.Row
    row = con.execute("SELECT 1 AS a, 'x' AS b").fetchone()
    assert row["a"] == 1 and row["B"] == "x" and row[1] == "x" and row.keys() == ["a", "b"]
    assert tuple(row) == (1, "x")
    cur = con.cursor()
    cur.row_factory = lambda cursor, r: dict(zip([d[0] for d in cursor.description], r))
    assert cur.execute("SELECT 2 AS c").fetchall() == [{"c": 2}]


def test_threads_each_with_a_connection_and_one_shared(connect, name):
    setup = connect()
    setup.execute(f"CREATE TABLE {name} (t, i)")
    shared = connect()
    errors = []

    def work(t):
        try:
            own = connect()
            for i in range(20):
                own.execute(f"INSERT INTO {name} VALUES (?, ?)", (t, i))
                own.commit()
                assert shared.execute("SELECT ?", (i,)).fetchone() == (i,)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors, errors
    assert setup.execute(f"SELECT count(*) FROM {name}").fetchone() == (160,)


def test_urls_and_memory(server, tmp_path, monkeypatch):
    url, token = server
    # ws:// is spoken as HTTP for now.
    con = skylite.connect("ws" + url[len("http"):], auth_token=token)
    assert con.execute("SELECT 1").fetchone() == (1,)
    con = skylite.connect(url.replace("http://", "libsql://") + "?tls=0", auth_token=token)
    assert con.execute("SELECT 2").fetchone() == (2,)
    # From the environment (.env works the same way, through skylite-client).
    monkeypatch.setenv("TURSO_DATABASE_URL", url)
    monkeypatch.setenv("TURSO_AUTH_TOKEN", token or "")
    monkeypatch.delenv("SKYLITE_URL", raising=False)
    con = skylite.connect()
    assert con.is_remote and con.execute("SELECT 3").fetchone() == (3,)
    # :memory: is private to its connection.
    a, b = skylite.connect(":memory:"), skylite.connect(":memory:")
    a.execute("CREATE TABLE t (x)")
    with pytest.raises(skylite.OperationalError):
        b.execute("SELECT * FROM t")
    # A path object.
    con = skylite.connect(tmp_path / "p.db")
    assert not con.is_remote
    with pytest.raises(skylite.OperationalError):
        skylite.connect("http://127.0.0.1:1", timeout=2).execute("SELECT 1")


def test_bad_token_is_operational_error_with_status(server):
    con = skylite.connect(server[0], auth_token="not-a-jwt")
    with pytest.raises(skylite.OperationalError) as e:
        con.execute("SELECT 1")
    assert e.value.http_status == 401
