"""The core facade's contract, on SQLite and PostgreSQL."""

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, time, timedelta

import pytest
import sqlalchemy as sa

from bot import ChannelRef, InvalidInput, PaperBot, Pick, UnknownPaper, UserRef, commands
from bot.embedding import HashingEmbedder
from bot.feedback import ReactionEvent
from bot.models import PostedMessage
from bot.settings import Settings
from tests.helpers import DAY, channel, paper, topical_papers, user


def test_ingest_dedups_and_keeps_first_listing_day(core: PaperBot) -> None:
    first = core.ingest([paper("2510.00001", upvotes=3)])
    assert (first.new, first.updated, first.embedded) == (1, 0, 1)
    later = DAY.replace(day=DAY.day + 1)
    again = core.ingest(
        [paper("2510.00001", upvotes=9, day=later, github="https://github.com/x/y")]
    )
    assert (again.new, again.updated, again.embedded) == (0, 1, 0)  # embedded once, never again
    pick = core.search(user(), "paper")[0]
    assert pick.upvotes == 9 and pick.github == "https://github.com/x/y" and pick.listed_on == DAY


def test_today_returns_picks_with_reasons(core: PaperBot) -> None:
    core.ingest(topical_papers())
    picks = core.today(user(), limit=5)
    assert len(picks) == 5 and all(isinstance(p, Pick) and p.reason for p in picks)
    assert len({p.paper_id for p in picks}) == 5


def test_react_rejects_unknown_papers_and_bad_signals(core: PaperBot) -> None:
    core.ingest(topical_papers(1))
    with pytest.raises(UnknownPaper):
        core.react(user(), "9999.99999", +1)
    with pytest.raises(InvalidInput):
        core.react(user(), "2500.00000", 2)


def test_reaction_events_resolve_through_posted_messages(core: PaperBot) -> None:
    core.ingest(topical_papers(1))
    room = channel("C9")
    core.record_posts(room, [("m1", "2500.00000")])
    event = ReactionEvent("slack", "T1", "C9", "m1", "bob", "+1", True, event_id="Ev1")
    assert core.handle_reaction(event) == "2500.00000"
    assert core.handle_reaction(event) is None  # the same event id again changes nothing
    assert core.profile(user("bob")).likes == 1
    unknown = ReactionEvent("slack", "T1", "C9", "not-ours", "bob", "+1", True)
    assert core.handle_reaction(unknown) is None
    other = ReactionEvent("slack", "T1", "C9", "m1", "bob", "tada", True)
    assert core.handle_reaction(other) is None


def test_each_event_id_counts_once_however_long_and_alike(core: PaperBot) -> None:
    core.ingest(topical_papers(1))
    core.record_posts(channel("C9"), [("m1", "2500.00000"), ("m2", "2501.00000")])
    long_id = "Ev" + "0" * 300  # longer than the column: kept by its first 128 characters
    first = ReactionEvent("slack", "T1", "C9", "m1", "bob", "+1", True, event_id="Ev08MFMKH6J")
    alike = ReactionEvent("slack", "T1", "C9", "m2", "bob", "+1", True, event_id="Ev08MFMKH6K")
    long = ReactionEvent("slack", "T1", "C9", "m1", "bob", "+1", False, event_id=long_id)
    for event in (first, alike, long):
        assert core.handle_reaction(event) is not None
        assert core.handle_reaction(event) is None
    assert core.feedback_states(user("bob")).keys() == {"2501.00000"}


def test_saved_lists_a_users_saves_newest_first_without_the_taken_back(
    core: PaperBot,
) -> None:
    papers = topical_papers(2)
    core.ingest(papers)
    me, ids = user(), [p.id for p in papers]
    before = datetime.now(UTC)
    for paper_id in ids[:4]:
        core.save(me, paper_id)
    core.save(me, ids[1], active=False)  # the 🔖 reaction removed
    core.react(me, ids[4], +1)  # a like is not a save
    core.save(user("bob"), ids[5])
    core.save(UserRef("discord", "G1", me.user), ids[5])  # the same id elsewhere

    saved = core.saved(me)
    assert [p.paper_id for p in saved] == [ids[3], ids[2], ids[0]]
    days = {f"you saved it on {d:%b} {d.day}" for d in (before, datetime.now(UTC))}
    assert saved[0].reason in days  # either side of a midnight
    assert saved[0].title and saved[0].url  # a full card, like any pick
    assert [p.paper_id for p in core.saved(me, limit=2)] == [ids[3], ids[2]]
    assert core.saved(user("carol")) == []
    with pytest.raises(InvalidInput):
        core.saved(me, limit=0)


def test_today_tells_someone_new_how_to_make_the_picks_theirs(core: PaperBot) -> None:
    papers = topical_papers(2)
    core.ingest(papers)
    alice, bob = user(), user("bob")

    def today(who: UserRef) -> str:
        return commands.run_text(core, commands.Invocation(user=who, channel=None), "today").text

    assert today(alice) == f"Your picks for today:\n{commands.NEW_HERE}"
    assert today(alice).endswith(commands.NEW_HERE)  # being shown picks teaches nothing
    core.follow(alice, "speech synthesis")
    core.react(bob, papers[0].id, -1)
    assert (today(alice), today(bob)) == ("Your picks for today:",) * 2
    assert core.knows(alice) and core.knows(bob) and not core.knows(user("alice", "T2"))
    core.react(bob, papers[0].id, -1, active=False)  # taken back: as if never rated
    core.forget(alice)
    assert not core.knows(alice) and not core.knows(bob)


def test_recent_posts_are_the_newest_of_the_platform_newest_first(core: PaperBot) -> None:
    core.ingest(topical_papers(1))
    now = datetime.now(UTC)
    posts = {"old": 3, "older": 4, "new": 1, "newer": 0, "long-ago": 10}
    for message_id in posts:
        core.record_posts(channel("C1"), [(message_id, "2500.00000")])
        core.record_posts(channel("C1", platform="discord"), [(message_id, "2500.00000")])
    with core.db.write() as session:
        for message_id, days in posts.items():
            session.execute(
                sa.update(PostedMessage)
                .where(PostedMessage.message_id == message_id)
                .values(posted_at=now - timedelta(days=days, minutes=1))
            )
    since = now - timedelta(days=5)
    assert [m for _, m in core.recent_posts("slack", since, 3)] == ["newer", "new", "old"]
    assert core.recent_posts("slack", since, 1) == [(channel("C1"), "newer")]
    assert {c.platform for c, _ in core.recent_posts("discord", since)} == {"discord"}


def test_subscribe_validates_time_and_zone(core: PaperBot) -> None:
    room = ChannelRef("discord", "G1", "42")
    info = core.subscribe(room, "7:30pm", "America/New_York", 3)
    assert (info.at, info.tz, info.limit, info.status) == (
        time(19, 30),
        "America/New_York",
        3,
        "active",
    )
    with pytest.raises(InvalidInput):
        core.subscribe(room, "25:00", "UTC")
    with pytest.raises(InvalidInput):
        core.subscribe(room, "09:00", "Mars/Olympus")
    assert core.unsubscribe(room) and not core.unsubscribe(room)
    assert core.subscription(room).status == "cancelled"  # type: ignore[union-attr]


def test_forget_removes_everything_and_is_harmless_twice(core: PaperBot) -> None:
    core.ingest(topical_papers(2))
    alice = UserRef("slack", "T1", "alice")
    core.react(alice, "2500.00000", +1)
    core.follow(alice, "diffusion")
    core.today(alice)
    assert core.forget(alice) >= 4
    assert core.forget(alice) == 0
    profile = core.profile(alice)
    assert (profile.likes, profile.follows, profile.shown) == (0, (), 0)
    assert core.forget(alice) == 0  # looking at the profile stored nothing about them


@pytest.mark.parametrize("per_post", [2, 8])
def test_a_daily_post_holds_the_configured_count_unless_one_is_asked_for(
    migrated_url: str, per_post: int
) -> None:
    settings = Settings(lookback_days=3, picks_per_post=per_post)
    with contextlib.closing(
        PaperBot.open(migrated_url, embedder=HashingEmbedder(), settings=settings)
    ) as bot:
        bot.ingest(topical_papers())
        room = channel()
        assert bot.subscribe(room, "09:00", "UTC").limit == per_post
        assert len(bot.channel_picks(room, per_post)) == per_post
        # Any count from 1 to 10 that someone asks for, whatever the setting.
        assert bot.subscribe(room, "09:00", "UTC", 10).limit == 10
        assert len(bot.channel_picks(room, 10)) == 10


def test_follows_match_whatever_the_case_in_any_script(core: PaperBot) -> None:
    alice = user()
    core.follow(alice, "Über-Modelle")
    core.follow(alice, "über-modelle, Диффузионные модели")
    assert core.profile(alice).follows == ("Über-Modelle", "Диффузионные модели")
    assert core.unfollow(alice, "ÜBER-MODELLE")
    assert core.unfollow(alice, "диффузионные МОДЕЛИ")
    assert core.profile(alice).follows == ()


def test_follow_and_unfollow_take_lists_and_refuse_what_names_nothing(core: PaperBot) -> None:
    alice = user()
    pasted = "• diffusion models\n- RLHF\n* speech, !!!, --"
    assert core.follow(alice, pasted) == ["diffusion models", "RLHF", "speech"]
    for nothing in ("!!!", "- , *", "  \n", ""):
        with pytest.raises(InvalidInput, match="Tell me what to follow"):
            core.follow(alice, nothing)
        with pytest.raises(InvalidInput, match="Tell me what to unfollow"):
            core.unfollow(alice, nothing)
    assert core.unfollow(alice, "rlhf; Diffusion Models")  # the list form `follow` takes
    assert not core.unfollow(alice, "graphs")
    assert core.profile(alice).follows == ("speech",)


def test_the_same_new_follow_and_first_profile_at_once_do_not_collide(core: PaperBot) -> None:
    core.ingest(topical_papers(1))
    for n in range(4):
        who = user(f"u{n}")
        core.react(who, "2500.00000", +1)
        barrier = threading.Barrier(8)

        def both(_: int, who: UserRef = who, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            core.follow(who, "speech")
            core.profile(who)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(both, range(8)))
        assert core.profile(who).follows == ("speech",)


def test_ids_no_database_could_hold_are_refused_clearly(core: PaperBot) -> None:
    core.ingest(topical_papers(1))
    with pytest.raises(UnknownPaper):
        core.react(user(), "2500\x0000000", +1)
    with pytest.raises(UnknownPaper):
        core.react(user(), "2500." + "0" * 80, +1)
    assert core.feedback_states(user(), ["\x00", "2500.00000"]) == {}
    with pytest.raises(InvalidInput, match="at most 64 characters"):
        UserRef("slack", "T1", "u" * 65)
    with pytest.raises(InvalidInput):
        ChannelRef("slack", "T1\x00", "C1")
