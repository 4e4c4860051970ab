"""skylite: a PEP 249 driver for skylite, sqld and Turso (any Hrana server) and for local
libSQL files, with stdlib ``sqlite3``'s transaction behaviour. The asyncio face with the same
semantics is :mod:`skylite.aio`; SQLAlchemy dialects are in :mod:`skylite.sqlalchemy`.

    import skylite
    con = skylite.connect("http://127.0.0.1:8080/db/app", auth_token="eyJ...")
    con.execute("INSERT INTO notes (body) VALUES (?)", ("hello",))
    con.commit()

URLs: ``libsql://``, ``https://``, ``http://``, ``ws://``/``wss://`` (spoken as HTTP(S)),
``file:`` paths, plain paths and ``:memory:``. ``connect()`` without a URL reads
``SKYLITE_URL``/``SKYLITE_AUTH_TOKEN``, ``TURSO_DATABASE_URL``/``TURSO_AUTH_TOKEN`` or
``LIBSQL_URL``/``LIBSQL_AUTH_TOKEN`` from the environment or ``./.env``.
"""

from __future__ import annotations

import threading

from . import _skylite
from ._common import (  # noqa: F401 - the PEP 249 surface
    BINARY,
    DATETIME,
    DML,
    ERROR_CODES,
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
    PrepareProtocol,
    ProgrammingError,
    Streamed,
    too_large,
    Time,
    TimeFromTicks,
    Timestamp,
    TimestampFromTicks,
    Warning,
    apilevel,
    check_autocommit,
    check_isolation_level,
    description_of,
    first_keyword,
    paramstyle,
    register_adapter,
    threadsafety,
)

__all__ = [
    "connect", "Connection", "Cursor", "Row", "Error", "Warning", "InterfaceError",
    "DatabaseError", "DataError", "OperationalError", "IntegrityError", "InternalError",
    "ProgrammingError", "NotSupportedError", "Binary", "Date", "Time", "Timestamp",
    "DateFromTicks", "TimeFromTicks", "TimestampFromTicks", "STRING", "BINARY", "NUMBER",
    "DATETIME", "ROWID", "apilevel", "threadsafety", "paramstyle", "register_adapter",
    "LEGACY_TRANSACTION_CONTROL",
]

sqlite_version = "3.45.1"
sqlite_version_info = (3, 45, 1)
version = "0.1.0"

# Statements that control transactions themselves: never preceded by an implicit BEGIN.
_TXN_CONTROL = frozenset({"BEGIN", "COMMIT", "END", "ROLLBACK"})


def implicit_begin(autocommit, isolation_level, sql):
    """The behaviour to BEGIN before ``sql`` (if no transaction is open), or None, as stdlib
    sqlite3 decides: ``autocommit=False`` always keeps one open; legacy control opens one
    before INSERT/UPDATE/DELETE/REPLACE unless ``isolation_level`` is None."""
    if autocommit is True:
        return None
    if autocommit is False:
        return None if first_keyword(sql) in _TXN_CONTROL else "DEFERRED"
    if isolation_level is None:
        return None
    if first_keyword(sql) in DML:
        return isolation_level or "DEFERRED"
    return None


class Row:
    """A row that can be read by index and by (case-insensitive) column name, as
    ``sqlite3.Row``. Use as ``connection.row_factory = skylite.Row``."""

    __slots__ = ("_values", "_names")

    def __init__(self, cursor, values):
        self._values = tuple(values)
        self._names = [d[0] for d in (cursor.description or ())]

    def keys(self):
        return list(self._names)

    def __getitem__(self, key):
        if isinstance(key, str):
            for i, name in enumerate(self._names):
                if name.lower() == key.lower():
                    return self._values[i]
            raise IndexError("No item with that key")
        return self._values[key]

    def __len__(self):
        return len(self._values)

    def __iter__(self):
        return iter(self._values)

    def __eq__(self, other):
        if isinstance(other, Row):
            return self._names == other._names and self._values == other._values
        return NotImplemented

    def __hash__(self):
        return hash((tuple(self._names), self._values))

    def __repr__(self):
        return f"<skylite.Row {self._values!r}>"


class Cursor:
    """A PEP 249 cursor. Results are read whole by ``execute`` and handed out by the fetch
    methods; ``rowcount`` is the number of changed rows for INSERT/UPDATE/DELETE/REPLACE and -1
    otherwise, ``lastrowid`` the rowid of the last row inserted by this cursor.

    ``connection.cursor(stream=True)`` streams instead (``/v3/cursor`` on a server): rows are
    pulled in chunks as they are fetched, so memory stays flat and results larger than the
    server's response limit work. Another call on the connection while such a result is
    unread first reads the rest into memory."""

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

    def execute(self, sql, parameters=None):
        """Executes one statement; returns the cursor."""
        self._check()
        con = self.connection
        begin = implicit_begin(con._autocommit, con._isolation_level, sql)
        with con._lock:
            con._settle_stream()
            try:
                if self.stream:
                    result = Streamed(con._core.query_stream(sql, parameters, begin))
                    con._open_stream = result
                else:
                    try:
                        result = con._core.execute(sql, parameters, begin)
                    except OperationalError as e:
                        if not too_large(e, sql):
                            raise
                        # Larger than one response: stream it instead.
                        result = Streamed(con._core.query_stream(sql, parameters, begin))
                        con._open_stream = result
            except TypeError as e:
                raise ProgrammingError(str(e)) from e
        self._took(result, sql)
        return self

    def executemany(self, sql, seq_of_parameters):
        """Executes ``sql`` for each parameter set, in one request (a batch that stops at the
        first error)."""
        self._check()
        con = self.connection
        begin = implicit_begin(con._autocommit, con._isolation_level, sql)
        if not isinstance(seq_of_parameters, (list, tuple)):
            seq_of_parameters = list(seq_of_parameters)
        with con._lock:
            con._settle_stream()
            try:
                result = con._core.execute_many(sql, seq_of_parameters, begin)
            except TypeError as e:
                raise ProgrammingError(str(e)) from e
        self._took(result, sql)
        self.description = None
        return self

    def executescript(self, sql_script):
        """Runs a ``;``-separated script. Under legacy transaction control a pending
        transaction is committed first (as stdlib sqlite3)."""
        self._check()
        con = self.connection
        with con._lock:
            con._settle_stream()
            if con._autocommit == LEGACY_TRANSACTION_CONTROL:
                con._core.commit()
            con._core.execute_script(sql_script)
        self._result = None
        self.description = None
        self.rowcount = -1
        return self

    def _row(self, row):
        factory = self.row_factory or self.connection.row_factory
        return factory(self, row) if factory is not None and row is not None else row

    def fetchone(self):
        self._check()
        if self._result is None:
            return None
        return self._row(self._result.fetchone())

    def fetchmany(self, size=None):
        self._check()
        if self._result is None:
            return []
        rows = self._result.fetchmany(self.arraysize if size is None else max(size, 0))
        if self.row_factory or self.connection.row_factory:
            rows = [self._row(r) for r in rows]
        return rows

    def fetchall(self):
        self._check()
        if self._result is None:
            return []
        rows = self._result.fetchall()
        if self.row_factory or self.connection.row_factory:
            rows = [self._row(r) for r in rows]
        return rows

    def __iter__(self):
        return self

    def __next__(self):
        row = self.fetchone()
        if row is None:
            raise StopIteration
        return row

    def close(self):
        self._result = None
        self._closed = True

    def setinputsizes(self, sizes):
        pass

    def setoutputsize(self, size, column=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Connection:
    """A PEP 249 connection with stdlib sqlite3's transaction behaviour: ``isolation_level``
    (legacy control: a transaction is opened before INSERT/UPDATE/DELETE/REPLACE) and the
    ``autocommit`` attribute of Python 3.12. Calls on one connection from several threads are
    serialized; use a connection per thread for parallelism."""

    def __init__(self, core, isolation_level="", autocommit=LEGACY_TRANSACTION_CONTROL):
        self._core = core
        self._lock = threading.RLock()
        self._isolation_level = check_isolation_level(isolation_level)
        self._autocommit = check_autocommit(autocommit)
        self._closed = False
        self._open_stream = None  # the streamed result still being read, if any
        self.row_factory = None
        self.text_factory = str
        for name in ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
                     "OperationalError", "IntegrityError", "InternalError",
                     "ProgrammingError", "NotSupportedError"):
            setattr(self, name, globals()[name])

    def _check(self):
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed database.")

    def _settle_stream(self):
        """Reads the rest of a streamed result into memory: its query holds the connection's
        stream, which the next call needs."""
        streamed, self._open_stream = self._open_stream, None
        if streamed is not None and not streamed.done:
            streamed.buffer_all()

    @property
    def isolation_level(self):
        return self._isolation_level

    @isolation_level.setter
    def isolation_level(self, value):
        value = check_isolation_level(value)
        if value is None and self._autocommit == LEGACY_TRANSACTION_CONTROL:
            self.commit()  # as sqlite3: switching to autocommit commits
        self._isolation_level = value

    @property
    def autocommit(self):
        return self._autocommit

    @autocommit.setter
    def autocommit(self, value):
        value = check_autocommit(value)
        if value is True and self.in_transaction:
            self._core.commit()
        self._autocommit = value

    @property
    def in_transaction(self):
        self._check()
        return self._core.in_transaction

    def cursor(self, factory=None, stream=False):
        self._check()
        if factory is not None:
            return factory(self)
        return Cursor(self, stream=stream)

    def execute(self, sql, parameters=None):
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters):
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script):
        return self.cursor().executescript(sql_script)

    def commit(self):
        """Commits; nothing is sent when no transaction is open. With ``autocommit=True`` it
        does nothing (as sqlite3)."""
        self._check()
        if self._autocommit is True:
            return
        with self._lock:
            self._settle_stream()
            self._core.commit()

    def rollback(self):
        """Rolls back; nothing is sent when no transaction is open."""
        self._check()
        if self._autocommit is True:
            return
        with self._lock:
            self._settle_stream()
            self._core.rollback()

    def close(self):
        """Closes the connection; an open transaction is rolled back (not committed)."""
        if self._closed:
            return
        with self._lock:
            self._closed = True
            self._open_stream = None
            self._core.close()

    @property
    def is_remote(self):
        return self._core.is_remote

    @property
    def total_round_trips(self):
        """HTTP requests this connection has sent (0 for local files)."""
        return self._core.round_trips

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        # As sqlite3: commit on success, roll back on an exception; the connection stays open.
        if exc_type is None:
            self.commit()
        else:
            self.rollback()
        return False



def connect(database=None, auth_token=None, *, timeout=None, isolation_level="",
            autocommit=LEGACY_TRANSACTION_CONTROL, protobuf=True, factory=None,
            check_same_thread=None, uri=None, detect_types=0, cached_statements=None):
    """Opens a connection. ``database``: a URL or path (None: from the environment/.env);
    ``auth_token``: the bearer token; ``timeout``: seconds allowed per request. The sqlite3
    arguments ``check_same_thread``, ``uri``, ``detect_types`` and ``cached_statements`` are
    accepted for compatibility; only ``detect_types=0`` is supported."""
    if detect_types:
        raise NotSupportedError("detect_types is not supported")
    if database is not None and not isinstance(database, str):
        database = str(database)  # os.PathLike
    core = _skylite.connect(database, auth_token, timeout, protobuf)
    return (factory or Connection)(core, isolation_level=isolation_level, autocommit=autocommit)
