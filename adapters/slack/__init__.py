"""Slack adapter: `/papers`, reactions and Block Kit buttons on slack-bolt, and the posting port.

Layout follows slack-samples/bolt-python-starter-template: listeners grouped
by kind (`commands`, `events`, `actions`), registered in one place
(`listeners`); `blocks` renders Block Kit, `posting` is the scheduler's port,
`installations` holds multi-workspace tokens, `app` assembles it all.
"""

from adapters.slack.app import SlackAdapter, build_app, create_adapter

__all__ = ["SlackAdapter", "build_app", "create_adapter"]
