"""Fixtures of the reliability suite."""

from tests.web.browser import browser  # noqa: F401  (a fixture: pytest finds it by name)
