"""The local platform reads back what the posting port wrote: the web channel's history."""

from __future__ import annotations

import asyncio

from bot.domain import ChannelRef, Pick
from bot.local_platform import LocalPostingPort
from bot.paperbot import PaperBot
from tests.helpers import topical_papers, user


def test_history_returns_posted_picks_and_notices_in_order(core: PaperBot) -> None:
    core.ingest(topical_papers(per_topic=2))
    channel = ChannelRef("local", "demo", "#papers")
    other = ChannelRef("local", "demo", "#elsewhere")
    port = LocalPostingPort(core.db)
    picks = core.channel_picks(channel, limit=3)
    asyncio.run(port.send_picks(channel, picks, "day-1"))
    asyncio.run(port.send_notice(channel, "No new papers today.", "day-2"))
    asyncio.run(port.send_picks(other, picks[:1], "other-1"))
    asyncio.run(port.send_picks(channel, picks, "day-1", resume=True))  # a retry: no new rows

    posts = port.history(channel)

    assert [p.pick for p in posts[:3]] == picks  # every field survives the round trip
    assert posts[3].pick is None and posts[3].text == "No new papers today."
    assert len(posts) == 4
    assert [p.id for p in port.history(channel, limit=2)] == [p.id for p in posts[2:]]


def test_history_tolerates_a_message_body_with_fields_pick_no_longer_has(core: PaperBot) -> None:
    from bot.models import LocalMessage

    core.ingest(topical_papers(per_topic=1))
    pick = core.search(user("a"), "diffusion", limit=1)[0]
    body = {"paper_id": pick.paper_id, "title": "t", "url": "u", "score": 1.0, "reason": "r"}
    with core.db.write() as session:
        session.add(
            LocalMessage(
                workspace="demo",
                channel_id="#papers",
                paper_id=pick.paper_id,
                body={**body, "retired_field": 1},
            )
        )
    (post,) = LocalPostingPort(core.db).history(ChannelRef("local", "demo", "#papers"))
    assert post.pick == Pick(pick.paper_id, "t", "u", 1.0, "r")


def test_feedback_states_show_what_is_set(core: PaperBot) -> None:
    core.ingest(topical_papers(per_topic=1))
    alice = user("alice")
    ids = [p.id for p in topical_papers(per_topic=1)][:3]
    core.react(alice, ids[0], 1)
    core.react(alice, ids[1], -1)
    core.save(alice, ids[1])
    states = core.feedback_states(alice, ids)
    assert (states[ids[0]].up, states[ids[0]].down, states[ids[0]].saved) == (True, False, False)
    assert (states[ids[1]].up, states[ids[1]].down, states[ids[1]].saved) == (False, True, True)
    assert ids[2] not in states
    assert core.feedback_states(user("bob"), ids) == {}


def test_feedback_states_show_only_the_thumb_that_counts(core: PaperBot) -> None:
    """Chat reactions can leave both 👍 and 👎 on a paper; only the newer counts, and shows."""
    core.ingest(topical_papers(per_topic=1))
    alice = user("alice")
    first = topical_papers(per_topic=1)[0].id
    core.react(alice, first, 1)
    core.react(alice, first, -1)
    state = core.feedback_states(alice, [first])[first]
    assert (state.up, state.down) == (False, True)
    (point,) = [p for p in core.paper_map(alice).papers if p.paper_id == first]
    assert (point.liked, point.disliked) == (False, True)
    core.react(alice, first, -1, active=False)  # the 👍 still on the message counts again
    state = core.feedback_states(alice, [first])[first]
    assert (state.up, state.down) == (True, False)
