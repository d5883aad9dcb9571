"""paperbot's core: papers, interest models, picks. Never imports a chat SDK."""

from bot.domain import ChannelRef, IngestReport, PaperIn, Pick, Profile, SubscriptionInfo, UserRef
from bot.errors import InvalidInput, NotAllowed, PaperBotError, UnknownPaper
from bot.paperbot import PaperBot

__all__ = [
    "ChannelRef",
    "IngestReport",
    "InvalidInput",
    "NotAllowed",
    "PaperBot",
    "PaperBotError",
    "PaperIn",
    "Pick",
    "Profile",
    "SubscriptionInfo",
    "UnknownPaper",
    "UserRef",
]
