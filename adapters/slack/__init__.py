"""Slack adapter: `/papers`, reactions and Block Kit buttons on slack-bolt, and the posting port.

Layout follows slack-samples/bolt-python-starter-template: listeners grouped
by kind (`commands`, `events`, `actions`), registered in one place
(`listeners`); `blocks` renders Block Kit, `posting` is the scheduler's port,
`installations` holds multi-workspace tokens, `app` assembles it all.
"""

from typing import Any

__all__ = ["SlackAdapter", "build_app", "create_adapter"]


def __getattr__(name: str) -> Any:
    # Lazy: alembic/env.py imports `adapters.slack.installations` for its table
    # definitions, and migrations (run by every paperbot process) should not load Bolt.
    if name in __all__:
        from adapters.slack import app

        return getattr(app, name)
    raise AttributeError(name)
