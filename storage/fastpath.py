"""The hot path's database access: plain SQL on the pooled connection's own driver, no ORM.

SQLAlchemy still owns the pool, the connect-time pragmas (SQLite) and codecs (asyncpg's json);
this module borrows a pooled connection and talks to its driver directly. Why: an ORM call
costs ~1 ms of CPU (session, unit of work, identity map, compiled-cache lookups), and on SQLite
each statement through SQLAlchemy's aiosqlite adapter is ~4 trips to the connection's worker
thread (cursor, execute, fetchall, close). Here a batch of statements is one trip on SQLite,
and one asyncpg call per statement on PostgreSQL. Values are converted with the dialect's own
bind/result processors, so rows written here read back identically through the ORM.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncEngine

try:  # PostgreSQL is optional at run time; the SQLite default must not need asyncpg
    import asyncpg
except ImportError:  # pragma: no cover - asyncpg is a dependency, but keep SQLite-only installs
    asyncpg = None

Step = tuple[str, str, Any]  # (kind, SQL with ? placeholders, params); kind: rows|row|exec|many


class Rec:
    """A row as attributes (what Store._conv_view/_msg_view/_lead_view read)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    if TYPE_CHECKING:  # columns are attributes; tell the type checker so

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...


class Codec:
    """Column names of one table and the dialect's converters between Python and the driver."""

    def __init__(self, table: Table, dialect: Dialect) -> None:
        self.cols = tuple(c.name for c in table.columns)
        self.select = ", ".join(self.cols)
        self.table = table.name
        self._bind: dict[str, Any] = {}
        self._load: list[Any] = []
        for c in table.columns:
            impl = c.type.dialect_impl(dialect)
            self._bind[c.name] = impl.bind_processor(dialect)
            self._load.append(impl.result_processor(dialect, None))

    def dump(self, col: str, value: Any) -> Any:
        """The driver value of a Python value for col (None stays SQL NULL)."""
        proc = self._bind[col]
        return proc(value) if proc is not None and value is not None else value

    def load(self, row: Sequence[Any]) -> Rec:
        """A selected row (all columns, in table order) as a Rec of Python values."""
        return Rec(
            **{
                col: (proc(v) if proc is not None and v is not None else v)
                for col, proc, v in zip(self.cols, self._load, row, strict=True)
            }
        )


def _sqlite_batch(db: sqlite3.Connection, steps: Sequence[Step]) -> list[Any]:
    """Run steps on the connection's own thread; roll back an open transaction on error."""
    out: list[Any] = []
    try:
        for kind, sql, params in steps:
            if kind == "many":
                cur = db.executemany(sql, params)
                out.append(cur.rowcount)
            else:
                cur = db.execute(sql, params)
                if kind == "rows":
                    out.append(cur.fetchall())
                elif kind == "row":
                    rows = cur.fetchall()  # fully stepped: RETURNING rows are all written
                    out.append(rows[0] if rows else None)
                else:
                    out.append(cur.rowcount)
            cur.close()
    except BaseException:
        if db.in_transaction:
            db.rollback()
        raise
    return out


class Link:
    """One pooled connection used through its driver: run() executes a batch of steps."""

    def __init__(self, driver: Any, sqlite: bool) -> None:
        self._driver = driver
        self.sqlite = sqlite
        self.in_tx = False  # an explicit transaction this link opened is still open

    async def run(self, steps: Sequence[Step]) -> list[Any]:
        """Results of steps in order: rows → list, row → first row or None, exec → rowcount."""
        if self.sqlite:
            # aiosqlite has no public "run this function on your thread"; _execute is what its
            # own methods use (SQLAlchemy's adapter uses the same queue for isolation_level).
            return await self._driver._execute(_sqlite_batch, self._driver._conn, steps)
        out: list[Any] = []
        d = self._driver
        for kind, sql, params in steps:
            sql = _numbered(sql)
            if kind == "rows":
                out.append(await d.fetch(sql, *params))
            elif kind == "row":
                out.append(await d.fetchrow(sql, *params))
            elif kind == "many":
                await d.executemany(sql, params)
                out.append(len(params))
            else:
                status = await d.execute(sql, *params) if params else await d.execute(sql)
                tail = status.rsplit(" ", 1)[-1]
                out.append(int(tail) if tail.isdigit() else 0)
        return out

    async def one(self, kind: str, sql: str, params: Sequence[Any] = ()) -> Any:
        """run() of a single step."""
        return (await self.run([(kind, sql, tuple(params))]))[0]

    async def rollback(self) -> None:
        """End this link's open transaction, if the database still has one."""
        self.in_tx = False
        if self.sqlite:
            await self._driver._execute(_sqlite_rollback, self._driver._conn)
        else:
            await self._driver.execute("ROLLBACK")


def _sqlite_rollback(db: sqlite3.Connection) -> None:
    if db.in_transaction:  # a failed batch has already rolled back
        db.rollback()


_NUMBERED: dict[str, str] = {}


def _numbered(sql: str) -> str:
    """? placeholders as asyncpg's $1, $2... (no ? appears in our SQL otherwise)."""
    done = _NUMBERED.get(sql)
    if done is None:
        head, *rest = sql.split("?")
        done = head + "".join(f"${i}{part}" for i, part in enumerate(rest, 1))
        _NUMBERED[sql] = done
    return done


def is_transient_driver_error(exc: BaseException) -> bool:
    """A raw driver error that means "the database is briefly away or busy" (worth a retry)."""
    if isinstance(exc, sqlite3.OperationalError):
        # Busy, locked or I/O trouble pass; "no such table" or a syntax error never will,
        # and must not pass for an outage.
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name:
            return name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_IOERR"))
        text = str(exc).lower()
        return "locked" in text or "busy" in text or "disk i/o" in text
    if asyncpg is not None and isinstance(
        exc,
        asyncpg.PostgresConnectionError
        | asyncpg.InterfaceError
        | asyncpg.exceptions.OperatorInterventionError
        # A connection the server killed mid-operation can be left in a confused protocol
        # state; it must be thrown away and the operation retried on a fresh one.
        | asyncpg.exceptions.InternalClientError,
    ):
        return True
    return False


def is_unique_violation(exc: BaseException, index: str, columns: str) -> bool:
    """A raw driver error saying that unique index refused a row (SQLite names its columns)."""
    if isinstance(exc, sqlite3.IntegrityError):
        return str(exc) == f"UNIQUE constraint failed: {columns}"
    return (
        asyncpg is not None
        and isinstance(exc, asyncpg.UniqueViolationError)
        and exc.constraint_name == index
    )


@asynccontextmanager
async def link(engine: AsyncEngine) -> AsyncIterator[Link]:
    """A pooled connection as a Link; an open transaction is rolled back on error.

    A connection that failed in a way that may have broken it is invalidated, so the pool
    replaces it (the caller's retry then gets a fresh one).
    """
    async with engine.connect() as ac:
        raw = await ac.get_raw_connection()
        lk = Link(raw.driver_connection, engine.dialect.name == "sqlite")
        try:
            yield lk
            if lk.in_tx:  # a caller that opened a transaction must have closed it
                raise RuntimeError("transaction left open on the fast path")
        except BaseException as exc:
            broken = is_transient_driver_error(exc) and not lk.sqlite
            if lk.in_tx and not broken:
                try:
                    await lk.rollback()
                except Exception:
                    broken = True
            lk.in_tx = False
            if broken:
                await ac.invalidate()
            raise
