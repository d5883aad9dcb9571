"""How much sooner the web adapter's first post comes from ingesting the newest days first.

Baseline: embed the whole bundled sample before posting. Measured: embed only
`newest_first_batch` before posting (the rest follows in the background).
Both run in this process with the bundled model already loaded, on fresh
SQLite files, so the ratio compares like with like on this machine.

    HF_HUB_OFFLINE=1 python bench/web_first_start.py
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from adapters.web.app import CHANNEL
from adapters.web.first_start import newest_first_batch
from bot import database
from bot.embedding import SentenceTransformerEmbedder
from bot.paperbot import PaperBot
from bot.settings import Settings
from bot.sources.sample import SampleSource


def seconds_to_first_picks(papers: list, embedder: SentenceTransformerEmbedder) -> float:  # type: ignore[type-arg]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        database.upgrade(url)
        core = PaperBot.open(url, embedder=embedder, settings=Settings())
        started = time.perf_counter()
        core.ingest(papers)
        picks = core.channel_picks(CHANNEL, limit=core.settings.picks_per_post)
        elapsed = time.perf_counter() - started
        core.close()
        if len(picks) != core.settings.picks_per_post:
            raise SystemExit(f"only {len(picks)} picks: the comparison would be unfair")
        return elapsed


def main() -> None:
    embedder = SentenceTransformerEmbedder("bundled")
    embedder.embed(["warm up the model"])
    papers = list(SampleSource().fetch())
    first, _ = newest_first_batch(papers, Settings().picks_per_post)
    baseline = seconds_to_first_picks(papers, embedder)
    measured = seconds_to_first_picks(first, embedder)
    print(f"{'variant':<28}{'papers':>8}{'seconds':>10}")
    print(f"{'baseline: whole sample':<28}{len(papers):>8}{baseline:>10.2f}")
    print(f"{'newest days first':<28}{len(first):>8}{measured:>10.2f}")
    print(f"ratio (newest first / baseline): {measured / baseline:.2f}")


if __name__ == "__main__":
    main()
