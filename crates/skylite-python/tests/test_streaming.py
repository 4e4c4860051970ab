"""Streamed results: ``cursor(stream=True)`` (sync and asyncio) and SQLAlchemy's
``stream_results``/``yield_per`` read a result larger than the server's response limit with
flat memory, and the connection stays usable (including a call made before the rows are all
read). A private server with a 64 KiB response limit makes "larger" cheap."""
import asyncio

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

import skylite
import skylite.aio

BIG = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
       "SELECT i, printf('%0100d', i) AS pad FROM n")


@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    import os
    import socket
    import subprocess
    import time
    import urllib.request

    binary = os.environ.get("SKYLITE_BIN")
    if not binary:
        pytest.skip("SKYLITE_BIN is not set; run the suite through scripts/test.sh")
    data = tmp_path_factory.mktemp("small")
    token = subprocess.run([binary, "token", "create", "--data-dir", str(data), "--expires", "1d",
                            "--db", "default"], capture_output=True, text=True, check=True).stdout.strip()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", str(data),
                             "--max-response-size", "65536"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/health", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    yield url, token
    proc.terminate()
    proc.wait(10)


def test_sync_stream(small_server):
    url, token = small_server
    con = skylite.connect(url, auth_token=token)
    # A read larger than one response falls back to streaming by itself.
    rows = con.execute(BIG).fetchall()
    assert len(rows) == 20000 and rows[-1][0] == 20000
    # A write's result that does not fit is an error, never re-run.
    con.execute("CREATE TABLE IF NOT EXISTS big_w (i, pad)")
    with pytest.raises(skylite.OperationalError) as e:
        con.execute(f"INSERT INTO big_w {BIG} RETURNING *")
    assert e.value.sqlite_errorname == "RESPONSE_TOO_LARGE"
    con.rollback()
    cur = con.cursor(stream=True)
    cur.execute(BIG)
    assert [d[0] for d in cur.description] == ["i", "pad"]
    assert cur.fetchone()[0] == 1
    assert [r[0] for r in cur.fetchmany(3)] == [2, 3, 4]
    n = 4
    for row in cur:
        n += 1
        assert row[0] == n
    assert n == 20000
    # A call while a streamed result is unread: the rest is buffered first.
    cur.execute(BIG)
    assert con.execute("SELECT 7").fetchone() == (7,)
    assert len(cur.fetchall()) == 20000
    with pytest.raises(skylite.OperationalError):
        con.cursor(stream=True).execute("SELECT * FROM nope")


def test_aio_stream(small_server):
    url, token = small_server

    async def main():
        con = await skylite.aio.connect(url, auth_token=token)
        assert len(await (await con.execute(BIG)).fetchall()) == 20000
        cur = con.cursor(stream=True)
        await cur.execute(BIG)
        n = 0
        async for row in cur:
            n += 1
        assert n == 20000
        await cur.execute(BIG)
        assert len(await cur.fetchmany(10)) == 10
        assert await (await con.execute("SELECT 1")).fetchone() == (1,)
        assert len(await cur.fetchall()) == 19990
        await con.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_sqlalchemy_stream_results(small_server):
    url, token = small_server
    host = url[len("http://"):]
    engine = create_engine(f"sqlite+skylite://{host}/?authToken={token}")
    with engine.connect() as c:
        result = c.execution_options(stream_results=True).execute(text(BIG))
        assert sum(len(p) for p in result.partitions(1000)) == 20000
    engine.dispose()

    async def main():
        aengine = create_async_engine(f"sqlite+skylite://{host}/?authToken={token}")
        async with aengine.connect() as c:
            result = await c.stream(text(BIG))
            n = 0
            async for _ in result:
                n += 1
            assert n == 20000
        await aengine.dispose()

    asyncio.run(asyncio.wait_for(main(), 60))
