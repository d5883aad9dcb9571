"""Errors the core raises on purpose. Their messages are safe to show to users."""

from __future__ import annotations


class PaperBotError(Exception):
    """Base class: `str(error)` is a short, friendly sentence with no internals."""


class UnknownPaper(PaperBotError):
    def __init__(self, paper_id: str) -> None:
        super().__init__(f"I don't know the paper {paper_id[:80]!r}.")
        self.paper_id = paper_id


class InvalidInput(PaperBotError):
    pass


class NotAllowed(PaperBotError):
    pass


class Unavailable(PaperBotError):
    """The database stayed busy or down past the retry deadline."""
