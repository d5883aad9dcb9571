"""Alembic environment: migrations for paperbot's SQLModel tables."""

from __future__ import annotations

from logging.config import fileConfig

from sqlmodel import SQLModel

import bot.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from adapters.slack.installations import store_metadata
from alembic import context
from bot.database import create_engine

config = context.config
if config.config_file_name is not None and not config.attributes.get("skip_logging"):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

# slack-sdk's installation and OAuth state tables are compared too, not filtered
# out: built by slack-sdk's own table builders, so `alembic check` notices when a
# slack-sdk upgrade changes them and migration 0003 needs a successor.
target_metadata = [SQLModel.metadata, store_metadata()]


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from bot.settings import load_settings

    return load_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=_url(), target_metadata=target_metadata, render_as_batch=True, literal_binds=True
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = _url()
    engine = create_engine(url)
    # paperbot_write: on SQLite the migration's transaction takes the write lock
    # up front (BEGIN IMMEDIATE, bot.database), waiting out another process's
    # write as every write does. A deferred one read alembic_version first, and
    # SQLite fails a read upgrading to a write under a held lock at once.
    with engine.connect().execution_options(paperbot_write=True) as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
