"""SQLAlchemy with the skylite dialects: Core and ORM, sync and asyncio (`sqlite+skylite://`
picked by create_async_engine, and `sqlite+aioskylite://`), RETURNING, insertmanyvalues,
pool_pre_ping, and read-only tokens (the PRAGMA probes of connect and reflection)."""
import asyncio
import urllib.parse

import pytest
from sqlalchemy import Integer, String, create_engine, insert, inspect, select, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column


def sa_url(target, driver="skylite"):
    kind, url, token = target
    if kind == "file":
        return f"sqlite+{driver}:///{url[len('file:'):]}"
    parsed = urllib.parse.urlsplit(url)
    query = f"?authToken={token}" if token else ""
    return f"sqlite+{driver}://{parsed.netloc}{parsed.path or '/'}{query}"


def model(table):
    class Base(DeclarativeBase):
        pass

    class Note(Base):
        __tablename__ = table
        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        body: Mapped[str] = mapped_column(String(50))

    return Base, Note


def test_sync_core_and_orm(target, name):
    Base, Note = model(name)
    engine = create_engine(sa_url(target), pool_pre_ping=True)
    assert engine.dialect.driver == "skylite"
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        s.add_all([Note(body=f"n{i}") for i in range(5)])
        s.commit()
        assert s.scalars(select(Note.body).order_by(Note.id)).all() == [f"n{i}" for i in range(5)]
        note = s.get(Note, 1)
        note.body = "changed"
        s.commit()
    with engine.begin() as c:
        # insertmanyvalues with RETURNING.
        r = c.execute(insert(Note.__table__).returning(Note.id, Note.body),
                      [{"body": f"m{i}"} for i in range(300)])
        rows = r.all()
        assert len(rows) == 300 and rows[0].body == "m0"
    with engine.connect() as c:
        assert c.execute(text(f"SELECT count(*) FROM {name}")).scalar() == 305
        assert c.execute(text(f"SELECT body FROM {name} WHERE id = :id"), {"id": 1}).scalar() == "changed"
        assert name in inspect(c).get_table_names()
    # A rolled-back transaction leaves nothing.
    with pytest.raises(ZeroDivisionError):
        with engine.begin() as c:
            c.execute(text(f"DELETE FROM {name}"))
            1 / 0
    with engine.connect() as c:
        assert c.execute(text(f"SELECT count(*) FROM {name}")).scalar() == 305
    # AUTOCOMMIT isolation.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text(f"DELETE FROM {name} WHERE id = 1"))
    with engine.connect() as c:
        assert c.execute(text(f"SELECT count(*) FROM {name}")).scalar() == 304
    engine.dispose()


@pytest.mark.parametrize("driver", ["skylite", "aioskylite"])
def test_async_orm(target, name, driver):
    Base, Note = model(name)

    async def main():
        engine = create_async_engine(sa_url(target, driver), pool_pre_ping=True)
        assert engine.dialect.is_async and engine.dialect.driver == "aioskylite"
        async with engine.begin() as c:
            await c.run_sync(Base.metadata.create_all)
        async with AsyncSession(engine) as s:
            s.add_all([Note(body=f"a{i}") for i in range(3)])
            await s.commit()
            got = (await s.scalars(select(Note.body).order_by(Note.id))).all()
            assert got == ["a0", "a1", "a2"]
        async with engine.begin() as c:
            r = await c.execute(insert(Note.__table__).returning(Note.id),
                                [{"body": f"b{i}"} for i in range(50)])
            assert len(r.all()) == 50

        async def count():
            async with engine.connect() as c:
                return (await c.execute(text(f"SELECT count(*) FROM {name}"))).scalar()

        assert await asyncio.gather(*(count() for _ in range(10))) == [53] * 10
        await engine.dispose()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_read_only_token_connects_and_reflects(server, ro_token, name):
    url, token = server
    rw = create_engine(sa_url(("remote", url, token)))
    with rw.begin() as c:
        c.execute(text(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, v TEXT)"))
    ro = create_engine(sa_url(("remote", url, ro_token)))
    with ro.connect() as c:
        assert c.execute(text(f"SELECT count(*) FROM {name}")).scalar() == 0
        assert [col["name"] for col in inspect(c).get_columns(name)] == ["id", "v"]
        with pytest.raises(Exception):
            c.execute(text(f"INSERT INTO {name} (v) VALUES ('x')"))
    rw.dispose()
    ro.dispose()
