from datetime import datetime

import sqlalchemy as sa
from sqlmodel import SQLModel

import bot.models  # noqa: F401
from adapters.slack.installations import store_metadata
from alembic import command
from bot import database

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
