"""The SQL SQLAlchemy's SQLite dialect emits that stock libSQL lacks, run through the skylite
dialects against the server and a local file: `regexp_match` (the REGEXP operator), floor
division (`FLOOR(...)`) and `func.floor` and the other math functions, sync and async."""
import asyncio

import pytest
from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, func, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import create_async_engine

from test_sqlalchemy import sa_url

ROWS = [{"id": 1, "name": "alpha", "x": 7.5}, {"id": 2, "name": "beta", "x": -1.25},
        {"id": 3, "name": "gamma", "x": 4.0}, {"id": 4, "name": None, "x": None}]


def table(name):
    meta = MetaData()
    return meta, Table(name, meta, Column("id", Integer, primary_key=True), Column("name", String),
                       Column("x", Float))


def test_regexp_match_and_math_functions(target, name):
    meta, t = table(name)
    engine = create_engine(sa_url(target))
    meta.create_all(engine)
    with engine.begin() as c:
        c.execute(insert(t), ROWS)
    with engine.connect() as c:
        got = c.scalars(select(t.c.name).where(t.c.name.regexp_match("^[ab]")).order_by(t.c.id))
        assert got.all() == ["alpha", "beta"]
        # SQLAlchemy's SQLite dialect drops `flags=`; inline flags work (as with Python's re).
        got = c.scalars(select(t.c.name).where(t.c.name.regexp_match("(?i)A$")).order_by(t.c.id))
        assert got.all() == ["alpha", "beta", "gamma"]
        got = c.scalars(select(t.c.name).where(~t.c.name.regexp_match("m+")).order_by(t.c.id))
        assert got.all() == ["alpha", "beta"]
        got = c.execute(select(func.floor(t.c.x), func.ceil(t.c.x), func.sqrt(t.c.x)).order_by(t.c.id))
        assert [tuple(r) for r in got] == [(7.0, 8.0, pytest.approx(7.5 ** 0.5)), (-2.0, -1.0, None),
                                           (4.0, 4.0, 2.0), (None, None, None)]
        # `//` on non-integers compiles to FLOOR(a / b).
        assert c.scalar(select(t.c.x // 2).where(t.c.id == 1)) == 3.0
        assert c.scalar(select(func.floor(9))) == 9
        assert c.scalar(select(func.pow(2, 10) + func.log(2, 8) + func.pi() * 0)) == 1027.0
        assert c.scalar(select(func.acos(2))) is None
        with pytest.raises(OperationalError, match="regexp: invalid pattern"):
            c.execute(select(t.c.id).where(t.c.name.regexp_match("a(")))
        # The connection still works after the error.
        assert c.scalar(select(func.count()).select_from(t)) == 4
    engine.dispose()


def test_regexp_match_async(target, name):
    meta, t = table(name)

    async def main():
        engine = create_async_engine(sa_url(target))
        async with engine.begin() as c:
            await c.run_sync(meta.create_all)
            await c.execute(insert(t), ROWS)
        async with engine.connect() as c:
            got = await c.scalars(select(t.c.id).where(t.c.name.regexp_match("^g")))
            assert got.all() == [3]
            assert await c.scalar(select(func.floor(t.c.x)).where(t.c.id == 2)) == -2.0
        await engine.dispose()

    asyncio.run(asyncio.wait_for(main(), 60))
