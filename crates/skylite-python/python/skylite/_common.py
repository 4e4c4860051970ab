"""What the sync and asyncio faces share: the PEP 249 exception hierarchy (mapped from SQLite's
extended result codes, and subclassing stdlib ``sqlite3``'s classes so code that catches
``sqlite3.IntegrityError`` keeps working), parameter adapters, the type objects and
constructors, the SQL classification that stdlib ``sqlite3``'s transaction rules need, and the
hooks the Rust core calls back into.
"""

from __future__ import annotations

import atexit
import collections
import datetime
import os
import re
import time
import weakref

from . import _skylite

try:  # Python builds without _sqlite3 exist; the hierarchy then stands alone.
    import sqlite3 as _stdlib
except ImportError:  # pragma: no cover
    _stdlib = None

apilevel = "2.0"
threadsafety = 2  # threads may share the module and connections (a connection serializes calls)
paramstyle = "qmark"  # named (:name, @name, $name) works too


def _base(name):
    return (getattr(_stdlib, name),) if _stdlib is not None else ()


class Warning(*(_base("Warning") or (Exception,))):  # noqa: A001 - PEP 249 name
    """PEP 249 Warning."""


class Error(*(_base("Error") or (Exception,))):
    """Base of every error the driver raises. ``sqlite_errorcode`` is SQLite's (extended)
    numeric result code and ``sqlite_errorname`` its name (``SQLITE_CONSTRAINT_UNIQUE``), as in
    stdlib sqlite3; for errors that are not SQLite's, ``sqlite_errorname`` is the server's code
    (``TRANSACTION_TIMEOUT``, ``AUTH_EXPIRED``, ...) and ``sqlite_errorcode`` is None.
    ``http_status`` is set for HTTP-level failures."""

    sqlite_errorcode = None
    sqlite_errorname = None
    http_status = None


class InterfaceError(Error, *_base("InterfaceError")):
    pass


class DatabaseError(Error, *_base("DatabaseError")):
    pass


class DataError(DatabaseError, *_base("DataError")):
    pass


class OperationalError(DatabaseError, *_base("OperationalError")):
    pass


class IntegrityError(DatabaseError, *_base("IntegrityError")):
    pass


class InternalError(DatabaseError, *_base("InternalError")):
    pass


class ProgrammingError(DatabaseError, *_base("ProgrammingError")):
    pass


class NotSupportedError(DatabaseError, *_base("NotSupportedError")):
    pass


# SQLite's primary result codes.
_PRIMARY = {
    "SQLITE_ERROR": 1, "SQLITE_INTERNAL": 2, "SQLITE_PERM": 3, "SQLITE_ABORT": 4,
    "SQLITE_BUSY": 5, "SQLITE_LOCKED": 6, "SQLITE_NOMEM": 7, "SQLITE_READONLY": 8,
    "SQLITE_INTERRUPT": 9, "SQLITE_IOERR": 10, "SQLITE_CORRUPT": 11, "SQLITE_NOTFOUND": 12,
    "SQLITE_FULL": 13, "SQLITE_CANTOPEN": 14, "SQLITE_PROTOCOL": 15, "SQLITE_EMPTY": 16,
    "SQLITE_SCHEMA": 17, "SQLITE_TOOBIG": 18, "SQLITE_CONSTRAINT": 19, "SQLITE_MISMATCH": 20,
    "SQLITE_MISUSE": 21, "SQLITE_NOLFS": 22, "SQLITE_AUTH": 23, "SQLITE_FORMAT": 24,
    "SQLITE_RANGE": 25, "SQLITE_NOTADB": 26, "SQLITE_NOTICE": 27, "SQLITE_WARNING": 28,
}

# Extended codes: primary | (n << 8), n in order of sqlite3.h.
_EXTENDED = {
    "SQLITE_ERROR": ["MISSING_COLLSEQ", "RETRY", "SNAPSHOT"],
    "SQLITE_IOERR": [
        "READ", "SHORT_READ", "WRITE", "FSYNC", "DIR_FSYNC", "TRUNCATE", "FSTAT", "UNLOCK",
        "RDLOCK", "DELETE", "BLOCKED", "NOMEM", "ACCESS", "CHECKRESERVEDLOCK", "LOCK", "CLOSE",
        "DIR_CLOSE", "SHMOPEN", "SHMSIZE", "SHMLOCK", "SHMMAP", "SEEK", "DELETE_NOENT", "MMAP",
        "GETTEMPPATH", "CONVPATH", "VNODE", "AUTH", "BEGIN_ATOMIC", "COMMIT_ATOMIC",
        "ROLLBACK_ATOMIC", "DATA", "CORRUPTFS",
    ],
    "SQLITE_LOCKED": ["SHAREDCACHE", "VTAB"],
    "SQLITE_BUSY": ["RECOVERY", "SNAPSHOT", "TIMEOUT"],
    "SQLITE_CANTOPEN": ["NOTEMPDIR", "ISDIR", "FULLPATH", "CONVPATH", "DIRTYWAL", "SYMLINK"],
    "SQLITE_CORRUPT": ["VTAB", "SEQUENCE", "INDEX"],
    "SQLITE_READONLY": ["RECOVERY", "CANTLOCK", "ROLLBACK", "DBMOVED", "CANTINIT", "DIRECTORY"],
    "SQLITE_ABORT": ["ROLLBACK"],
    "SQLITE_CONSTRAINT": [
        "CHECK", "COMMITHOOK", "FOREIGNKEY", "FUNCTION", "NOTNULL", "PRIMARYKEY", "TRIGGER",
        "UNIQUE", "VTAB", "ROWID", "PINNED", "DATATYPE",
    ],
    "SQLITE_NOTICE": ["RECOVER_WAL", "RECOVER_ROLLBACK"],
    "SQLITE_WARNING": ["AUTOINDEX"],
    "SQLITE_AUTH": ["USER"],
}

ERROR_CODES = dict(_PRIMARY)
for _primary, _subs in _EXTENDED.items():
    for _i, _sub in enumerate(_subs, start=1):
        ERROR_CODES[f"{_primary}_{_sub}"] = _PRIMARY[_primary] | (_i << 8)

# Primary code -> class, as CPython's sqlite3 maps them.
_BY_PRIMARY = {
    2: InternalError, 12: InternalError,
    7: OperationalError,  # sqlite3 raises MemoryError; a server's NOMEM is an operational failure
    1: OperationalError, 3: OperationalError, 4: OperationalError, 5: OperationalError,
    6: OperationalError, 8: OperationalError, 9: OperationalError, 10: OperationalError,
    13: OperationalError, 14: OperationalError, 15: OperationalError, 16: OperationalError,
    17: OperationalError, 23: OperationalError,
    11: DatabaseError, 26: DatabaseError,
    18: DataError,
    19: IntegrityError, 20: IntegrityError,
    21: InterfaceError, 25: InterfaceError,
}

# Codes skylite (and sqld) use for mistakes in the request rather than failures of the database.
_PROGRAMMING_CODES = {
    "ARGS_INVALID", "SQL_NO_STATEMENT", "SQL_MANY_STATEMENTS", "SQL_PARSE_ERROR",
    "SQL_INPUT_ERROR", "SQL_UNKNOWN", "ARGS_BOTH_POSITIONAL_AND_NAMED",
}


for _cls in (Warning, Error, InterfaceError, DatabaseError, DataError, OperationalError,
             IntegrityError, InternalError, ProgrammingError, NotSupportedError):
    _cls.__module__ = "skylite"


def _make_error(kind, code, message, http_status=None):
    """Called by the Rust core: the exception for one failure."""
    if kind == "sqlite" and code:
        primary_name = code
        number = ERROR_CODES.get(code)
        if number is None:
            # An extended code this table does not know: fall back to its primary code.
            for name in _PRIMARY:
                if code.startswith(name + "_"):
                    primary_name = name
            number = _PRIMARY.get(primary_name)
        cls = _BY_PRIMARY.get((number or 0) & 0xFF, DatabaseError)
        if message and "more than one statement" in message:
            cls = ProgrammingError  # sqlite3: "You can only execute one statement at a time."
        exc = cls(message)
        exc.sqlite_errorcode = number
        exc.sqlite_errorname = code
    else:
        if kind == "server":
            if code in _PROGRAMMING_CODES or (code or "").startswith("SQL_"):
                cls = ProgrammingError
            else:
                cls = OperationalError
        elif kind in ("auth", "http", "timeout", "connect", "lost", "open"):
            cls = OperationalError
        elif kind == "config":
            cls = ProgrammingError
        elif kind == "decode":
            cls = DataError
        elif kind == "protocol":
            cls = InterfaceError
        else:
            cls = DatabaseError
        exc = cls(message)
        exc.sqlite_errorname = code
    exc.http_status = http_status
    return exc


# Adapters: type -> callable returning int, float, str, bytes or None (as sqlite3.register_adapter).
adapters: dict = {}


def register_adapter(type_, adapter):
    """Registers ``adapter(value)`` for parameters of ``type_`` (as ``sqlite3.register_adapter``)."""
    adapters[type_] = adapter


def _adapt(value):
    """Called by the Rust core for a parameter that is not None/int/float/str/bytes."""
    for cls in type(value).__mro__:
        adapter = adapters.get(cls)
        if adapter is not None:
            return adapter(value)
    # stdlib sqlite3's default adapters (ISO 8601 text).
    if isinstance(value, datetime.datetime):
        return value.isoformat(" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, datetime.time):
        return value.isoformat()
    conform = getattr(value, "__conform__", None)
    if conform is not None:
        adapted = conform(PrepareProtocol)
        if adapted is not None:
            return adapted
    raise ProgrammingError(f"type '{type(value).__name__}' is not supported")


class PrepareProtocol:
    """The protocol object passed to ``__conform__`` (as ``sqlite3.PrepareProtocol``)."""


def _complete(future, result, error):
    """Called on the event loop by the Rust core when an async request is done."""
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


_skylite._set_hooks(_make_error, _adapt, _complete)

# One completion queue per event loop (see _skylite.LoopWaker): the I/O threads queue outcomes
# without the GIL and wake the loop through a socket it watches.
_wakers = weakref.WeakKeyDictionary()


def waker(loop):
    """The completion queue of ``loop``, created (and watched by the loop) on first use, and
    again in a forked child (the parent's socket would be shared with the parent)."""
    pid = os.getpid()
    owner, w = _wakers.get(loop, (None, None))
    if owner != pid:
        if w is not None:
            loop.remove_reader(w.fileno())
        w = _skylite.LoopWaker()
        loop.add_reader(w.fileno(), w.drain)
        _wakers[loop] = (pid, w)
    return w
# Requests still in flight when Python exits must not call back into a finalizing interpreter.
atexit.register(_skylite._shutdown)


# PEP 249 type objects and constructors.
class _TypeObject:
    def __init__(self, *names):
        self.names = {n.upper() for n in names}

    def __eq__(self, other):
        return isinstance(other, str) and other.upper() in self.names

    def __hash__(self):
        return hash(frozenset(self.names))


STRING = _TypeObject("TEXT", "VARCHAR", "CHAR", "CLOB")
BINARY = _TypeObject("BLOB")
NUMBER = _TypeObject("INTEGER", "INT", "REAL", "FLOAT", "DOUBLE", "NUMERIC")
DATETIME = _TypeObject("DATE", "DATETIME", "TIMESTAMP", "TIME")
ROWID = _TypeObject("INTEGER")

Binary = bytes
Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime


def DateFromTicks(ticks):
    return Date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks):
    return Time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks):
    return Timestamp(*time.localtime(ticks)[:6])


# The first keyword of a statement, after whitespace and comments.
_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/)*", re.S)


def first_keyword(sql: str) -> str:
    m = _LEADING.match(sql)
    rest = sql[m.end():] if m else sql
    word = re.match(r"[A-Za-z]+", rest)
    return word.group(0).upper() if word else ""


# Statements before which stdlib sqlite3 (legacy transaction control) opens a transaction.
DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})

# sqlite3.LEGACY_TRANSACTION_CONTROL
LEGACY_TRANSACTION_CONTROL = -1

_ISOLATION_LEVELS = {"", "DEFERRED", "IMMEDIATE", "EXCLUSIVE"}


def check_isolation_level(level):
    if level is None:
        return None
    if not isinstance(level, str):
        raise TypeError("isolation_level must be str or None")
    if level.upper() not in _ISOLATION_LEVELS:
        raise ValueError(
            "isolation_level string must be '', 'DEFERRED', 'IMMEDIATE', or 'EXCLUSIVE'"
        )
    return level


def check_autocommit(value):
    if value is True or value is False or value == LEGACY_TRANSACTION_CONTROL:
        return value
    raise ValueError(
        "autocommit must be True, False, or sqlite3.LEGACY_TRANSACTION_CONTROL"
    )


def description_of(result):
    cols = result.columns
    if not cols:
        return None
    return tuple((name, None, None, None, None, None, None) for name in cols)


class Streamed:
    """The rows of a streamed query (``Connection.cursor(stream=True)``), pulled from the Rust
    core in chunks as they are fetched; memory stays flat however large the result."""

    CHUNK = 512
    rows_affected = -1
    last_insert_rowid = None

    def __init__(self, row_cursor):
        self._rc = row_cursor
        self._buf = collections.deque()
        self.done = False

    @property
    def columns(self):
        return self._rc.columns

    def _took(self, rows, n):
        if len(rows) < n:
            self.done = True
            self._rc = _FINISHED
        self._buf.extend(rows)

    def _want(self, n):
        return max(n - len(self._buf), self.CHUNK)

    # Sync side.
    def _fill(self, n):
        n = self._want(n)
        self._took(self._rc.fetchmany(n), n)

    def fetchone(self):
        if not self._buf and not self.done:
            self._fill(1)
        return self._buf.popleft() if self._buf else None

    def fetchmany(self, n):
        while len(self._buf) < n and not self.done:
            self._fill(n)
        return [self._buf.popleft() for _ in range(min(n, len(self._buf)))]

    def fetchall(self):
        while not self.done:
            self._fill(4096)
        rows = list(self._buf)
        self._buf.clear()
        return rows

    def buffer_all(self):
        """Reads the rest into memory (another call on the connection needs its stream)."""
        while not self.done:
            self._fill(4096)

    # Asyncio side.
    async def _afill(self, n):
        import asyncio

        # At most CHUNK rows per await: they become tuples on the event loop's thread.
        n = min(self._want(n), self.CHUNK)
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._rc.fetchmany_async(waker(loop), future, n)
        self._took(await future, n)

    async def afetchone(self):
        if not self._buf and not self.done:
            await self._afill(1)
        return self._buf.popleft() if self._buf else None

    async def afetchmany(self, n):
        while len(self._buf) < n and not self.done:
            await self._afill(n)
        return [self._buf.popleft() for _ in range(min(n, len(self._buf)))]

    async def afetchall(self):
        while not self.done:
            await self._afill(4096)
        rows = list(self._buf)
        self._buf.clear()
        return rows

    async def abuffer_all(self):
        while not self.done:
            await self._afill(4096)


class _Finished:
    columns = ()

    def fetchmany(self, n):
        return []


_FINISHED = _Finished()


# Statements that only read: re-running one through a cursor when its whole result did not fit
# one response is harmless.
READ_ONLY = frozenset({"SELECT", "VALUES", "EXPLAIN"})


_WRITE_WORD = re.compile(r"\b(INSERT|UPDATE|DELETE|REPLACE)\b", re.I)


def is_read_only(sql):
    """A conservative test: SELECT/VALUES/EXPLAIN, or WITH without a write keyword anywhere."""
    keyword = first_keyword(sql)
    return keyword in READ_ONLY or (keyword == "WITH" and not _WRITE_WORD.search(sql))


def too_large(error, sql):
    """Whether ``error`` is a read's result that exceeded the server's response limit."""
    return (getattr(error, "sqlite_errorname", None) == "RESPONSE_TOO_LARGE"
            and is_read_only(sql))
