"""SQLAlchemy dialects for skylite (2.0 and 2.1), registered as entry points:

- ``sqlite+skylite://HOST:PORT/db/NAME`` for ``create_engine``; the same URL given to
  ``create_async_engine`` picks the asyncio dialect (``get_async_dialect_cls``, as SQLAlchemy's
  psycopg dialect does);
- ``sqlite+aioskylite://HOST:PORT/db/NAME``: the asyncio dialect by name.

Query parameters: ``secure=true|false`` (TLS; default true except for loopback hosts),
``authToken=...`` (or the URL's password), ``timeout=SECONDS`` (per request),
``protobuf=false`` (force JSON). Without a host the database is a local file
(``sqlite+skylite:///app.db``) or, empty, a private ``:memory:`` database.

The dialects are SQLAlchemy's SQLite dialect (pysqlite flavour) with the driver swapped. The
``regexp`` and ``floor`` that SQLAlchemy registers with ``create_function`` on stdlib sqlite3 come
from the engine instead (skylite registers ``regexp`` and SQLite's math functions on every
connection, server and local file alike; patterns are the Rust ``regex`` crate's syntax, which
has no backreferences or lookaround). The isolation level is not probed with
``PRAGMA read_uncommitted`` (so read-only tokens connect).
"""

from __future__ import annotations

import asyncio
import collections
import ipaddress

from sqlalchemy import pool
from sqlalchemy.dialects.sqlite.base import SQLiteExecutionContext
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.interfaces import AdaptedConnection
from sqlalchemy.util import concurrency as _concurrency

import skylite
import skylite.aio

# SQLAlchemy 2.1 names it await_, 2.0 await_only.
_await = getattr(_concurrency, "await_", None) or getattr(_concurrency, "await_only")


def _is_loopback(host):
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _truthy(value):
    return str(value).lower() in ("1", "true", "yes", "on")


def connect_args_for(url):
    """``(args, kwargs)`` for ``skylite.connect`` from a SQLAlchemy URL."""
    query = dict(url.query)
    kwargs = {}
    token = query.pop("authToken", None) or query.pop("auth_token", None) or url.password
    if token:
        kwargs["auth_token"] = token
    if "timeout" in query:
        kwargs["timeout"] = float(query.pop("timeout"))
    if "protobuf" in query:
        kwargs["protobuf"] = _truthy(query.pop("protobuf"))
    if url.host:
        secure = query.pop("secure", None)
        tls = _truthy(secure) if secure is not None else not _is_loopback(url.host)
        scheme = "https" if tls else "http"
        host = f"[{url.host}]" if ":" in url.host else url.host
        netloc = f"{host}:{url.port}" if url.port else host
        path = f"/{url.database}" if url.database else ""
        return [f"{scheme}://{netloc}{path}"], kwargs
    database = url.database or ":memory:"
    return [database], kwargs


class SkyliteExecutionContext(SQLiteExecutionContext):
    def create_server_side_cursor(self):
        # stream_results / yield_per: rows come through /v3/cursor as they are fetched.
        return self._dbapi_connection.cursor(stream=True)


class SkyliteDialect(SQLiteDialect_pysqlite):
    """The sync dialect: ``sqlite+skylite://``. ``stream_results=True`` (and ``yield_per``)
    stream rows through the server's cursor endpoint with flat memory."""

    driver = "skylite"
    supports_statement_cache = True
    supports_server_side_cursors = True
    execution_ctx_cls = SkyliteExecutionContext

    @classmethod
    def import_dbapi(cls):
        return skylite

    @classmethod
    def get_async_dialect_cls(cls, url):
        return AsyncSkyliteDialect

    @classmethod
    def get_pool_class(cls, url):
        if not url.host and (not url.database or url.database == ":memory:"):
            return pool.SingletonThreadPool
        return pool.QueuePool

    def _get_server_version_info(self, connection):
        return self.dbapi.sqlite_version_info

    def create_connect_args(self, url):
        return connect_args_for(url)

    def on_connect(self):
        # No create_function over the network: the engine provides regexp() and floor().
        return None

    def get_isolation_level(self, dbapi_connection):
        # SQLite's only level outside shared-cache mode; asking the server would need a PRAGMA
        # that read-only tokens may not run.
        return "SERIALIZABLE"

    def set_isolation_level(self, dbapi_connection, level):
        if level == "AUTOCOMMIT":
            dbapi_connection.isolation_level = None
        else:
            dbapi_connection.isolation_level = ""

    def is_disconnect(self, e, connection, cursor):
        if isinstance(e, self.dbapi.OperationalError):
            text = str(e).lower()
            if (
                "connection error" in text
                or "cannot operate on a closed database" in text
                or "opened before fork" in text
            ):
                return True
        return super().is_disconnect(e, connection, cursor)


class _AsyncCursor:
    """A sync (greenlet-adapted) DB-API cursor over a :class:`skylite.aio.Cursor`."""

    server_side = False

    def __init__(self, adapt_connection, stream=False):
        self._adapt_connection = adapt_connection
        self._cursor = adapt_connection._connection.cursor(stream=stream)
        self._rows = None  # a large result, prefetched by execute (see _prefetch)

    @property
    def description(self):
        return self._cursor.description

    @property
    def rowcount(self):
        return self._cursor.rowcount

    @property
    def lastrowid(self):
        return self._cursor.lastrowid

    @property
    def arraysize(self):
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value):
        self._cursor.arraysize = value

    def execute(self, operation, parameters=None):
        _await(self._cursor.execute(operation, parameters))
        self._prefetch()
        return self

    def executemany(self, operation, seq_of_parameters):
        _await(self._cursor.executemany(operation, seq_of_parameters))
        self._rows = None
        return self

    def _prefetch(self):
        """A large buffered result becomes rows here, inside the await (SQLAlchemy fetches
        outside of it): a slice at a time, other tasks running in between."""
        remaining = getattr(self._cursor._result, "remaining", None)
        if remaining is not None and remaining() > self._cursor.SLICE:
            self._rows = collections.deque(_await(self._cursor.fetchall()))
        else:
            self._rows = None

    def fetchone(self):
        if self._rows is not None:
            return self._rows.popleft() if self._rows else None
        return self._cursor.fetchone_now()

    def fetchmany(self, size=None):
        if self._rows is not None:
            n = self._cursor.arraysize if size is None else size
            return [self._rows.popleft() for _ in range(min(n, len(self._rows)))]
        return self._cursor.fetchmany_now(size)

    def fetchall(self):
        if self._rows is not None:
            rows, self._rows = list(self._rows), collections.deque()
            return rows
        return self._cursor.fetchall_now()

    def __iter__(self):
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row

    def close(self):
        self._cursor._result = None
        self._rows = None

    async def _async_soft_close(self):
        # Rows are already in memory (they arrive with execute): nothing to release early.
        pass

    def setinputsizes(self, *sizes):
        pass

    def setoutputsize(self, size, column=None):
        pass

    def nextset(self):
        return None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _AsyncStreamCursor(_AsyncCursor):
    """A server-side (streaming) cursor: fetches wait for the network."""

    server_side = True

    def __init__(self, adapt_connection):
        super().__init__(adapt_connection, stream=True)

    def fetchone(self):
        return _await(self._cursor.fetchone())

    def fetchmany(self, size=None):
        return _await(self._cursor.fetchmany(size))

    def fetchall(self):
        return _await(self._cursor.fetchall())

    def __iter__(self):
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row


class _AsyncConnection(AdaptedConnection):
    """A sync (greenlet-adapted) DB-API connection over a :class:`skylite.aio.Connection`."""

    __slots__ = ("dbapi",)

    def __init__(self, dbapi, connection):
        self.dbapi = dbapi
        self._connection = connection

    @property
    def isolation_level(self):
        return self._connection.isolation_level

    @isolation_level.setter
    def isolation_level(self, value):
        if value is None and self._connection.in_transaction:
            _await(self._connection.commit())  # as sqlite3 does on the switch
        self._connection.isolation_level = value

    @property
    def autocommit(self):
        return self._connection.autocommit

    @autocommit.setter
    def autocommit(self, value):
        if value is True and self._connection.in_transaction:
            _await(self._connection.commit())
        self._connection.autocommit = value

    @property
    def in_transaction(self):
        return self._connection.in_transaction

    def cursor(self, server_side=False, stream=False):
        if server_side or stream:
            return _AsyncStreamCursor(self)
        return _AsyncCursor(self)

    def execute(self, operation, parameters=None):
        cursor = self.cursor()
        cursor.execute(operation, parameters)
        return cursor

    def commit(self):
        _await(self._connection.commit())

    def rollback(self):
        _await(self._connection.rollback())

    def close(self):
        _await(self._connection.close())

    def terminate(self):
        try:
            _await(self._connection.close())
        except (asyncio.CancelledError, Exception):
            pass

    def create_function(self, *args, **kwargs):
        raise skylite.NotSupportedError("create_function is not available over the network")


class _AsyncDBAPI:
    """The DB-API module SQLAlchemy sees for the asyncio dialect."""

    paramstyle = "qmark"

    def __init__(self):
        for name in (
            "Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
            "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
            "NotSupportedError", "Binary", "sqlite_version", "sqlite_version_info",
            "apilevel", "threadsafety", "STRING", "BINARY", "NUMBER", "DATETIME", "ROWID",
        ):
            setattr(self, name, getattr(skylite, name))

    def connect(self, *args, **kwargs):
        creator = kwargs.pop("async_creator_fn", None) or skylite.aio.connect
        return _AsyncConnection(self, _await(creator(*args, **kwargs)))


class AsyncSkyliteDialect(SkyliteDialect):
    """The asyncio dialect: ``sqlite+aioskylite://``, or ``sqlite+skylite://`` given to
    ``create_async_engine``."""

    driver = "aioskylite"
    is_async = True
    supports_statement_cache = True
    supports_server_side_cursors = True

    @classmethod
    def import_dbapi(cls):
        return _AsyncDBAPI()

    @classmethod
    def get_async_dialect_cls(cls, url):
        return cls

    @classmethod
    def get_pool_class(cls, url):
        if not url.host and (not url.database or url.database == ":memory:"):
            return pool.StaticPool
        return pool.AsyncAdaptedQueuePool

    def get_driver_connection(self, connection):
        return connection._connection

    def do_terminate(self, dbapi_connection):
        dbapi_connection.terminate()


dialect = SkyliteDialect
