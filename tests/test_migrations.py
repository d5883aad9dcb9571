import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import tomllib
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from setuptools import find_packages
from sqlmodel import SQLModel

import bot.models  # noqa: F401
from adapters.slack.installations import store_metadata
from alembic import command
from bot import database
from tests.helpers import PROJECT_ROOT, subprocess_env

# Every table the migrations create: paperbot's models and slack-sdk's OAuth stores.
MIGRATED_TABLES = set(SQLModel.metadata.tables) | set(store_metadata().tables)


def _tables(url: str) -> set[str]:
    engine = database.create_engine(url)
    try:
        return set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_creates_every_model_table_and_check_is_clean(database_url: str) -> None:
    database.upgrade(database_url)
    assert _tables(database_url) == MIGRATED_TABLES
    # Raises if the models and the migrations disagree.
    command.check(database.alembic_config(database_url))


def test_downgrade_to_base_and_up_again(database_url: str) -> None:
    database.upgrade(database_url)
    database.downgrade(database_url, "base")
    assert _tables(database_url) == set()
    assert database.current_revision(database_url) is None
    database.upgrade(database_url)
    assert _tables(database_url) == MIGRATED_TABLES


def test_sqlite_runs_with_wal_busy_timeout_and_foreign_keys(sqlite_url: str) -> None:
    db = database.Database(sqlite_url)
    with db.read() as session:
        assert session.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"
        assert (
            session.execute(sa.text("PRAGMA busy_timeout")).scalar()
            == database.SQLITE_BUSY_TIMEOUT_MS
        )
        assert session.execute(sa.text("PRAGMA foreign_keys")).scalar() == 1
    db.dispose()


def test_a_migration_waits_for_another_process_writing_to_sqlite(sqlite_url: str) -> None:
    # A deploy migrates while the old process or a cron `paperbot tick` is
    # writing: the migration waits for the lock (busy_timeout) as every write
    # does, rather than stopping start-up with "database is locked" at once.
    database.upgrade(sqlite_url, "0008")
    holder = sqlite3.connect(
        sa.make_url(sqlite_url).database or "", isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    release = threading.Timer(1.0, holder.commit)
    release.start()
    try:
        database.upgrade(sqlite_url)
    finally:
        release.join()
        holder.close()
    assert database.current_revision(sqlite_url) == "0009"


def test_upgrading_drops_reaction_rows_left_without_feedback(database_url: str) -> None:
    database.upgrade(database_url, "0005")
    engine = database.create_engine(database_url)
    now = datetime(2025, 10, 6, 12, 0)
    try:
        with engine.begin() as db:
            db.execute(
                sa.text("INSERT INTO users VALUES ('slack', 'T1', 'ann', :now)"), {"now": now}
            )
            for paper_id, up_at in (("2501.00001", now), ("2501.00002", None)):  # liked, taken back
                db.execute(
                    sa.text(
                        "INSERT INTO papers (id, title, abstract, authors, source, listed_on,"
                        " upvotes, keywords, created_at, updated_at) VALUES"
                        " (:id, 't', 'a', '[]', 'hf', '2025-10-06', 0, '[]', :now, :now)"
                    ),
                    {"id": paper_id, "now": now},
                )
                db.execute(
                    sa.text(
                        "INSERT INTO reactions (platform, workspace, user_id, paper_id, up_at,"
                        " updated_at) VALUES ('slack', 'T1', 'ann', :id, :up_at, :now)"
                    ),
                    {"id": paper_id, "up_at": up_at, "now": now},
                )
        database.upgrade(database_url)
        with engine.connect() as db:
            assert db.execute(sa.text("SELECT paper_id FROM reactions")).scalars().all() == [
                "2501.00001"
            ]
    finally:
        engine.dispose()


def test_pyproject_packages_every_package_and_the_migrations() -> None:
    # The package list is explicit (a find cannot also map alembic/ to bot.migrations):
    # a package added later must be listed, or a wheel would silently lack it.
    config = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = find_packages(str(PROJECT_ROOT), include=["bot*", "adapters*"])
    assert sorted(config["packages"]) == sorted(
        [*found, "bot.migrations", "bot.migrations.versions"]
    )
    assert config["package-dir"] == {"bot.migrations": "alembic"}


def test_the_declared_dependencies_cover_what_migrating_imports() -> None:
    # alembic/env.py imports slack-sdk's SQLAlchemy installation store, which imports
    # sqlalchemy.ext.asyncio, and that needs greenlet (not a default SQLAlchemy 2.1
    # dependency). The dev tools bring greenlet in (Playwright), so only a `make run`
    # venv, which has no dev tools, failed: every `paperbot run` ended in a traceback.
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; import adapters.slack.installations; print('greenlet' in sys.modules)",
        ],
        cwd=PROJECT_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
    )
    assert imported.stdout.strip() == "True", imported.stderr[-2000:]
    dependencies = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    assert any(d.startswith(("sqlalchemy[asyncio]", "greenlet")) for d in dependencies)


def test_an_installed_wheels_layout_migrates_from_its_own_package(tmp_path: Path) -> None:
    # A wheel has no alembic/ beside the package: its migrations are bot/migrations,
    # and "alembic" next to it in site-packages is the library itself.
    site = tmp_path / "site"
    for package in ("bot", "adapters"):
        shutil.copytree(PROJECT_ROOT / package, site / package)
    shutil.copytree(PROJECT_ROOT / "alembic", site / "bot" / "migrations")
    url = f"sqlite:///{tmp_path / 'pb.db'}"
    env = {**subprocess_env(PAPERBOT_DATABASE_URL=url), "PYTHONPATH": str(site)}

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    imported = run("-c", "import bot.database; print(bot.database.__file__)")
    assert imported.stdout.strip() == str(site / "bot" / "database.py"), imported.stderr
    result = run("-m", "bot", "db", "upgrade")
    assert result.returncode == 0, result.stderr[-2000:]
    assert _tables(url) == MIGRATED_TABLES


def test_a_database_from_a_newer_paperbot_says_what_to_do(database_url: str) -> None:
    database.upgrade(database_url)
    engine = database.create_engine(database_url)
    try:
        with engine.begin() as db:  # as after rolling back a deploy that added 0099
            db.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    finally:
        engine.dispose()
    for migrate in (
        lambda: database.upgrade(database_url),
        lambda: database.downgrade(database_url, "0001"),
    ):
        with pytest.raises(database.MigrationError) as info:
            migrate()
        message = str(info.value)
        assert "0099" in message and "newer paperbot" in message and "\n" not in message


@pytest.mark.parametrize("direction", ["upgrade", "downgrade"])
def test_an_unknown_target_revision_is_named(sqlite_url: str, direction: str) -> None:
    database.upgrade(sqlite_url)
    with pytest.raises(database.MigrationError) as info:
        getattr(database, direction)(sqlite_url, "bogus")
    message = str(info.value)
    assert "'bogus'" in message and "known revisions: 0001" in message and "\n" not in message
    assert database.current_revision(sqlite_url) is not None  # nothing was undone


def test_the_database_is_named_without_its_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://paperbot:s3cret-pw@db.example:5432/paperbot"
    assert database.where(url) == "postgresql+psycopg://paperbot:***@db.example:5432/paperbot"
    # A relative SQLite path depends on the working directory: the full path says which.
    relative = f"sqlite:///{os.path.relpath(tmp_path / 'p.db')}"
    assert database.where(relative) == str((tmp_path / "p.db").resolve())


def test_a_postgresql_too_old_for_the_schedulers_locks_is_refused_in_one_line(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # idle_session_timeout came in PostgreSQL 14: on 13 the first lock taken failed,
    # in a tick, long after start-up said all was well.
    from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

    monkeypatch.setattr(PGDialect_psycopg, "_get_server_version_info", lambda self, conn: (13, 16))
    with pytest.raises(database.MigrationError) as refused:
        database.upgrade(postgres_url)
    assert str(refused.value) == (
        "PostgreSQL 13.16 is too old: paperbot needs PostgreSQL 14 or later "
        "(its scheduler's locks use idle_session_timeout)"
    )
    assert database.current_revision(postgres_url) is None  # nothing was migrated
    monkeypatch.undo()
    database.upgrade(postgres_url)  # this server (15 in CI) is recent enough
    assert database.current_revision(postgres_url) is not None
