"""Multi-workspace installs: slack-sdk's SQLAlchemy installation and OAuth state stores.

The stores live on the project's database (tables `slack_installations`,
`slack_bots`, `slack_oauth_states`, created by Alembic revision 0003).
slack-sdk's async SQLAlchemy stores need an async driver; paperbot's engine
is synchronous, so these wrappers run the synchronous stores in a thread,
exactly like every other database call made from the event loop.
"""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from slack_sdk.oauth.installation_store.async_installation_store import AsyncInstallationStore
from slack_sdk.oauth.installation_store.models.bot import Bot
from slack_sdk.oauth.installation_store.models.installation import Installation
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.async_state_store import AsyncOAuthStateStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from bot.database import Database

INSTALLATIONS_TABLE = SQLAlchemyInstallationStore.default_installations_table_name
BOTS_TABLE = SQLAlchemyInstallationStore.default_bots_table_name
STATES_TABLE = SQLAlchemyOAuthStateStore.default_table_name
STATE_EXPIRY_SECONDS = 600


def store_metadata() -> sa.MetaData:
    """The tables slack-sdk's stores use, exactly as slack-sdk defines them (for Alembic)."""
    metadata = sa.MetaData()
    SQLAlchemyInstallationStore.build_installations_table(metadata, INSTALLATIONS_TABLE)
    SQLAlchemyInstallationStore.build_bots_table(metadata, BOTS_TABLE)
    SQLAlchemyOAuthStateStore.build_oauth_states_table(metadata, STATES_TABLE)
    return metadata


def _write_engine(db: Database) -> Any:
    # The store opens its own transactions; on SQLite they must take the write
    # lock up front like every other paperbot write (see bot.database).
    return db.engine.execution_options(paperbot_write=True)


class InstallationStore(AsyncInstallationStore):
    """slack-sdk's SQLAlchemy installation store, awaited off the event loop."""

    def __init__(self, db: Database, client_id: str) -> None:
        self.store = SQLAlchemyInstallationStore(client_id=client_id, engine=_write_engine(db))

    @property
    def logger(self) -> Any:
        return self.store.logger

    async def async_save(self, installation: Installation) -> None:
        await asyncio.to_thread(self.store.save, installation)

    async def async_save_bot(self, bot: Bot) -> None:
        await asyncio.to_thread(self.store.save_bot, bot)

    async def async_find_bot(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        is_enterprise_install: bool | None = False,
    ) -> Bot | None:
        return await asyncio.to_thread(
            self.store.find_bot,
            enterprise_id=enterprise_id,
            team_id=team_id,
            is_enterprise_install=is_enterprise_install,
        )

    async def async_find_installation(
        self,
        *,
        enterprise_id: str | None,
        team_id: str | None,
        user_id: str | None = None,
        is_enterprise_install: bool | None = False,
    ) -> Installation | None:
        return await asyncio.to_thread(
            self.store.find_installation,
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
            is_enterprise_install=is_enterprise_install,
        )

    async def async_delete_bot(self, *, enterprise_id: str | None, team_id: str | None) -> None:
        await asyncio.to_thread(self.store.delete_bot, enterprise_id=enterprise_id, team_id=team_id)

    async def async_delete_installation(
        self, *, enterprise_id: str | None, team_id: str | None, user_id: str | None = None
    ) -> None:
        await asyncio.to_thread(
            self.store.delete_installation,
            enterprise_id=enterprise_id,
            team_id=team_id,
            user_id=user_id,
        )

    async def bot_token(self, team_id: str) -> str | None:
        bot = await self.async_find_bot(enterprise_id=None, team_id=team_id)
        return bot.bot_token if bot else None


class StateStore(AsyncOAuthStateStore):
    """slack-sdk's SQLAlchemy OAuth state store, awaited off the event loop."""

    def __init__(self, db: Database, expiration_seconds: int = STATE_EXPIRY_SECONDS) -> None:
        self.store = SQLAlchemyOAuthStateStore(
            expiration_seconds=expiration_seconds, engine=_write_engine(db)
        )

    @property
    def logger(self) -> Any:
        return self.store.logger

    async def async_issue(self, *args: Any, **kwargs: Any) -> str:
        return await asyncio.to_thread(self.store.issue, *args, **kwargs)

    async def async_consume(self, state: str) -> bool:
        return await asyncio.to_thread(self.store.consume, state)
