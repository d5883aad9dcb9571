"""A database for one benchmark run: a fresh SQLite file, or a throwaway PostgreSQL database.

Benchmarks never write to the database a URL names: on a PostgreSQL server they
create a uniquely named database, hand out its URL, and drop it afterwards.
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa


@contextlib.contextmanager
def fresh_database(server_url: str | None, name: str = "bench") -> Iterator[str]:
    """Yield the URL of an empty database; None means a SQLite file in a temporary directory."""
    if server_url is None or server_url.startswith("sqlite"):
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite:///{Path(tmp) / f'{name}.db'}"
        return
    database = f"paperbot_{name}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    try:
        yield sa.make_url(server_url).set(database=database).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()
