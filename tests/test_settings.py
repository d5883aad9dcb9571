import sqlite3
import subprocess
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest

from bot.errors import PlatformUnreachable
from bot.settings import SettingsError, load_settings
from tests.helpers import PAPERBOT, subprocess_env


def test_defaults_are_embedded_and_local() -> None:
    s = load_settings()
    assert s.database_url == "sqlite:///./data/paperbot.db"
    assert s.embedding_model == "bundled"
    assert s.web_enabled and not s.discord_enabled and not s.slack_enabled


def test_conventional_credential_names_are_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DISCORD_TOKEN", "discord-secret-value")
    s = load_settings()
    assert s.discord_enabled and not s.web_enabled
    assert "discord-secret-value" not in repr(s)
    assert (
        s.discord_token is not None and s.discord_token.get_secret_value() == "discord-secret-value"
    )


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("PAPERBOT_DATABASE_URL", "mysql://x", "PAPERBOT_DATABASE_URL"),
        # In memory: each process would have its own, empty database.
        ("PAPERBOT_DATABASE_URL", "sqlite://", "PAPERBOT_DATABASE_URL"),
        ("PAPERBOT_DATABASE_URL", "sqlite:///", "PAPERBOT_DATABASE_URL"),
        ("PAPERBOT_DATABASE_URL", "sqlite:///:memory:", "PAPERBOT_DATABASE_URL"),
        ("PAPERBOT_HTTP_PORT", "eighty", "PAPERBOT_HTTP_PORT"),
        ("PAPERBOT_INGEST_CRON", "every day", "PAPERBOT_INGEST_CRON"),
        ("PAPERBOT_EMBEDDING_MODEL", "/no/such/model", "PAPERBOT_EMBEDDING_MODEL"),
        ("PAPERBOT_SLACK_MODE", "carrier-pigeon", "PAPERBOT_SLACK_MODE"),
        ("PAPERBOT_INGEST_CRON", "99 2 * * *", "PAPERBOT_INGEST_CRON"),  # five fields, no time
        ("PAPERBOT_ARXIV_CATEGORIES", '["cs.CL"', "PAPERBOT_ARXIV_CATEGORIES"),
        ("PAPERBOT_POST_GRACE", "soon", "PAPERBOT_POST_GRACE"),
    ],
)
def test_bad_setting_names_the_setting(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert message.startswith(expected) and "\n" not in message


def test_a_model_folder_without_a_model_names_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PAPERBOT_EMBEDDING_MODEL", str(tmp_path))  # exists, holds nothing
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert str(info.value).startswith("PAPERBOT_EMBEDDING_MODEL: is a directory with no")
    (tmp_path / "modules.json").write_text("[]")
    assert load_settings().embedding_model == str(tmp_path)


_NOT_A_DURATION = "PAPERBOT_POST_GRACE: must be an ISO 8601 duration such as PT6H"
# Negative, no post would ever be on time; under a minute, whether one is depends on
# the second the minute's tick happens to run at.
_UNDER_A_MINUTE = (
    "PAPERBOT_POST_GRACE: must be at least a minute (PT1M): posts are due once a minute"
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("6h", _NOT_A_DURATION),
        ("soon", _NOT_A_DURATION),
        ("-", _NOT_A_DURATION),
        ("-PT1H", _UNDER_A_MINUTE),
        ("0", _UNDER_A_MINUTE),
        ("PT30S", _UNDER_A_MINUTE),
    ],
)
def test_a_bad_post_grace_stops_start_up_saying_what_is_expected(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str
) -> None:
    monkeypatch.setenv("PAPERBOT_POST_GRACE", value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    if expected == _NOT_A_DURATION:
        assert message.startswith(expected) and "or whole seconds" in message
    else:
        assert message == expected


@pytest.mark.parametrize(
    ("env", "value", "field", "expected"),
    [
        ("PAPERBOT_INGEST_CRON", "40 2 * * mon-fri", "ingest_cron", "40 2 * * mon-fri"),
        ("PAPERBOT_ARXIV_CATEGORIES", "cs.CL, cs.LG", "arxiv_categories", ["cs.CL", "cs.LG"]),
        ("PAPERBOT_ARXIV_CATEGORIES", '["cs.CL","cs.LG"]', "arxiv_categories", ["cs.CL", "cs.LG"]),
        ("PAPERBOT_POST_GRACE", "3600", "post_grace", timedelta(hours=1)),
        ("PAPERBOT_POST_GRACE", "PT2H", "post_grace", timedelta(hours=2)),
        ("PAPERBOT_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("PAPERBOT_LOG_LEVEL", "Warning", "log_level", "WARNING"),
    ],
)
def test_values_as_people_write_them_are_read(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(env, value)
    assert getattr(load_settings(), field) == expected


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({"SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_APP_TOKEN"),
        ({"SLACK_APP_TOKEN": "xapp-1"}, "SLACK_BOT_TOKEN"),
        ({"PAPERBOT_SLACK_MODE": "http", "SLACK_SIGNING_SECRET": "s"}, "SLACK_BOT_TOKEN"),
        ({"PAPERBOT_SLACK_MODE": "http", "SLACK_BOT_TOKEN": "xoxb-1"}, "SLACK_SIGNING_SECRET"),
        ({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_APP_TOKEN": "xapp-1"}, None),
        (
            {"PAPERBOT_SLACK_MODE": "http", "SLACK_SIGNING_SECRET": "s", "SLACK_CLIENT_ID": "1"},
            "SLACK_CLIENT_SECRET",  # OAuth needs both halves
        ),
        ({"SLACK_CLIENT_SECRET": "c"}, "SLACK_CLIENT_ID"),
        (
            # OAuth in the default Socket Mode: the install flow needs HTTP mode,
            # not the bot token the README says to leave unset.
            {"SLACK_SIGNING_SECRET": "s", "SLACK_CLIENT_ID": "1", "SLACK_CLIENT_SECRET": "c"},
            "PAPERBOT_SLACK_MODE: must be http",
        ),
        ({"SLACK_CLIENT_ID": "1", "SLACK_CLIENT_SECRET": "c"}, "PAPERBOT_SLACK_MODE: must be http"),
        (
            {
                "PAPERBOT_SLACK_MODE": "http",
                "SLACK_SIGNING_SECRET": "s",
                "SLACK_CLIENT_ID": "1",
                "SLACK_CLIENT_SECRET": "c",
            },
            None,
        ),
        ({}, None),
    ],
)
def test_half_set_slack_credentials_name_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], missing: str | None
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    problem = load_settings().missing_credential()
    assert (problem or "").startswith(missing or "") and (problem is None) == (missing is None)


def test_run_with_half_set_slack_credentials_stops_with_one_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/p.db"
    result = _paperbot("run", SLACK_BOT_TOKEN="xoxb-1", PAPERBOT_DATABASE_URL=db)
    assert result.returncode == 2 and "SLACK_APP_TOKEN" in _one_line(result)
    assert not (tmp_path / "p.db").exists()  # stopped before touching the database


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    down = _paperbot("db", "current", PAPERBOT_DATABASE_URL="postgresql://u@127.0.0.1:1/db")
    assert down.returncode == 1
    assert _one_line(down).startswith("cannot open the database: connection failed")
    unwritable = _paperbot("db", "upgrade", PAPERBOT_DATABASE_URL="sqlite:////proc/no/p.db")
    assert unwritable.returncode == 2
    assert _one_line(unwritable).startswith("configuration error: PAPERBOT_DATABASE_URL")
    typo = _paperbot("db", "current", PAPERBOT_DATABASE_URL=f"sqlite:///{tmp_path}/typo/p.db")
    assert typo.stdout.strip() == f"database {tmp_path}/typo/p.db empty (no migrations applied)"
    assert not (tmp_path / "typo").exists()  # a read creates nothing


def test_a_database_migrated_by_a_newer_paperbot_is_one_line(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/p.db"
    assert _paperbot("db", "upgrade", PAPERBOT_DATABASE_URL=db).returncode == 0
    with closing(sqlite3.connect(tmp_path / "p.db")) as conn:  # as after rolling back a deploy
        conn.execute("UPDATE alembic_version SET version_num = '0099'")
        conn.commit()
    # Alembic's routine INFO lines aside, the error is one line.
    result = _paperbot("run", PAPERBOT_DATABASE_URL=db, PAPERBOT_LOG_LEVEL="WARNING")
    assert result.returncode == 1
    line = _one_line(result)
    assert line.startswith("cannot migrate the database:") and "newer paperbot" in line


@pytest.mark.parametrize(
    ("error", "code", "printed"),
    [
        (
            SettingsError("DISCORD_TOKEN: Discord rejected it"),
            2,
            "configuration error: DISCORD_TOKEN: Discord rejected it\n",
        ),
        (
            PlatformUnreachable("cannot reach Discord (DNS)"),
            1,
            "cannot start: cannot reach Discord (DNS)\n",
        ),
    ],
)
def test_an_adapters_start_up_error_inside_the_task_group_is_one_line(
    error: Exception,
    code: int,
    printed: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bot import cli

    def fails() -> None:  # as `runner.serve` raises it: inside a group
        raise ExceptionGroup("adapters", [error])

    monkeypatch.setattr(cli, "app", fails)
    with pytest.raises(SystemExit) as stop:
        cli.main()
    assert stop.value.code == code
    assert capsys.readouterr().err == printed


def test_postgresql_url_gets_the_psycopg_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAPERBOT_DATABASE_URL", "postgresql://u@127.0.0.1/db")
    assert load_settings().database_url.startswith("postgresql+psycopg://")


def _paperbot(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*PAPERBOT, *args], capture_output=True, text=True, timeout=120, env=subprocess_env(**env)
    )


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr[-500:]
    return lines[0]


def test_bad_setting_stops_the_cli_with_one_line_and_no_traceback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PAPERBOT_HTTP_PORT", "99999")
    result = _paperbot("db", "current")
    assert result.returncode == 2
    assert "PAPERBOT_HTTP_PORT" in _one_line(result)


def test_env_file_is_read(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PAPERBOT_LOOKBACK_DAYS=7\nSLACK_BOT_TOKEN=xoxb-test\n")
    s = load_settings()
    assert s.lookback_days == 7 and s.slack_bot_token is not None


@pytest.mark.parametrize("where", ["environment", ".env"])
def test_an_empty_value_counts_as_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # .env.example lists optional settings as `# NAME=`; uncommented, they stay unset.
    monkeypatch.chdir(tmp_path)
    defaults = load_settings()
    if where == "environment":
        for name in _env_names():
            monkeypatch.setenv(name, "")
    else:
        (tmp_path / ".env").write_text("".join(f"{name}=\n" for name in _env_names()))
    s = load_settings()
    assert s.model_dump() == defaults.model_dump()
    assert s.web_enabled and not s.discord_enabled and s.missing_credential() is None


def _env_names() -> list[str]:
    from bot.settings import Settings

    return [
        f.validation_alias.choices[0] if f.validation_alias else f"PAPERBOT_{name.upper()}"  # type: ignore[union-attr]
        for name, f in Settings.model_fields.items()
    ]


def test_every_setting_is_documented_in_env_example_and_readme() -> None:
    from tests.helpers import PROJECT_ROOT

    example = (PROJECT_ROOT / ".env.example").read_text()
    readme = (PROJECT_ROOT / "README.md").read_text()
    missing = [n for n in _env_names() if n not in example or n not in readme]
    assert not missing, f"undocumented settings: {missing}"


def test_env_example_states_the_defaults(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import PROJECT_ROOT

    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text((PROJECT_ROOT / ".env.example").read_text())
    from_example = load_settings()
    (tmp_path / ".env").unlink()
    assert from_example.model_dump() == load_settings().model_dump()
