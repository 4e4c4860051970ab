"""skylite.aio: the asyncio face of the driver, with the same semantics as :mod:`skylite`
(stdlib sqlite3's transaction behaviour, the same exceptions, parameters and results).

    import skylite.aio
    con = await skylite.aio.connect("http://127.0.0.1:8080/db/app", auth_token="eyJ...")
    cur = await con.execute("SELECT id, body FROM notes WHERE id = ?", (1,))
    row = await cur.fetchone()
    await con.commit()
    await con.close()

Requests run on the driver's own I/O threads (Rust, tokio); their outcomes come back to the
event loop through a socket it watches (no I/O thread ever waits for the GIL), so the event
loop never blocks on the network. Rows of a large result become Python objects on the loop's
thread, 256 at a time, and other tasks run in between. Calls on one
connection run one at a time, in order.

Cancellation: a cancelled await does not interrupt its request, which completes in the
background. If a transaction was open (or the cancelled call opened one), the driver rolls it
back and the next call on the connection (other than ``rollback()``/``close()``) raises
:class:`skylite.OperationalError` once to say so; the connection is usable afterwards.
"""

from __future__ import annotations

import asyncio

from . import _skylite
from . import (  # noqa: F401 - the same PEP 249 surface as the sync face
    BINARY,
    DATETIME,
    LEGACY_TRANSACTION_CONTROL,
    NUMBER,
    ROWID,
    STRING,
    Binary,
    DatabaseError,
    DataError,
    Date,
    DateFromTicks,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    Row,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    Warning,
    apilevel,
    implicit_begin,
    paramstyle,
    register_adapter,
    sqlite_version,
    sqlite_version_info,
    threadsafety,
)
from ._common import (
    DML,
    Streamed,
    too_large,
    check_autocommit,
    check_isolation_level,
    description_of,
    first_keyword,
    waker,
)


class Cursor:
    """An asyncio cursor: ``await cur.execute(...)``, ``await cur.fetchone()``,
    ``async for row in cur``. The fetch methods are awaitable for symmetry; they never wait
    for the network (rows arrive with ``execute``)."""

    #: Rows made into Python objects per turn of the event loop by fetchall/fetchmany (about
    #: 0.05 ms of work for three columns: other tasks never wait long).
    SLICE = 256

    def __init__(self, connection, stream=False):
        self.stream = stream
        self.connection = connection
        self.arraysize = 1
        self.row_factory = None
        self._result = None
        self.description = None
        self.rowcount = -1
        self.lastrowid = None
        self._closed = False

    def _check(self):
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed cursor.")
        self.connection._check()

    def _took(self, result, sql):
        self._result = result
        self.description = description_of(result)
        keyword = first_keyword(sql)
        self.rowcount = result.rows_affected if keyword in DML else -1
        if keyword in ("INSERT", "REPLACE") and result.last_insert_rowid is not None:
            self.lastrowid = result.last_insert_rowid

    async def execute(self, sql, parameters=None):
        self._check()
        con = self.connection
        begin = implicit_begin(con._autocommit, con._isolation_level, sql)
        if self.stream:
            result = Streamed(await con._run(
                con._core.query_stream_async, sql, parameters, begin, begins=begin))
            con._open_stream = result
        else:
            try:
                result = await con._run(con._core.execute_async, sql, parameters, begin,
                                        begins=begin)
            except OperationalError as e:
                if not too_large(e, sql):
                    raise
                # Larger than one response: stream it instead.
                result = Streamed(await con._run(
                    con._core.query_stream_async, sql, parameters, begin, begins=begin))
                con._open_stream = result
        self._took(result, sql)
        return self

    async def executemany(self, sql, seq_of_parameters):
        self._check()
        con = self.connection
        begin = implicit_begin(con._autocommit, con._isolation_level, sql)
        if not isinstance(seq_of_parameters, (list, tuple)):
            seq_of_parameters = list(seq_of_parameters)
        result = await con._run(
            con._core.execute_many_async, sql, seq_of_parameters, begin, begins=begin
        )
        self._took(result, sql)
        self.description = None
        return self

    async def executescript(self, sql_script):
        self._check()
        con = self.connection
        if con._autocommit == LEGACY_TRANSACTION_CONTROL:
            await con._run(con._core.end_async, "commit")
        await con._run(con._core.execute_script_async, sql_script, begins="script")
        self._result = None
        self.description = None
        self.rowcount = -1
        return self

    def _row(self, row):
        factory = self.row_factory or self.connection.row_factory
        return factory(self, row) if factory is not None and row is not None else row

    def fetchone_now(self):
        """``fetchone`` without awaiting (rows are already here)."""
        if self._result is None:
            return None
        return self._row(self._result.fetchone())

    def fetchmany_now(self, size=None):
        if self._result is None:
            return []
        rows = self._result.fetchmany(self.arraysize if size is None else max(size, 0))
        if self.row_factory or self.connection.row_factory:
            rows = [self._row(r) for r in rows]
        return rows

    def fetchall_now(self):
        if self._result is None:
            return []
        rows = self._result.fetchall()
        if self.row_factory or self.connection.row_factory:
            rows = [self._row(r) for r in rows]
        return rows

    async def fetchone(self):
        self._check()
        if isinstance(self._result, Streamed):
            return self._row(await self._result.afetchone())
        return self.fetchone_now()

    async def fetchmany(self, size=None):
        self._check()
        size = self.arraysize if size is None else max(size, 0)
        if isinstance(self._result, Streamed):
            rows = await self._result.afetchmany(size)
            return [self._row(r) for r in rows]
        return await self._fetch_sliced(size)

    async def fetchall(self):
        self._check()
        if isinstance(self._result, Streamed):
            return [self._row(r) for r in await self._result.afetchall()]
        if self._result is None:
            return []
        return await self._fetch_sliced(self._result.remaining())

    async def _fetch_sliced(self, n):
        """Up to ``n`` buffered rows, made into Python objects ``SLICE`` at a time with the
        event loop running other tasks in between (a large result never holds it long)."""
        if n <= self.SLICE:
            return self.fetchmany_now(n)
        rows = []
        while n > 0:
            chunk = self.fetchmany_now(min(n, self.SLICE))
            rows.extend(chunk)
            n -= len(chunk)
            if len(chunk) < self.SLICE:
                break
            await asyncio.sleep(0)
        return rows

    def __aiter__(self):
        return self

    async def __anext__(self):
        row = await self.fetchone()
        if row is None:
            raise StopAsyncIteration
        return row

    async def close(self):
        self._result = None
        self._closed = True

    async def setinputsizes(self, *sizes):
        pass

    def setoutputsize(self, size, column=None):
        pass

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()


class Connection:
    """An asyncio connection with stdlib sqlite3's transaction behaviour (see
    :class:`skylite.Connection`)."""

    def __init__(self, core, isolation_level="", autocommit=LEGACY_TRANSACTION_CONTROL):
        self._core = core
        self._lock = asyncio.Lock()
        self._isolation_level = check_isolation_level(isolation_level)
        self._autocommit = check_autocommit(autocommit)
        self._closed = False
        # The clean-ups after cancelled awaits (each completes with whether it rolled a
        # transaction back), awaited by the next call, which then says so once.
        self._cleanups = []
        self._open_stream = None  # the streamed result still being read, if any
        self.row_factory = None

    def _check(self):
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed database.")

    async def _run(self, method, *args, begins=None, acknowledges_loss=False):
        """Runs one core request and awaits it (``begins`` is accepted for compatibility)."""
        async with self._lock:
            streamed, self._open_stream = self._open_stream, None
            if streamed is not None and not streamed.done:
                # Its query holds the stream this call needs: read the rest into memory.
                await streamed.abuffer_all()
            if self._cleanups:
                cleanups, self._cleanups = self._cleanups, []
                rolled_back = False
                for cleanup in cleanups:
                    try:
                        rolled_back |= bool(await asyncio.shield(cleanup))
                    except Exception:
                        rolled_back = True
                if rolled_back and not acknowledges_loss:
                    raise OperationalError(
                        "an earlier call on this connection was cancelled inside a "
                        "transaction; the transaction was rolled back"
                    )
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            try:
                method(waker(loop), future, *args)
            except TypeError as e:
                raise ProgrammingError(str(e)) from e
            try:
                return await future
            except asyncio.CancelledError:
                # The request goes on in the background; after it (requests of a connection
                # run in order) roll back whatever transaction it leaves open.
                cleanup = loop.create_future()
                self._core.end_async(waker(loop), cleanup, "rollback_if_open")
                self._cleanups.append(cleanup)
                raise

    @property
    def isolation_level(self):
        return self._isolation_level

    @isolation_level.setter
    def isolation_level(self, value):
        # No I/O here (a setter cannot await): unlike sqlite3, switching to None does not
        # commit; call ``await commit()`` first.
        self._isolation_level = check_isolation_level(value)

    @property
    def autocommit(self):
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value):
        self._autocommit = check_autocommit(value)

    @property
    def in_transaction(self):
        self._check()
        return self._core.in_transaction

    def cursor(self, factory=None, stream=False):
        """A cursor; ``stream=True`` streams results (see :class:`skylite.Cursor`)."""
        self._check()
        if factory is not None:
            return factory(self)
        return Cursor(self, stream=stream)

    async def execute(self, sql, parameters=None):
        return await self.cursor().execute(sql, parameters)

    async def executemany(self, sql, seq_of_parameters):
        return await self.cursor().executemany(sql, seq_of_parameters)

    async def executescript(self, sql_script):
        return await self.cursor().executescript(sql_script)

    async def commit(self):
        self._check()
        if self._autocommit is True:
            return
        await self._run(self._core.end_async, "commit")

    async def rollback(self):
        self._check()
        if self._autocommit is True:
            return
        await self._run(self._core.end_async, "rollback", acknowledges_loss=True)

    async def close(self):
        if self._closed:
            return
        self._closed = True
        await self._run(self._core.close_async, acknowledges_loss=True)

    @property
    def is_remote(self):
        return self._core.is_remote

    @property
    def total_round_trips(self):
        return self._core.round_trips

    async def __aenter__(self):
        return self

    async def __aexit__(self, exc_type, exc, tb):
        # As the sync face: commit on success, roll back on an exception, then close.
        try:
            if exc_type is None:
                await self.commit()
            else:
                await self.rollback()
        finally:
            await self.close()
        return False


async def connect(database=None, auth_token=None, *, timeout=None, isolation_level="",
                  autocommit=LEGACY_TRANSACTION_CONTROL, protobuf=True, factory=None,
                  **_compat):
    """Opens a connection without blocking the event loop (see :func:`skylite.connect`)."""
    if database is not None and not isinstance(database, str):
        database = str(database)
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    _skylite.connect_async(waker(loop), future, database, auth_token, timeout, protobuf)
    core = await future
    return (factory or Connection)(core, isolation_level=isolation_level, autocommit=autocommit)
