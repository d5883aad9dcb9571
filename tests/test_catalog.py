"""The in-memory catalogue: which papers it holds, and how it is reloaded under load."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from bot import catalog as catalog_module
from bot.catalog import Catalog, CatalogCache
from bot.ingest import embed_missing
from bot.models import Paper, utcnow
from bot.paperbot import PaperBot
from tests.helpers import DAY, topical_papers, user


def test_a_paper_joins_the_catalogue_once_it_is_embedded(core: PaperBot) -> None:
    # Another process's ingest commits each paper, then embeds them: until then a
    # new day's papers would be ranked without their meaning, shown, and never again.
    core.ingest(topical_papers(per_topic=2))
    later = DAY + timedelta(days=1)
    with core.db.write() as session:
        session.add(Paper(id="2599.00001", title="New", abstract="Not embedded yet.",
                          listed_on=later, source="hf", upvotes=50))  # fmt: skip
    core._catalog.invalidate()
    # The look-back fills the picks from the day before instead.
    assert "2599.00001" not in [p.paper_id for p in core.today(user("mo"), limit=5, day=later)]
    embed_missing(core.db, core.embedder)
    core._catalog.invalidate()
    assert "2599.00001" in [p.paper_id for p in core.today(user("al"), limit=5, day=later)]


def test_a_reload_does_not_hold_up_the_other_requests(
    core: PaperBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another process stored papers: one request rebuilds, the rest keep the old catalogue.
    core.ingest(topical_papers(per_topic=2))
    cache = CatalogCache(core.db, core.embedder.name, core.embedder.dim)
    old = cache.get()
    loading, release = threading.Event(), threading.Event()
    loads = []
    load = CatalogCache._load

    def held_load(self: CatalogCache, fingerprint: str) -> Catalog:
        loads.append(fingerprint)
        loading.set()
        release.wait(30)  # a rebuild in progress (a second or more for 10,000 papers)
        return load(self, fingerprint)

    monkeypatch.setattr(CatalogCache, "_load", held_load)
    monkeypatch.setattr(catalog_module, "RECHECK_SECONDS", 0.0)
    with core.db.write() as session:
        session.execute(sa.update(Paper).values(upvotes=Paper.upvotes + 1, updated_at=utcnow()))
    got: dict[str, Catalog] = {}

    def request(name: str) -> None:
        got[name] = cache.get()

    rebuilding = threading.Thread(target=request, args=["rebuilding"])
    rebuilding.start()
    assert loading.wait(30)
    others = [threading.Thread(target=request, args=[f"other {i}"]) for i in range(3)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join(30)  # while the rebuild is still held
    assert all(got.get(f"other {i}") is old for i in range(3)), got
    release.set()
    rebuilding.join(30)
    assert got["rebuilding"] is not old and len(loads) == 1
