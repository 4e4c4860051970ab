"""Benchmark of the skylite Python driver beside libsql-client (if installed) and stdlib
sqlite3 on a local file, on one server, in one run:

    python bench/python/bench.py http://127.0.0.1:8080 TOKEN

Point reads from 1 thread, 8 threads and 64 asyncio tasks, executemany of 10,000 rows, a
100,000-row SELECT * (buffered and streamed), and the event loop's lag while a large result
is fetched. Numbers depend on the machine; run the server from a release build.
"""
import asyncio
import os
import statistics
import sqlite3
import sys
import tempfile
import threading
import time

import skylite
import skylite.aio

N_READS = 2000
N_ROWS = 100_000


def rate(n, seconds):
    return f"{n / seconds:>12,.0f}/s"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def setup(con):
    con.execute("DROP TABLE IF EXISTS bench")
    con.execute("CREATE TABLE bench (id INTEGER PRIMARY KEY, a TEXT, b REAL)")
    con.commit()
    _, dt = timed(lambda: (con.executemany("INSERT INTO bench (a, b) VALUES (?, ?)",
                                          [(f"row{i}", i * 0.5) for i in range(10_000)]),
                          con.commit()))
    print(f"  executemany 10,000 rows      {rate(10_000, dt)}")
    for _ in range(9):
        con.execute("INSERT INTO bench (a, b) SELECT a, b FROM bench WHERE id <= 10000")
    con.commit()


def point_reads(connect, threads):
    def work(n):
        con = connect()
        for i in range(n):
            con.execute("SELECT a FROM bench WHERE id = ?", (i % 10_000 + 1,)).fetchone()

    per = N_READS // threads if threads > 1 else N_READS
    ts = [threading.Thread(target=work, args=(per,)) for _ in range(threads)]
    start = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return per * threads, time.perf_counter() - start


def bench_skylite(url, token):
    print(f"skylite {skylite.version} -> {url}")
    con = skylite.connect(url, auth_token=token)
    setup(con)
    connect = lambda: skylite.connect(url, auth_token=token)  # noqa: E731
    n, dt = point_reads(connect, 1)
    print(f"  point reads, 1 thread        {rate(n, dt)}")
    n, dt = point_reads(connect, 8)
    print(f"  point reads, 8 threads       {rate(n, dt)}")

    async def tasks():
        cons = [await skylite.aio.connect(url, auth_token=token) for _ in range(64)]

        async def work(c, n):
            for i in range(n):
                cur = await c.execute("SELECT a FROM bench WHERE id = ?", (i % 10_000 + 1,))
                await cur.fetchone()

        start = time.perf_counter()
        await asyncio.gather(*(work(c, N_READS // 64) for c in cons))
        return N_READS // 64 * 64, time.perf_counter() - start

    n, dt = asyncio.run(tasks())
    print(f"  point reads, 64 tasks        {rate(n, dt)}")
    rows, dt = timed(lambda: con.execute("SELECT * FROM bench").fetchall())
    print(f"  SELECT * ({len(rows):,} rows)     {rate(len(rows), dt)} rows")
    cur = con.cursor(stream=True)
    n, dt = timed(lambda: sum(1 for _ in cur.execute("SELECT * FROM bench")))
    print(f"  same, streamed               {rate(n, dt)} rows")

    async def lag():
        acon = await skylite.aio.connect(url, auth_token=token)
        lags = []
        stop = False

        async def ticker():
            while not stop:
                t = time.perf_counter()
                await asyncio.sleep(0.001)
                lags.append(time.perf_counter() - t - 0.001)

        tick = asyncio.ensure_future(ticker())
        cur = acon.cursor(stream=True)
        await cur.execute("SELECT * FROM bench")
        while await cur.fetchmany(1000):
            pass
        streamed = list(lags)
        lags.clear()
        cur = await acon.execute("SELECT * FROM bench")
        while await cur.fetchmany(1000):
            await asyncio.sleep(0)
        stop = True
        await tick

        def p99(xs):
            return statistics.quantiles(xs, n=100)[98] * 1000 if len(xs) > 2 else 0.0

        return p99(streamed), p99(lags)

    streamed, buffered = asyncio.run(lag())
    print(f"  loop lag p99, streamed fetch {streamed:>12.2f} ms")
    print(f"  loop lag p99, buffered fetch {buffered:>12.2f} ms")


def bench_libsql_client(url, token):
    try:
        import libsql_client
    except ImportError:
        print("libsql-client: not installed, skipped")
        return
    print(f"libsql-client {getattr(libsql_client, '__version__', '?')}")

    async def main():
        clients = [libsql_client.create_client(url, auth_token=token) for _ in range(64)]

        async def work(c, n):
            for i in range(n):
                await c.execute("SELECT a FROM bench WHERE id = ?", [i % 10_000 + 1])

        start = time.perf_counter()
        await asyncio.gather(*(work(c, N_READS // 64) for c in clients))
        dt = time.perf_counter() - start
        print(f"  point reads, 64 tasks        {rate(N_READS // 64 * 64, dt)}")
        start = time.perf_counter()
        rs = await clients[0].execute("SELECT * FROM bench LIMIT 100000")
        dt = time.perf_counter() - start
        print(f"  SELECT * ({len(rs.rows):,} rows)     {rate(len(rs.rows), dt)} rows")
        for c in clients:
            await c.close()

    try:
        asyncio.run(main())
    except Exception as e:  # e.g. the result is larger than the server's response limit
        print(f"  failed: {e}")


def bench_sqlite3():
    print(f"stdlib sqlite3 {sqlite3.sqlite_version} (local file)")
    path = os.path.join(tempfile.mkdtemp(), "bench.db")
    con = sqlite3.connect(path, check_same_thread=False)
    con.execute("PRAGMA journal_mode=WAL")
    setup(con)
    n, dt = point_reads(lambda: sqlite3.connect(path), 1)
    print(f"  point reads, 1 thread        {rate(n, dt)}")
    rows, dt = timed(lambda: con.execute("SELECT * FROM bench").fetchall())
    print(f"  SELECT * ({len(rows):,} rows)     {rate(len(rows), dt)} rows")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    url, token = sys.argv[1], (sys.argv[2] if len(sys.argv) > 2 else None)
    bench_skylite(url, token)
    bench_libsql_client(url, token)
    bench_sqlite3()
