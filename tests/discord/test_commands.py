"""`/papers` through the real CommandTree, answered over REST to the fake Discord."""

from __future__ import annotations

import discord
import pytest

from adapters.discord import PaperClient
from adapters.discord.buttons import FEEDBACK_ID, feedback_view
from bot import logs
from bot.commands import HELP, NEW_HERE
from bot.domain import ChannelRef, Pick, UserRef
from bot.paperbot import PaperBot
from bot.settings import Settings
from tests.discord.helpers import (
    MANAGE_CHANNELS,
    OTHER_USER_ID,
    SEND,
    USER_ID,
    answer_embeds,
    answer_texts,
    answers,
    button_click,
    channel_option,
    command,
    custom_ids,
    invoke,
    option,
)
from tests.fakes.discord_server import APP_ID, CHANNEL_ID, GUILD_ID, FakeDiscord
from tests.helpers import paper, topical_papers

DEFERRED, MESSAGE = 5, 4
EPHEMERAL = 64
ME = UserRef("discord", str(GUILD_ID), str(USER_ID))
HERE = ChannelRef("discord", str(GUILD_ID), str(CHANNEL_ID))


def callback(fake: FakeDiscord, payload: dict) -> dict:
    (first, *_) = answers(fake, payload)
    assert first.path == f"/interactions/{payload['id']}/{payload['token']}/callback"
    return first.body


def assert_safe(fake: FakeDiscord, payload: dict) -> None:
    """Every answer is ephemeral and allows no mention at all."""
    for r in answers(fake, payload):
        body = r.body.get("data") if r.path.endswith("/callback") else r.body
        if body == {"flags": EPHEMERAL}:  # a deferral: ephemeral, and nothing to mention
            continue
        assert body["allowed_mentions"] == {"parse": []}
        assert body["flags"] & EPHEMERAL


async def test_login_syncs_the_papers_group_to_the_development_guild(
    client: PaperClient, fake: FakeDiscord
) -> None:
    (sync,) = fake.calls("PUT", f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    (group,) = sync.body
    assert group["name"] == "papers"
    assert group["contexts"] == [0]  # guild only
    assert {o["name"] for o in group["options"]} == {
        "today", "follow", "unfollow", "search", "saved", "profile", "forget",
        "subscribe", "unsubscribe", "settings", "help",
    }  # fmt: skip


async def test_subscribe_count_says_who_sets_its_default(
    client: PaperClient, fake: FakeDiscord
) -> None:
    (sync,) = fake.calls("PUT", f"/applications/{APP_ID}/guilds/{GUILD_ID}/commands")
    (group,) = sync.body
    (subscribe,) = [o for o in group["options"] if o["name"] == "subscribe"]
    (count,) = [o for o in subscribe["options"] if o["name"] == "count"]
    # The default is PAPERBOT_PICKS_PER_POST, one for the whole bot: a Discord server
    # (guild) has no setting of its own, which "the server's setting" promised.
    assert "server" not in count["description"]
    assert f"usually {Settings().picks_per_post})" in count["description"]
    assert (count["min_value"], count["max_value"]) == (1, 10)


async def test_today_defers_then_sends_ephemeral_embeds_with_buttons(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    core.ingest(topical_papers(per_topic=2))
    payload = command("today", option("count", 3))
    await invoke(client, payload)

    assert callback(fake, payload) == {"type": DEFERRED, "data": {"flags": EPHEMERAL}}
    followups = answers(fake, payload)[1:]
    (message,) = followups
    assert message.path == f"/webhooks/{APP_ID}/{payload['token']}"
    assert message.body["content"] == f"Your picks for today:\n{NEW_HERE}"
    assert len(message.body["embeds"]) == 3
    ids = custom_ids(message.body)
    assert len(ids) == 9 and all(
        i.startswith(("paperbot:up:", "paperbot:down:", "paperbot:save:")) for i in ids
    )
    assert_safe(fake, payload)
    assert core.profile(ME).shown == 3


async def test_deferral_goes_out_before_the_core_is_asked(
    client: PaperClient, fake: FakeDiscord, core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    payload = command("today")
    seen_before: list[int] = []

    def slow_today(user: UserRef, limit: int = 5) -> list:
        seen_before.append(len(answers(fake, payload)))
        return []

    monkeypatch.setattr(core, "today", slow_today)
    await invoke(client, payload)
    assert seen_before == [1]  # the deferral callback was already sent
    assert answer_texts(fake, payload) == [
        "No papers yet. They arrive every day after the Daily Papers list updates."
    ]


async def test_ten_picks_are_split_into_messages_of_five(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    core.ingest(topical_papers(per_topic=3))
    payload = command("today", option("count", 10))
    await invoke(client, payload)
    followups = answers(fake, payload)[1:]
    assert [len(f.body["embeds"]) for f in followups] == [5, 5]
    labels = [
        c.get("label") for f in followups for row in f.body["components"] for c in row["components"]
    ]
    assert labels[::3] == [str(n) for n in range(1, 11)]


async def test_follow_search_and_profile(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    core.ingest(topical_papers(per_topic=2))
    follow = command("follow", option("topics", "speech recognition, graph networks"))
    await invoke(client, follow)
    assert answer_texts(fake, follow) == [
        "Following: speech recognition, graph networks. Your picks will lean that way."
    ]

    search = command("search", option("query", "speech synthesis vocoders"))
    await invoke(client, search)
    titles = [e["title"] for e in answer_embeds(fake, search)]
    assert titles and "speech" in titles[0]

    profile = command("profile")
    await invoke(client, profile)
    (text,) = answer_texts(fake, profile)
    assert "Following: speech recognition, graph networks" in text
    for payload in (follow, search, profile):
        assert callback(fake, payload)["type"] == DEFERRED
        assert_safe(fake, payload)


async def test_saved_shows_the_members_saves_with_their_buttons(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    core.ingest(topical_papers(per_topic=2))
    empty = command("saved")
    await invoke(client, empty)
    assert answer_texts(fake, empty) == ["Nothing saved yet. Press 🔖 on a pick to keep it here."]
    core.save(ME, "2502.00001")
    payload = command("saved", option("count", 3))
    await invoke(client, payload)
    assert answer_texts(fake, payload) == ["Your saved papers, newest first:"]
    (embed,) = answer_embeds(fake, payload)
    assert embed["title"].startswith("rl study 1")
    assert "paperbot:save:2502.00001" in custom_ids(answers(fake, payload)[-1].body)
    for each in (empty, payload):
        assert callback(fake, each)["type"] == DEFERRED
        assert_safe(fake, each)


async def test_help_answers_at_once(client: PaperClient, fake: FakeDiscord) -> None:
    payload = command("help")
    await invoke(client, payload)
    body = callback(fake, payload)
    assert body["type"] == MESSAGE
    assert body["data"]["content"] == HELP
    assert_safe(fake, payload)


async def test_forget_asks_and_only_the_asker_can_confirm(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    core.ingest([paper("2510.00001")])
    core.react(ME, "2510.00001", 1)
    ask = command("forget")
    await invoke(client, ask)
    body = callback(fake, ask)
    assert body["type"] == MESSAGE and "Sure?" in body["data"]["content"]
    (button,) = custom_ids(body["data"])
    assert button == f"paperbot:forget:{USER_ID}"

    intruder = button_click(button, user_id=OTHER_USER_ID)
    await invoke(client, intruder)
    assert answer_texts(fake, intruder) == ["This button belongs to someone else."]
    assert core.profile(ME).likes == 1

    confirm = button_click(button)
    await invoke(client, confirm)
    (done,) = answer_texts(fake, confirm)
    assert done.startswith("Done: I deleted")
    assert core.profile(ME).likes == 0


async def test_channel_commands_need_manage_channels(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    for sub in ("subscribe", "unsubscribe", "settings"):
        payload = command(sub)
        await invoke(client, payload)
        assert answer_texts(fake, payload) == [
            "Only members who can manage channels may change daily posts."
        ]
    assert core.subscription(HERE) is None


@pytest.mark.parametrize("sub", ["subscribe", "unsubscribe", "settings"])
async def test_manage_channels_here_does_not_manage_another_channel(
    client: PaperClient, fake: FakeDiscord, core: PaperBot, sub: str
) -> None:
    # Manage Channels can be granted in one channel only (a permission overwrite): a
    # member who has it here but not in #announcements must not run its daily post.
    announcements = 900000000000000077
    there = ChannelRef("discord", str(GUILD_ID), str(announcements))
    core.subscribe(there, "09:00", "UTC", 5, by="admin")
    payload = command(
        sub,
        channel_option("channel", announcements),
        permissions=MANAGE_CHANNELS,
        channels=(announcements,),
        channel_permissions=SEND,
    )
    await invoke(client, payload)
    assert answer_texts(fake, payload) == [
        "Only members who can manage channels may change daily posts."
    ]
    info = core.subscription(there)
    assert info is not None and info.status == "active" and info.limit == 5


async def test_subscribe_settings_unsubscribe(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    other = 900000000000000099
    subscribe = command(
        "subscribe",
        channel_option("channel", other),
        option("time", "08:30"),
        option("timezone", "Europe/Berlin"),
        option("count", 3),
        permissions=MANAGE_CHANNELS,
        channels=(other,),
    )
    await invoke(client, subscribe)
    assert answer_texts(fake, subscribe) == [
        f"Daily picks: 3 papers at 08:30 Europe/Berlin in <#{other}>."
    ]
    info = core.subscription(ChannelRef("discord", str(GUILD_ID), str(other)))
    assert info is not None and info.status == "active" and info.tz == "Europe/Berlin"

    here = command("subscribe", permissions=MANAGE_CHANNELS)
    await invoke(client, here)
    assert answer_texts(fake, here) == ["Daily picks: 5 papers at 09:00 UTC in this channel."]

    settings = command("settings", permissions=MANAGE_CHANNELS)
    await invoke(client, settings)
    assert answer_texts(fake, settings) == ["Daily picks: 5 papers at 09:00 UTC. State: active."]

    stop = command(
        "unsubscribe",
        channel_option("channel", other),
        permissions=MANAGE_CHANNELS,
        channels=(other,),
    )
    await invoke(client, stop)
    assert answer_texts(fake, stop) == ["Daily picks stopped."]
    assert core.subscription(ChannelRef("discord", str(GUILD_ID), str(other))).status == "cancelled"  # type: ignore[union-attr]


async def test_subscribing_where_paperbot_cannot_post_says_what_it_needs(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    # Every daily post there would fail with 403, day after day, unseen.
    here = command("subscribe", permissions=MANAGE_CHANNELS)
    here["app_permissions"] = str(discord.Permissions(view_channel=True).value)
    await invoke(client, here)
    assert answer_texts(fake, here) == [
        "Daily picks: 5 papers at 09:00 UTC in this channel. I can't post there yet: "
        "give me Send Messages and Embed Links in that channel."
    ]
    assert core.subscription(HERE) is not None
    allowed = command("subscribe", permissions=MANAGE_CHANNELS)
    await invoke(client, allowed)
    assert answer_texts(fake, allowed) == ["Daily picks: 5 papers at 09:00 UTC in this channel."]


async def test_core_refusal_is_a_short_ephemeral_message(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    payload = command("subscribe", option("timezone", "Mars/Olympus"), permissions=MANAGE_CHANNELS)
    await invoke(client, payload)
    (text,) = answer_texts(fake, payload)
    assert "Mars/Olympus" in text and "Traceback" not in text
    assert_safe(fake, payload)


async def test_unexpected_failure_gives_a_friendly_message_and_logs(
    client: PaperClient,
    fake: FakeDiscord,
    core: PaperBot,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database exploded: secret internals")

    monkeypatch.setattr(core, "search", broken)
    payload = command("search", option("query", "anything"))
    await invoke(client, payload)
    assert answer_texts(fake, payload) == [
        "Sorry, something went wrong on my side. Please try again in a minute."
    ]
    assert "database exploded" in caplog.text


async def test_a_failure_in_the_adapter_itself_still_answers(
    client: PaperClient,
    fake: FakeDiscord,
    core: PaperBot,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    core.ingest(topical_papers(per_topic=1))

    def broken_embed(*args: object, **kwargs: object) -> None:
        raise ValueError("renderer bug")

    monkeypatch.setattr("adapters.discord.embeds.pick_embed", broken_embed)
    payload = command("today")
    await invoke(client, payload)
    assert answer_texts(fake, payload)[-1] == (
        "Sorry, something went wrong on my side. Please try again in a minute."
    )
    assert "renderer bug" in caplog.text


@pytest.mark.parametrize(
    "payload",
    [
        command("today", option("count", "many")),
        command("today", option("count", 11)),
        command("follow", option("topics", 7)),
        command("subscribe", option("channel", "general"), permissions=MANAGE_CHANNELS),
    ],
    ids=["count-text", "count-too-big", "topics-number", "channel-text"],
)
async def test_wrongly_typed_option_is_answered(
    client: PaperClient, fake: FakeDiscord, core: PaperBot, payload: dict
) -> None:
    await invoke(client, payload)
    assert answer_texts(fake, payload) == ["I couldn't read those options. Try /papers help."]
    assert core.profile(ME).follows == ()


async def test_commands_outside_a_server_are_refused_politely(
    client: PaperClient, fake: FakeDiscord
) -> None:
    payload = command("today", guild_id=None)
    await invoke(client, payload)
    assert answer_texts(fake, payload) == ["Use /papers in a server channel."]


async def test_hostile_titles_are_escaped_in_command_replies(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    core.ingest([paper("2510.00001", "@everyone **look** <@&123> at __this__ @here")])
    payload = command("today", option("count", 1))
    await invoke(client, payload)
    (embed,) = answer_embeds(fake, payload)
    assert "@everyone" not in embed["title"] and "@here" not in embed["title"]
    assert "<@&123>" not in embed["title"]
    assert r"\*\*look\*\*" in embed["title"] and r"\_\_this\_\_" in embed["title"]
    assert_safe(fake, payload)


async def test_a_liked_title_in_the_profile_cannot_become_a_link(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    core.ingest([paper("2510.00001", "[Verify your account](https://evil.example/login) @here")])
    core.react(ME, "2510.00001", +1)
    payload = command("profile")
    await invoke(client, payload)
    (text,) = answer_texts(fake, payload)
    assert r"\[Verify your account\](https://evil.example/login)" in text
    assert "@here" not in text
    assert_safe(fake, payload)


@pytest.mark.parametrize(
    ("action", "answer", "field"),
    [
        ("up", "Noted 👍: more like this.", "likes"),
        ("down", "Noted 👎: fewer like this.", "dislikes"),
        ("save", "Saved 🔖 for later: /papers saved lists them.", "saved"),
    ],
)
async def test_feedback_buttons(
    client: PaperClient, fake: FakeDiscord, core: PaperBot, action: str, answer: str, field: str
) -> None:
    core.ingest([paper("2510.00001")])
    payload = button_click(f"paperbot:{action}:2510.00001")
    await invoke(client, payload)
    assert callback(fake, payload) == {"type": DEFERRED, "data": {"flags": EPHEMERAL}}
    assert answer_texts(fake, payload) == [answer]
    assert getattr(core.profile(ME), field) == 1
    assert_safe(fake, payload)


@pytest.mark.parametrize(
    ("action", "answer"),
    [
        ("up", "You already liked this one."),
        ("down", "You already passed on this one."),
        ("save", "Already saved 🔖."),
    ],
)
async def test_a_button_pressed_twice_says_the_second_changed_nothing(
    client: PaperClient, fake: FakeDiscord, core: PaperBot, action: str, answer: str
) -> None:
    core.ingest([paper("2510.00001")])
    await invoke(client, button_click(f"paperbot:{action}:2510.00001"))
    again = button_click(f"paperbot:{action}:2510.00001")
    await invoke(client, again)
    assert answer_texts(fake, again) == [answer]
    profile = core.profile(ME)
    assert (profile.likes, profile.dislikes, profile.saved) == {
        "up": (1, 0, 0),
        "down": (0, 1, 0),
        "save": (0, 0, 1),
    }[action]


async def test_saving_again_offers_a_button_that_removes_the_save(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    # 🔖 only saves, so a double click cannot undo it; the second press offers the undo.
    core.ingest([paper("2510.00001")])
    await invoke(client, button_click("paperbot:save:2510.00001"))
    again = button_click("paperbot:save:2510.00001")
    await invoke(client, again)
    assert answer_texts(fake, again) == ["Already saved 🔖."]
    assert custom_ids(answers(fake, again)[-1].body) == ["paperbot:unsave:2510.00001"]
    assert_safe(fake, again)
    for said in ("Removed from your saved papers.", "That paper is not among your saved papers."):
        remove = button_click("paperbot:unsave:2510.00001")
        await invoke(client, remove)
        assert answer_texts(fake, remove) == [said]
        assert core.profile(ME).saved == 0 and core.saved(ME) == []


async def test_a_thumb_button_pressed_again_after_the_other_counts_again(
    client: PaperClient, fake: FakeDiscord, core: PaperBot
) -> None:
    core.ingest([paper("2510.00001")])
    for action in ("up", "down", "up"):  # the last choice is the one that counts
        await invoke(client, button_click(f"paperbot:{action}:2510.00001"))
    profile = core.profile(ME)
    assert (profile.likes, profile.dislikes) == (1, 0)


async def test_button_for_an_unknown_paper_is_answered(
    client: PaperClient, fake: FakeDiscord
) -> None:
    payload = button_click("paperbot:up:9999.99999")
    await invoke(client, payload)
    assert answer_texts(fake, payload) == ["I don't know the paper '9999.99999'."]


async def test_button_ids_carry_any_paper_id() -> None:
    view = feedback_view([Pick("hf:odd:id", "t", "https://x.example", 0.0, "")])
    assert [FEEDBACK_ID.fullmatch(b.custom_id)["paper_id"] for b in view.children] == [  # type: ignore[attr-defined,index]
        "hf:odd:id"
    ] * 3


async def test_debug_logs_never_show_an_interaction_token(
    client: PaperClient,
    fake: FakeDiscord,
    capsys: pytest.CaptureFixture[str],
    root_logging: None,
) -> None:
    # An interaction's token lets whoever holds it post follow-ups as the bot for
    # 15 minutes; discord.py logs the URLs that carry it at DEBUG.
    logs.configure(Settings(log_level="DEBUG"))
    payload = command("today")
    await invoke(client, payload)
    assert answer_texts(fake, payload)  # answered, through URLs holding the token
    assert payload["token"] not in capsys.readouterr().err
