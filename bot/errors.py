"""Errors the core raises on purpose. Their messages are safe to show to users."""

from __future__ import annotations

# What a user hears when their request failed on our side: a database that
# stayed busy or down past the retry deadline (nothing was stored), or a bug.
SORRY = "Sorry, something went wrong on my side. Please try again in a minute."


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


class PlatformUnreachable(Exception):
    """A chat platform could not be reached at start-up (DNS, a firewall, a proxy).

    Not a `PaperBotError`: it is said to the operator, in one line, and `paperbot
    run` exits 1, so a supervisor (systemd, Docker) can start it again.
    """
