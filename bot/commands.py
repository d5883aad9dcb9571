"""`/papers …` commands, independent of the platform.

Slack and the web adapter hand over the raw text (`parse`); Discord builds the
same `Command` values from its typed options. Every adapter then calls
`execute` (off its event loop) and renders the `Reply` natively.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field

from bot.domain import ChannelRef, Pick, SubscriptionInfo, UserRef
from bot.errors import SORRY, InvalidInput, NotAllowed, PaperBotError
from bot.paperbot import PaperBot, split_topics
from bot.ranking import short

log = logging.getLogger(__name__)

DEFAULT_POST_TIME = "09:00"
DEFAULT_TIMEZONE = "UTC"
ECHO_CHARS = 80  # of the query, in "Papers matching “…”"
EXAMPLE_CHARS = 70  # of an example paper's title, in a profile's interests

HELP = """\
*paperbot* recommends research papers from Hugging Face Daily Papers (and arXiv, if your team follows categories).
`/papers today [count]` – your personal picks for today
`/papers follow <topics>` – tell me what you work on, e.g. `diffusion models, speculative decoding`
`/papers unfollow <topics>` – stop following some of them
`/papers search <query>` – find stored papers by meaning
`/papers saved [count]` – the papers you saved 🔖, newest first
`/papers profile` – what I think you like, and what you follow
`/papers forget` – delete everything I know about you here (asks first)
`/papers subscribe [channel] [HH:MM] [timezone] [count]` – daily picks in a channel (managers only)
`/papers unsubscribe [channel]` – stop a channel's daily picks (managers only)
`/papers settings [channel]` – a channel's daily post and its state (managers only)
`/papers help` – this text
Use the 👍 👎 🔖 buttons on a pick to teach me, or react 👍 👎 🔖 to a daily post; removing a reaction takes it back."""


@dataclass(frozen=True)
class Today:
    count: int = 5


@dataclass(frozen=True)
class Follow:
    topics: str


@dataclass(frozen=True)
class Unfollow:
    topics: str


@dataclass(frozen=True)
class Search:
    query: str


@dataclass(frozen=True)
class Saved:
    count: int = 10


@dataclass(frozen=True)
class ShowProfile:
    pass


@dataclass(frozen=True)
class Forget:
    confirmed: bool = False


@dataclass(frozen=True)
class Subscribe:
    channel: str | None = None  # None: the channel the command came from
    at: str = DEFAULT_POST_TIME
    tz: str = DEFAULT_TIMEZONE
    count: int | None = None  # None: PAPERBOT_PICKS_PER_POST


@dataclass(frozen=True)
class Unsubscribe:
    channel: str | None = None


@dataclass(frozen=True)
class ShowSettings:
    channel: str | None = None


@dataclass(frozen=True)
class Help:
    unknown: str = ""  # the subcommand that was not understood, if that is why


Command = (
    Today
    | Follow
    | Unfollow
    | Search
    | Saved
    | ShowProfile
    | Forget
    | Subscribe
    | Unsubscribe
    | ShowSettings
    | Help
)
MANAGER_COMMANDS = (Subscribe, Unsubscribe, ShowSettings)


@dataclass(frozen=True)
class Invocation:
    """Who asked, where, and what they may do there. Built by the adapter."""

    user: UserRef
    channel: ChannelRef | None
    can_manage: bool = False  # Manage Channels on Discord; admin or channel creator on Slack
    # Turns a platform channel mention ("<#C123|general>", "#general") into a channel id.
    resolve_channel: Callable[[str], str | None] = field(default=lambda raw: None)
    # How a reply names a channel the user named: as written, unless the platform's
    # mention would not render there (a Slack reply shows "<#C123|papers>" as typed).
    show_channel: Callable[[str], str] = field(default=lambda raw: raw)
    # What the adapter is still setting up (the web page's first start embeds the
    # sample papers): an empty `today` says so, not that papers arrive tomorrow.
    setting_up: str | None = None


NEW_HERE = (
    "I don't know your interests yet, so these are picks for anyone here. Tell me what you "
    "work on (`/papers follow diffusion models, speech synthesis`) or use 👍 👎 on them, "
    "and your next picks will lean that way."
)

# What a 👍 👎 🔖 button click answers, on every platform: (it changed something, it did not).
_FEEDBACK_ANSWERS = {
    "up": ("Noted 👍: more like this.", "You already liked this one."),
    "down": ("Noted 👎: fewer like this.", "You already passed on this one."),
    "save": ("Saved 🔖 for later: /papers saved lists them.", "Already saved 🔖."),
    "unsave": ("Removed from your saved papers.", "That paper is not among your saved papers."),
}
FEEDBACK_KINDS = tuple(_FEEDBACK_ANSWERS)
UNSAVE_LABEL = "Remove from saved"


def feedback_reply(kind: str, changed: bool, paper_id: str) -> Reply:
    """The answer to a feedback button (one of `FEEDBACK_KINDS`), by whether it changed
    anything. 🔖 on a paper already saved offers to remove it: the 🔖 button itself
    only ever saves, so a double click cannot undo a save."""
    return Reply(
        text=_FEEDBACK_ANSWERS[kind][0 if changed else 1],
        offer_unsave=paper_id if kind == "save" and not changed else None,
    )


@dataclass(frozen=True)
class Reply:
    text: str = ""
    picks: list[Pick] = field(default_factory=list)
    ephemeral: bool = True
    confirm_forget: bool = False  # the adapter shows a confirmation button
    offer_unsave: str | None = None  # the adapter shows a button that unsaves this paper
    error: bool = False


def parse(text: str) -> Command:
    """Parse the text after `/papers`. Unknown or empty input gives `Help`; unknown
    input says so, so a typo is not answered as if help had been asked for."""
    # Topics and queries are taken as typed, as Discord's text options are: read as
    # shell words, "children's speech, LLMs' reasoning" lost both apostrophes.
    sub, rest = (*text.split(maxsplit=1), "", "")[:2]
    sub, rest = sub.lower(), rest.strip()
    if sub == "follow":
        return Follow(topics=rest)
    if sub == "unfollow":
        return Unfollow(topics=rest)
    if sub == "search":
        return Search(query=rest)
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    if not words:
        return Help()
    sub, args = words[0].lower(), words[1:]
    if sub == "today":
        return Today(count=_count(args[0]) if args else 5)
    if sub == "saved":
        return Saved(count=_count(args[0])) if args else Saved()
    if sub == "profile":
        return ShowProfile()
    if sub == "forget":
        return Forget()
    if sub == "subscribe":
        return _parse_subscribe(args)
    if sub == "unsubscribe":
        return Unsubscribe(channel=args[0] if args else None)
    if sub == "settings":
        return ShowSettings(channel=args[0] if args else None)
    return Help(unknown=sub if sub != "help" else "")


def _parse_subscribe(args: list[str]) -> Subscribe:
    channel, at, tz = None, DEFAULT_POST_TIME, DEFAULT_TIMEZONE
    count: int | None = None
    for arg in args:
        if arg.startswith(("#", "<#")):
            channel = arg
        elif ":" in arg or arg.lower().endswith(("am", "pm")):
            at = arg
        elif "/" in arg or arg.upper() == "UTC":
            tz = arg
        elif arg.isdecimal():
            count = _count(arg)
        else:
            raise InvalidInput(
                f"I don't understand {arg[:40]!r}. Try: /papers subscribe #papers 09:00 Europe/Berlin 5"
            )
    return Subscribe(channel=channel, at=at, tz=tz, count=count)


def _count(raw: str) -> int:
    # isdecimal, not isdigit: "²" and "⑤" are digits that int() refuses.
    if not raw.isdecimal() or not 1 <= int(raw) <= 10:
        raise InvalidInput("The count is a number from 1 to 10.")
    return int(raw)


def execute(core: PaperBot, inv: Invocation, command: Command) -> Reply:
    """Run one command. Never raises: errors become a short, friendly reply."""
    try:
        if isinstance(command, MANAGER_COMMANDS) and not inv.can_manage:
            raise NotAllowed("Only members who can manage channels may change daily posts.")
        return _run(core, inv, command)
    except PaperBotError as exc:
        return Reply(text=str(exc), error=True)
    except Exception:
        log.exception("command %s failed for %s", type(command).__name__, inv.user)
        return Reply(text=SORRY, error=True)


def run_text(core: PaperBot, inv: Invocation, text: str) -> Reply:
    try:
        command = parse(text)
    except PaperBotError as exc:
        return Reply(text=str(exc), error=True)
    return execute(core, inv, command)


def _run(core: PaperBot, inv: Invocation, command: Command) -> Reply:
    match command:
        case Today(count=count):
            picks = core.today(inv.user, limit=count)
            if not picks and inv.setting_up:
                return Reply(
                    text=f"I'm still setting up ({inv.setting_up}). Try again in a moment."
                )
            if not picks:
                return Reply(
                    text="No papers yet. They arrive every day after the Daily Papers list updates."
                )
            if core.knows(inv.user):
                return Reply(text="Your picks for today:", picks=picks)
            # A follow is what most improves someone's first picks (README, "Offline
            # evaluation": 4.6x random on day 1 with one, about 1x without).
            return Reply(text=f"Your picks for today:\n{NEW_HERE}", picks=picks)
        case Follow(topics=topics):
            followed = core.follow(inv.user, topics)
            return Reply(
                text="Following: " + ", ".join(followed) + ". Your picks will lean that way."
            )
        case Unfollow(topics=topics):
            return Reply(text=_unfollow(core, inv.user, topics))
        case Search(query=query):
            picks = core.search(inv.user, query)
            return Reply(
                text=f"Papers matching “{short(query, ECHO_CHARS)}”:"
                if picks
                else "Nothing found.",
                picks=picks,
            )
        case Saved(count=count):
            picks = core.saved(inv.user, limit=count)
            if not picks:
                return Reply(text="Nothing saved yet. Press 🔖 on a pick to keep it here.")
            return Reply(text="Your saved papers, newest first:", picks=picks)
        case ShowProfile():
            return Reply(text=describe_profile(core, inv.user))
        case Forget(confirmed=False):
            return Reply(
                text="This deletes your reactions, follows and picks history in this workspace. Sure?",
                confirm_forget=True,
            )
        case Forget(confirmed=True):
            count = core.forget(inv.user)
            return Reply(
                text=f"Done: I deleted {_counted(count, 'record')} about you. I start afresh."
            )
        case Subscribe():
            channel = _target(inv, command.channel)
            info = core.subscribe(channel, command.at, command.tz, command.count, by=inv.user.user)
            where = "this channel" if command.channel is None else inv.show_channel(command.channel)
            return Reply(text=f"{_schedule(info)} in {where}.")
        case Unsubscribe():
            channel = _target(inv, command.channel)
            done = core.unsubscribe(channel)
            return Reply(
                text="Daily picks stopped." if done else "That channel had no daily picks."
            )
        case ShowSettings():
            return Reply(text=describe_subscription(core, _target(inv, command.channel)))
        case Help(unknown=unknown) if unknown:
            return Reply(text=f"I don't know “/papers {unknown[:40]}”. These I do:\n{HELP}")
        case _:
            return Reply(text=HELP)


def _unfollow(core: PaperBot, user: UserRef, text: str) -> str:
    topics = split_topics(text)
    if not topics:
        raise InvalidInput(
            "Tell me what to unfollow, for example: /papers unfollow diffusion models"
        )
    gone = [t for t in topics if core.unfollow(user, t)]
    kept = [t for t in topics if t not in gone]
    said = [f"No longer following: {', '.join(gone)}."] if gone else []
    if kept:
        said.append(f"You were not following: {', '.join(kept)}.")
    return " ".join(said)


def _target(inv: Invocation, raw: str | None) -> ChannelRef:
    if raw is None:
        if inv.channel is None:
            raise InvalidInput("Run this in a channel, or name one.")
        return inv.channel
    channel_id = inv.resolve_channel(raw)
    if channel_id is None:
        raise InvalidInput(f"I can't find the channel {raw[:40]}.")
    return ChannelRef(inv.user.platform, inv.user.workspace, channel_id)


def describe_profile(core: PaperBot, user: UserRef) -> str:
    profile = core.profile(user)
    lines = [
        f"👍 {profile.likes} · 👎 {profile.dislikes} · 🔖 {profile.saved} · shown {profile.shown}"
    ]
    if profile.follows:
        lines.append("Following: " + ", ".join(profile.follows))
    if profile.interests:
        lines.append("Top interests:")
        for interest in profile.interests:
            example = (
                f" (e.g. “{short(interest.examples[0], EXAMPLE_CHARS)}”)"
                if interest.examples
                else ""
            )
            lines.append(f"• {', '.join(interest.keywords)}{example}")
    if not (profile.follows or profile.interests):
        lines.append("I don't know your taste yet: react to picks or use /papers follow.")
    return "\n".join(lines)


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _schedule(info: SubscriptionInfo) -> str:
    return f"Daily picks: {_counted(info.limit, 'paper')} at {info.at:%H:%M} {info.tz}"


def describe_subscription(core: PaperBot, channel: ChannelRef) -> str:
    info = core.subscription(channel)
    if info is None or info.status == "cancelled":
        return "This channel has no daily picks. Start them with /papers subscribe."
    text = f"{_schedule(info)}. State: {info.status}."
    if info.last_posted_on:
        text += f" Last posted on {info.last_posted_on:%Y-%m-%d}."
    if info.status in ("failing", "paused") and info.last_error:
        text += f" Last error: {info.last_error[:200]}."
    if info.status == "paused":
        text += (
            " Paused after repeated failures: fix the channel or permissions, then subscribe again."
        )
    return text
