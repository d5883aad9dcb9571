"""Engines, sessions, migrations and the retry policy for a busy database."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlmodel import SQLModel

from bot.settings import SettingsError

log = logging.getLogger(__name__)
T = TypeVar("T")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQLITE_BUSY_TIMEOUT_MS = 5_000


def create_engine(url: str) -> Engine:
    """An engine with the connection settings paperbot relies on."""
    if url.startswith("sqlite"):
        _make_sqlite_directory(url)
        engine = sa.create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=8,
            max_overflow=8,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return sa.create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite's own transaction handling defers BEGIN and breaks SAVEPOINT;
    # autocommit mode hands it to `_sqlite_begin`.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA foreign_keys=ON")
    # WAL makes NORMAL durable against process crashes; only power loss can drop
    # the last commits, which is the usual trade for a chat bot.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: sa.Connection) -> None:
    # A write transaction must take the write lock up front (IMMEDIATE): a
    # deferred one that upgrades later gets SQLITE_BUSY at once instead of
    # waiting on busy_timeout. Reads stay deferred so they never queue behind writers.
    mode = "IMMEDIATE" if conn.get_execution_options().get("paperbot_write") else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """One engine, with separate session factories for reading and writing."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.is_sqlite = url.startswith("sqlite")
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(paperbot_write=True), expire_on_commit=False
        )
        # SQLite has one writer at a time. Threads of this process queue here, in
        # order, instead of in SQLite's busy handler, which sleeps in growing steps
        # and wasted most of the time under a burst of reactions (bench/react.py).
        self._write_gate: AbstractContextManager[object] = (
            threading.RLock() if self.is_sqlite else nullcontext()
        )

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session, session.begin():
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        with self._write_gate, self._write() as session, session.begin():
            yield session

    def write_retrying(
        self, work: Callable[[Session], T], *, what: str, deadline: float = 30.0
    ) -> T:
        """Run `work` in its own write transaction, retried whole on transient errors."""

        def attempt() -> T:
            with self.write() as session:
                return work(session)

        return retrying(attempt, what=what, deadline=deadline)

    def dispose(self) -> None:
        self.engine.dispose()


def dialect_insert(session: Session):  # type: ignore[no-untyped-def]
    """The INSERT construct with ON CONFLICT for this session's database."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def upsert(
    session: Session, model: type[SQLModel], rows: list[dict[str, Any]], update: Sequence[str]
) -> None:
    """Insert `rows`, or where a row's key exists, set its `update` columns from it.

    One statement, not a read then a write (`Session.merge`): two sessions adding
    the same new key at once would both try to insert it, and one would fail.
    """
    if not rows:
        return
    statement = dialect_insert(session)(model).values(rows)
    keys = [column.name for column in sa.inspect(model).primary_key]
    session.execute(
        statement.on_conflict_do_update(
            index_elements=keys, set_={name: statement.excluded[name] for name in update}
        )
    )


def rowcount(result: sa.Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. `Session.execute` is typed as returning a
    `Result`; for those statements it returns its subclass `CursorResult`, which counts."""
    return cast(sa.CursorResult[Any], result).rowcount


def keys_in(columns: Sequence[Any], keys: Sequence[Sequence[Any]]) -> sa.ColumnElement[bool]:
    """`(a, b, ...) IN keys`, in a form SQLite can answer from an index.

    SQLite scans the whole table for a bare row-value IN; an IN per column
    lets it probe the key's index, and the row-value IN keeps the match exact.
    """
    per_column = [col.in_({key[i] for key in keys}) for i, col in enumerate(columns)]
    return sa.and_(*per_column, sa.tuple_(*columns).in_([tuple(key) for key in keys]))


RACE_ATTEMPTS = 3


# SQLite's errors that another connection's lock causes, and that pass when it is
# released. Its other "operational" errors stay: a read-only file or directory,
# a full disk, a file that cannot be opened, a table missing from an unmigrated
# database. Retrying those held a reaction's thread for the whole deadline and
# logged a warning a second, then failed anyway.
SQLITE_CONTENTION = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_PROTOCOL")


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying: a locked SQLite file, a restarting or unreachable server."""
    if isinstance(exc, OperationalError):
        name = getattr(exc.orig, "sqlite_errorname", None)
        return name is None or name.startswith(SQLITE_CONTENTION)
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def retrying(
    work: Callable[[], T],
    *,
    deadline: float = 30.0,
    what: str = "database work",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `work`, retrying transient database errors with backoff until `deadline` seconds.

    Feedback must not be lost when the database is locked or briefly down, so
    writes go through here; the caller sees the error only after the deadline.
    A constraint violation is retried too, but only `RACE_ATTEMPTS` times: it is
    most often another process's commit between this transaction's read and
    its write (two ingests adding the same paper, a forget deleting the user a
    follow is being added for), which a fresh run of `work` sees; a bug's
    violation fails again at once.
    """
    start = time.monotonic()
    delay = 0.05
    attempt = 0
    while True:
        attempt += 1
        try:
            return work()
        except Exception as exc:
            raced = isinstance(exc, IntegrityError) and attempt < RACE_ATTEMPTS
            if not (is_transient(exc) or raced) or time.monotonic() - start + delay > deadline:
                raise
            log.warning(
                "%s failed (attempt %d, retrying in %.2fs): %s",
                what,
                attempt,
                delay,
                str(exc).splitlines()[0],
            )
            sleep(delay)
            delay = min(delay * 2, 2.0)


def _sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for other databases and in-memory SQLite."""
    path = url.removeprefix("sqlite:///")
    if not url.startswith("sqlite:///") or path in ("", ":memory:"):
        return None
    return Path(path)


def where(url: str) -> str:
    """The database `url` names, for the operator: a SQLite file's full path (a relative
    one depends on the working directory), or the URL with any password masked."""
    file = _sqlite_file(url)
    if file is not None:
        return str(file.resolve())
    return sa.make_url(url).render_as_string(hide_password=True)


def _make_sqlite_directory(url: str) -> None:
    """Create the directory of a SQLite file, so `./data/paperbot.db` works out of the box."""
    file = _sqlite_file(url)
    if file is None:
        return
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(
            f"PAPERBOT_DATABASE_URL: cannot create {file.parent}: {exc.strerror}"
        ) from None


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    # A checkout (or an editable install) has alembic/ and alembic.ini at its top;
    # a wheel carries the migrations as bot/migrations (pyproject.toml), and its
    # top is site-packages, where "alembic" is the library itself.
    packaged = Path(__file__).resolve().parent / "migrations"
    if packaged.is_dir():
        cfg = Config()
        cfg.set_main_option("script_location", str(packaged))
    else:
        cfg = Config(str(PROJECT_ROOT / "alembic.ini"))
        cfg.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    # When the app has set up logging (bot.logs, with secret masking), alembic.ini's
    # logging section must not replace it: that silenced every paperbot log line
    # after a migration. A bare `alembic` run still gets alembic.ini's logging.
    cfg.attributes["skip_logging"] = logging.getLogger().hasHandlers()
    return cfg


class MigrationError(Exception):
    """A migration cannot run. The message is one line saying why and what to do."""


# The oldest PostgreSQL paperbot runs on: the scheduler's locks rely on
# `idle_session_timeout` (14) to free a stalled leader's (bot/scheduler.py).
OLDEST_POSTGRES = (14,)


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    _make_sqlite_directory(url)
    _require_recent_server(url)
    _migrate(command.upgrade, url, revision)


def _require_recent_server(url: str) -> None:
    """A one-line error at start-up for a PostgreSQL too old, not a failing tick later."""
    if url.startswith("sqlite"):
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            version = conn.dialect.server_version_info or ()
    finally:
        engine.dispose()
    if version < OLDEST_POSTGRES:
        said = ".".join(map(str, version)) or "unknown"
        raise MigrationError(
            f"PostgreSQL {said} is too old: paperbot needs PostgreSQL "
            f"{OLDEST_POSTGRES[0]} or later (its scheduler's locks use idle_session_timeout)"
        )


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    _migrate(command.downgrade, url, revision)


def _migrate(step: Callable[[Any, str], None], url: str, revision: str) -> None:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    cfg = alembic_config(url)
    try:
        step(cfg, revision)
    except CommandError as exc:
        known = [script.revision for script in ScriptDirectory.from_config(cfg).walk_revisions()]
        newest, oldest = known[0], known[-1]
        current = current_revision(url)
        if current is not None and current not in known:
            # Most likely a deploy was rolled back after the newer code migrated the database.
            raise MigrationError(
                f"the database is at revision {current}, which this paperbot does not know "
                f"(its newest is {newest}): a newer paperbot migrated it; run that version, "
                f"or first downgrade with it: paperbot db downgrade {newest}"
            ) from None
        # Alembic's own first line names the revision ("Can't locate revision identified by").
        reason = str(exc).splitlines()[0] if str(exc) else f"cannot migrate to {revision!r}"
        raise MigrationError(
            f"{reason} (known revisions: {oldest} to {newest}, head and base)"
        ) from None


def current_revision(url: str) -> str | None:
    from alembic.runtime.migration import MigrationContext

    file = _sqlite_file(url)
    if file is not None and not file.exists():
        return None  # a read: a mistyped path must not become a new empty database
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
