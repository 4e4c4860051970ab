"""How asyncio requests complete: outcomes come back through one completion queue per event
loop (no I/O thread takes the GIL), many tasks on many connections complete correctly, a new
event loop gets its own queue, and a large buffered result is made into rows a slice at a time
with other tasks running in between (sync and SQLAlchemy async alike)."""
import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import skylite.aio
from skylite import _common
from test_sqlalchemy import sa_url

N = 3000


async def _fill(con, name):
    await con.execute(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)")
    await con.executemany(f"INSERT INTO {name} (v) VALUES (?)", [(f"v{i}",) for i in range(N)])
    await con.commit()


def test_many_tasks_on_many_connections(target, name):
    async def main():
        cons = [await skylite.aio.connect(target[1], auth_token=target[2]) for _ in range(8)]
        await _fill(cons[0], name)

        async def read(con, i):
            cur = await con.execute(f"SELECT v FROM {name} WHERE id = ?", (i % N + 1,))
            return await cur.fetchone()

        got = await asyncio.gather(*(read(cons[i % 8], i) for i in range(400)))
        assert got == [(f"v{i % N}",) for i in range(400)]
        for con in cons:
            await con.close()
        assert asyncio.get_running_loop() in _common._wakers

    asyncio.run(asyncio.wait_for(main(), 60))
    # A new loop: a new queue, and connections opened there complete on it.

    async def again():
        con = await skylite.aio.connect(target[1], auth_token=target[2])
        assert (await (await con.execute(f"SELECT count(*) FROM {name}")).fetchone()) == (N,)
        assert asyncio.get_running_loop() in _common._wakers
        await con.close()

    asyncio.run(asyncio.wait_for(again(), 60))


def test_large_results_are_converted_in_slices(target, name):
    async def main():
        con = await skylite.aio.connect(target[1], auth_token=target[2])
        await _fill(con, name)
        turns = 0
        stop = False

        async def ticker():
            nonlocal turns
            while not stop:
                turns += 1
                await asyncio.sleep(0)

        tick = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        cur = await con.execute(f"SELECT id, v FROM {name} ORDER BY id")
        before = turns
        rows = await cur.fetchall()
        during = turns - before
        stop = True
        await tick
        assert rows == [(i + 1, f"v{i}") for i in range(N)]
        # The loop ran the ticker between slices.
        assert during >= N // skylite.aio.Cursor.SLICE - 1, during

        cur = await con.execute(f"SELECT id FROM {name} ORDER BY id")
        assert await cur.fetchone() == (1,)
        assert [r[0] for r in await cur.fetchmany(2 * skylite.aio.Cursor.SLICE + 5)] == list(
            range(2, 2 * skylite.aio.Cursor.SLICE + 7))
        rest = await cur.fetchall()
        assert len(rest) == N - 2 * skylite.aio.Cursor.SLICE - 6 and rest[-1] == (N,)
        assert await cur.fetchall() == [] and await cur.fetchone() is None
        await con.close()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_sqlalchemy_async_large_result(target, name):
    async def main():
        con = await skylite.aio.connect(target[1], auth_token=target[2])
        await _fill(con, name)
        await con.close()
        engine = create_async_engine(sa_url(target))
        async with engine.connect() as c:
            rows = (await c.execute(text(f"SELECT id, v FROM {name} ORDER BY id"))).all()
            assert len(rows) == N and tuple(rows[-1]) == (N, f"v{N - 1}")
            result = await c.execute(text(f"SELECT id FROM {name} ORDER BY id"))
            assert [r[0] for r in result.fetchmany(1000)] == list(range(1, 1001))
            assert len(result.fetchall()) == N - 1000
        await engine.dispose()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_cancelled_awaits_still_complete_through_the_queue(target, name):
    async def main():
        con = await skylite.aio.connect(target[1], auth_token=target[2])
        await _fill(con, name)
        task = asyncio.ensure_future(con.execute(f"SELECT count(*) FROM {name}"))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The connection goes on; the cancelled request completed in the background.
        assert await (await con.execute(f"SELECT count(*) FROM {name}")).fetchone() == (N,)
        await con.close()

    asyncio.run(asyncio.wait_for(main(), 60))
