"""`skylite.aio`: the same semantics awaitable, many tasks at once, an event loop that keeps
running while requests wait, and cancellation (the request completes in the background, an
open transaction is rolled back and the next call says so once)."""
import asyncio
import math
import time

import pytest

import skylite
import skylite.aio


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def aconnect(target, **kw):
    return await skylite.aio.connect(target[1], auth_token=target[2], **kw)


def test_basic_semantics(target, name):
    async def main():
        con = await aconnect(target)
        cur = await con.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v)")
        assert cur.description is None
        cur = await con.executemany(f"INSERT INTO {name} (v) VALUES (?)", [(1,), (2.5,), ("x",)])
        assert cur.rowcount == 3 and con.in_transaction
        await con.commit()
        assert not con.in_transaction
        cur = await con.execute(f"SELECT v FROM {name} ORDER BY id")
        assert [d[0] for d in cur.description] == ["v"]
        assert await cur.fetchone() == (1,)
        assert [r async for r in cur] == [(2.5,), ("x",)]
        assert (await (await con.execute("SELECT -1e999")).fetchone())[0] == -math.inf
        # A larger result is turned into tuples off the event loop, in chunks; order kept.
        cur = await con.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 "
                                "FROM n WHERE i < 3000) SELECT i, 'x' || i FROM n")
        assert await cur.fetchone() == (1, "x1")
        assert [r[0] for r in await cur.fetchmany(9)] == list(range(2, 11))
        rest = await cur.fetchall()
        assert [r[0] for r in rest] == list(range(11, 3001)) and rest[-1] == (3000, "x3000")
        with pytest.raises(skylite.IntegrityError) as e:
            await con.execute(f"INSERT INTO {name} (id) VALUES (1)")
        assert e.value.sqlite_errorname == "SQLITE_CONSTRAINT_PRIMARYKEY"
        await con.rollback()
        await con.executescript(f"INSERT INTO {name} (v) VALUES (9); INSERT INTO {name} (v) VALUES (10);")
        cur = await con.execute(f"SELECT count(*) FROM {name}")
        assert await cur.fetchall() == [(5,)]
        async with await aconnect(target) as other:
            await other.execute(f"INSERT INTO {name} (v) VALUES (11)")
        # __aexit__ committed and closed.
        assert (await (await con.execute(f"SELECT count(*) FROM {name}")).fetchone()) == (6,)
        await con.close()
        with pytest.raises(skylite.ProgrammingError):
            await con.execute("SELECT 1")

    run(main())


def test_many_tasks_and_a_loop_that_keeps_ticking(target, name):
    async def main():
        setup = await aconnect(target)
        await setup.execute(f"CREATE TABLE {name} (t, i)")
        ticks = 0
        stop = False

        async def ticker():
            nonlocal ticks
            while not stop:
                ticks += 1
                await asyncio.sleep(0.001)

        async def worker(t):
            con = await aconnect(target)
            for i in range(10):
                await con.execute(f"INSERT INTO {name} VALUES (?, ?)", (t, i))
                await con.commit()
            await con.close()

        tick_task = asyncio.ensure_future(ticker())
        shared = await aconnect(target)
        await asyncio.gather(*(worker(t) for t in range(16)),
                             *(shared.execute("SELECT ?", (i,)) for i in range(50)))
        stop = True
        await tick_task
        assert ticks > 0
        cur = await setup.execute(f"SELECT count(*) FROM {name}")
        assert await cur.fetchone() == (160,)

    run(main())


def test_a_cancelled_await_leaves_the_connection_usable(target, name):
    async def main():
        con = await aconnect(target)
        await con.execute(f"CREATE TABLE {name} (x)")
        # Outside a transaction: the cancelled statement still completes; nothing to report.
        task = asyncio.ensure_future(con.execute(f"SELECT count(*) FROM {name}"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await (await con.execute("SELECT 1")).fetchone() == (1,)
        # Inside a transaction: it is rolled back and the next call says so once.
        await con.execute(f"INSERT INTO {name} VALUES (1)")
        assert con.in_transaction
        task = asyncio.ensure_future(con.execute(f"INSERT INTO {name} VALUES (2)"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        with pytest.raises(skylite.OperationalError, match="cancelled"):
            await con.execute("SELECT 1")
        assert not con.in_transaction
        cur = await con.execute(f"SELECT count(*) FROM {name}")
        assert await cur.fetchone() == (0,)
        # rollback() acknowledges the loss silently.
        await con.execute(f"INSERT INTO {name} VALUES (3)")
        task = asyncio.ensure_future(con.execute(f"INSERT INTO {name} VALUES (4)"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await con.rollback()
        await con.execute(f"INSERT INTO {name} VALUES (5)")
        await con.commit()
        cur = await con.execute(f"SELECT x FROM {name}")
        assert await cur.fetchall() == [(5,)]
        # A cancelled commit still commits (it runs in the background): nothing to report.
        await con.execute(f"INSERT INTO {name} VALUES (6)")
        task = asyncio.ensure_future(con.commit())
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cur = await con.execute(f"SELECT x FROM {name} ORDER BY x")
        assert await cur.fetchall() == [(5,), (6,)]
        assert not con.in_transaction
        # wait_for timeouts are cancellations too.
        try:
            await asyncio.wait_for(con.execute("SELECT 1"), 0.000001)
        except asyncio.TimeoutError:
            pass
        await con.rollback()
        assert await (await con.execute("SELECT 2")).fetchone() == (2,)
        await con.close()

    run(main())


def test_gil_is_released_while_a_request_waits(server):
    """A thread spinning in Python keeps running while another waits on the network."""
    import threading

    con = skylite.connect(server[0], auth_token=server[1])
    counter = 0
    done = False

    def spin():
        nonlocal counter
        while not done:
            counter += 1

    th = threading.Thread(target=spin)
    th.start()
    try:
        start = time.monotonic()
        for _ in range(20):
            con.execute("SELECT 1")
        assert time.monotonic() - start < 30
    finally:
        done = True
        th.join()
    assert counter > 0
