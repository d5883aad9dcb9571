"""Reactions and buttons through the real Bolt app become exactly-once core feedback."""

from __future__ import annotations

import pytest
from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.blocks import ACTION_DOWN, ACTION_SAVE, ACTION_UNSAVE, ACTION_UP
from bot.domain import UserRef
from tests.fakes.slack_server import FakeSlack
from tests.slack.slack_requests import (
    BOT_TOKEN,
    HERE,
    ME,
    RecordingCore,
    action_body,
    dispatch,
    event_body,
    reaction,
    signed_headers,
)

POSTED_TS = "1700000001.000100"
PAPER = "2500.00000"


@pytest.fixture
def posted(papers_core: RecordingCore) -> str:
    papers_core.record_posts(HERE, [(POSTED_TS, PAPER)])
    return POSTED_TS


async def react(app: AsyncApp, kind: str, emoji: str, ts: str, event_id: str, **kw: str) -> int:
    response = await dispatch(app, event_body(reaction(kind, emoji, ts, **kw), event_id=event_id))
    return response.status


@pytest.mark.parametrize("emoji", ["+1", "thumbsup", "+1::skin-tone-4"])
async def test_thumbs_up_on_a_posted_pick_is_a_like_and_removing_takes_it_back(
    app: AsyncApp, papers_core: RecordingCore, posted: str, emoji: str
) -> None:
    assert await react(app, "reaction_added", emoji, posted, "Ev1") == 200
    assert papers_core.profile(ME).likes == 1
    assert await react(app, "reaction_removed", emoji, posted, "Ev2") == 200
    assert papers_core.profile(ME).likes == 0


@pytest.mark.parametrize("emoji", ["-1", "thumbsdown", "-1::skin-tone-2"])
async def test_thumbs_down_is_a_dislike(
    app: AsyncApp, papers_core: RecordingCore, posted: str, emoji: str
) -> None:
    await react(app, "reaction_added", emoji, posted, "Ev1")
    assert papers_core.profile(ME).dislikes == 1


async def test_a_duplicate_event_id_changes_nothing(
    app: AsyncApp, papers_core: RecordingCore, posted: str
) -> None:
    await react(app, "reaction_added", "+1", posted, "EvSame")
    await react(app, "reaction_removed", "+1", posted, "EvRemove")
    # Slack retries the first event (X-Slack-Retry-Num): it must not re-add the like.
    retry = event_body(reaction("reaction_added", "+1", posted), event_id="EvSame")
    headers = {**signed_headers(retry, json_body=True), "x-slack-retry-num": "1"}
    headers["x-slack-retry-reason"] = "http_timeout"
    assert (await dispatch(app, retry, headers)).status == 200
    assert papers_core.profile(ME).likes == 0
    assert papers_core.called.count("handle_reaction") == 3


async def retried(app: AsyncApp, kind: str, ts: str, event_id: str) -> int:
    body = event_body(reaction(kind, "+1", ts), event_id=event_id)
    headers = {**signed_headers(body, json_body=True), "x-slack-retry-num": "1"}
    return (await dispatch(app, body, headers)).status


@pytest.mark.parametrize(
    ("still_there", "likes"),
    [(False, 0), (True, 1)],
    ids=["taken-back-since", "still-there"],
)
async def test_a_retried_reaction_is_applied_only_if_the_message_still_says_so(
    app: AsyncApp,
    papers_core: RecordingCore,
    fake_slack: FakeSlack,
    still_there: bool,
    likes: int,
) -> None:
    # Slack retries a failed delivery minutes later, after the events that followed
    # it: here the 👍's removal came first, then the retried 👍.
    posted = await AsyncWebClient(token=BOT_TOKEN, base_url=fake_slack.api_url).chat_postMessage(
        channel=HERE.channel, text="a pick"
    )
    ts = str(posted["ts"])
    papers_core.record_posts(HERE, [(ts, PAPER)])
    if still_there:  # the person put it back in the meantime
        fake_slack.react_unseen(HERE.channel, ts, "+1", "U1")
    assert await react(app, "reaction_removed", "+1", ts, "Ev2") == 200
    assert await retried(app, "reaction_added", ts, "Ev1") == 200
    assert papers_core.profile(UserRef("slack", "T1", "U1")).likes == likes
    assert [c.params["timestamp"] for c in fake_slack.calls_to("reactions.get")] == [ts]


async def test_the_workspace_is_the_team_id(
    app: AsyncApp, papers_core: RecordingCore, posted: str
) -> None:
    # The same channel and ts in another team is another message: nothing counts.
    response = await dispatch(
        app, event_body(reaction("reaction_added", "+1", posted), event_id="Ev9", team="T2")
    )
    assert response.status == 200
    assert papers_core.profile(ME).likes == 0
    assert papers_core.profile(UserRef("slack", "T2", "U1")).likes == 0


async def test_reactions_elsewhere_or_with_other_emoji_are_ignored(
    app: AsyncApp, papers_core: RecordingCore, posted: str
) -> None:
    await react(app, "reaction_added", "tada", posted, "Ev1")
    await react(app, "reaction_added", "+1", "1699999999.000001", "Ev2")  # not a paperbot post
    await react(app, "reaction_added", "+1", posted, "Ev3", channel="C2")
    profile = papers_core.profile(ME)
    assert (profile.likes, profile.dislikes) == (0, 0)


@pytest.mark.parametrize(
    ("action_id", "field", "answer"),
    [
        (ACTION_UP, "likes", "Noted 👍"),
        (ACTION_DOWN, "dislikes", "Noted 👎"),
        (ACTION_SAVE, "saved", "Saved 🔖"),
    ],
)
async def test_buttons_store_feedback_and_answer_ephemerally(
    app: AsyncApp,
    fake_slack: FakeSlack,
    papers_core: RecordingCore,
    action_id: str,
    field: str,
    answer: str,
) -> None:
    response = await dispatch(app, action_body(action_id, PAPER, fake_slack.response_url()))
    assert response.status == 200
    await fake_slack.wait_for(lambda: len(fake_slack.responses) == 1)
    reply = fake_slack.responses[0]
    assert reply["text"].startswith(answer)
    assert reply["response_type"] == "ephemeral" and reply["replace_original"] is False
    assert getattr(papers_core.profile(ME), field) == 1

    await dispatch(app, action_body(action_id, PAPER, fake_slack.response_url()))
    await fake_slack.wait_for(lambda: len(fake_slack.responses) == 2)
    assert fake_slack.responses[1]["text"].startswith(("You already", "Already"))
    assert getattr(papers_core.profile(ME), field) == 1


async def test_saving_again_offers_to_remove_the_saved_paper(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    # The 🔖 button only saves (a double click must not undo it); the second press
    # answers with the way to take the save back.
    for n in (1, 2):
        await dispatch(app, action_body(ACTION_SAVE, PAPER, fake_slack.response_url()))
        await fake_slack.wait_for(lambda n=n: len(fake_slack.responses) == n)
    offer = fake_slack.responses[-1]
    assert offer["text"] == "Already saved 🔖." and offer["response_type"] == "ephemeral"
    (button,) = [e for b in offer["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert (button["action_id"], button["value"]) == (ACTION_UNSAVE, PAPER)
    assert button["text"]["text"] == "Remove from saved"

    for n, said in ((3, "Removed from your saved papers."), (4, "That paper is not among")):
        await dispatch(app, action_body(ACTION_UNSAVE, PAPER, fake_slack.response_url()))
        await fake_slack.wait_for(lambda n=n: len(fake_slack.responses) == n)
        assert fake_slack.responses[-1]["text"].startswith(said)
        assert papers_core.profile(ME).saved == 0 and papers_core.saved(ME) == []


async def test_a_thumb_button_pressed_again_after_the_other_counts_again(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    # 👍, then 👎 (the newer counts), then 👍 again: the last choice is the one that counts.
    for n, action_id in enumerate((ACTION_UP, ACTION_DOWN, ACTION_UP), 1):
        await dispatch(app, action_body(action_id, PAPER, fake_slack.response_url()))
        await fake_slack.wait_for(lambda n=n: len(fake_slack.responses) == n)
    assert fake_slack.responses[-1]["text"].startswith("Noted 👍")
    profile = papers_core.profile(ME)
    assert (profile.likes, profile.dislikes) == (1, 0)


async def test_a_button_for_an_unknown_paper_answers_without_storing(
    app: AsyncApp, fake_slack: FakeSlack, papers_core: RecordingCore
) -> None:
    await dispatch(app, action_body(ACTION_UP, "no-such-paper", fake_slack.response_url()))
    await fake_slack.wait_for(lambda: len(fake_slack.responses) == 1)
    assert "Noted" not in fake_slack.responses[0]["text"]
    assert papers_core.profile(ME).likes == 0
    await dispatch(app, action_body(ACTION_UP, "<!channel>", fake_slack.response_url()))
    await fake_slack.wait_for(lambda: len(fake_slack.responses) == 2)
    answer = fake_slack.responses[1]["text"]
    assert "&lt;!channel&gt;" in answer and "<!channel>" not in answer


@pytest.mark.parametrize("field", ["user", "channel", "ts"])
async def test_absurdly_long_ids_are_ignored_not_stored(
    app: AsyncApp, papers_core: RecordingCore, posted: str, field: str
) -> None:
    event = reaction("reaction_added", "+1", posted)
    huge = "U" * 20_000
    if field == "user":
        event["user"] = huge
    else:
        event["item"][field] = huge
    assert (await dispatch(app, event_body(event, event_id="EvHuge"))).status == 200
    assert "handle_reaction" not in papers_core.called
