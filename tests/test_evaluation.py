"""The offline evaluation harness (`paperbot eval`) on a small synthetic corpus."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest

from bot import evaluation
from bot.domain import PaperIn
from bot.embedding import HashingEmbedder
from tests.helpers import PAPERBOT, subprocess_env

# Six topics with their own vocabulary, and some shared filler words.
VOCABULARY = {
    "protein": "protein folding structure residues enzymes binding molecular dynamics",
    "galaxy": "galaxy redshift telescope cosmology stellar halo survey spectra",
    "market": "market prices trading volatility portfolio liquidity auctions equity",
    "music": "music melody harmony rhythm composer audio chords genre",
    "robot": "robot grasping manipulation gripper arm motion planning actuators",
    "climate": "climate rainfall ocean warming carbon emissions weather forecast",
}
# What a reader would type to follow the topic, and the keyword that defines it.
TOPICS = [
    {"name": "protein folding", "keywords": ["protein"]},
    {"name": "galaxy surveys", "keywords": ["galax"]},
    {"name": "market volatility", "keywords": ["market"]},
    {"name": "music harmony", "keywords": ["music"]},
    {"name": "robot grasping", "keywords": ["robot"]},
    {"name": "climate forecast", "keywords": ["climate"]},
]


def write_corpus(path: Path, days: int = 4, per_day: int = 18) -> None:
    rng = np.random.default_rng(3)
    lines = []
    for d in range(days):
        for i in range(per_day):
            name = list(VOCABULARY)[(d * per_day + i) % len(VOCABULARY)]
            words = rng.choice(VOCABULARY[name].split(), 6).tolist()
            filler = rng.choice("we propose a method results show improvement".split(), 4)
            lines.append(
                {
                    "id": f"syn-{d}-{i}",
                    "title": f"{name} study: {' '.join(words[:3])}",
                    "abstract": " ".join([*words, *filler.tolist()]),
                    "listed_on": (date(2025, 1, 6) + timedelta(days=d)).isoformat(),
                    "upvotes": int(rng.integers(0, 20)),
                }
            )
    path.write_text("\n".join(json.dumps(line) for line in lines), encoding="utf-8")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    write_corpus(path)
    return path


def config(seeds: int = 2) -> evaluation.EvalConfig:
    topics = tuple(evaluation.Topic(t["name"], tuple(t["keywords"])) for t in TOPICS)
    return evaluation.EvalConfig(seeds=seeds, warmup_days=2, readers_per_seed=4, topics=topics)


def test_ground_truth_is_keywords_in_the_text() -> None:
    papers = [
        PaperIn("a", "Quantized LLMs", "x", (), None, date(2025, 1, 1), "t"),
        PaperIn("b", "Fast agents", "multi-agent systems", (), None, date(2025, 1, 1), "t"),
        PaperIn("c", "Reagents", "chemistry", (), None, date(2025, 1, 1), "t"),
    ]
    corpus = evaluation.Corpus.from_papers(papers)
    topics = [evaluation.Topic("q", ("quantiz",)), evaluation.Topic("agents", ("agent",))]
    labels = corpus.labels(topics)
    # word-prefix matches: "quantized", "agents"/"agent", but never "reagents"
    assert labels.tolist() == [[True, False], [False, True], [False, False]]


def test_a_short_keyword_is_an_acronym_and_matches_whole_words_only() -> None:
    texts = ["ViTs scale", "a ViT-L backbone", "vital signs", "the VITA model"]
    papers = [PaperIn(str(i), t, "x", (), None, date(2025, 1, 1), "t") for i, t in enumerate(texts)]
    labels = evaluation.Corpus.from_papers(papers).labels([evaluation.Topic("vit", ("vit",))])
    assert labels[:, 0].tolist() == [True, True, False, False]


class ScrambledEmbedder:
    """Random vectors: a model that knows nothing about the text."""

    name = "scrambled"
    dim = 16

    def embed(self, texts: list[str]) -> np.ndarray:
        rng = np.random.default_rng(len(texts))
        out = rng.normal(size=(len(texts), self.dim)).astype(np.float32)
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_the_harness_ranks_a_learning_recommender_above_random(corpus: Path) -> None:
    scores = evaluation.evaluate(evaluation.load_corpus(corpus), HashingEmbedder(), config())
    for name in evaluation.ALGORITHMS:
        for phase in evaluation.PHASES:
            assert 0.0 <= scores.mean(name, phase) <= 1.0, (name, phase)
    assert len(scores.per_seed[("paperbot", "after warm-up")]) == 2  # one mean per seed
    random_warm = scores.mean("random", "after warm-up")
    assert scores.mean("paperbot", "after warm-up") > random_warm + 0.2
    assert scores.mean("paperbot + follow", "day 1") > scores.mean("random", "day 1") + 0.2
    lines = evaluation.summary(scores)
    assert lines[0].startswith("after warm-up: paperbot") and "target +15%" in lines[0]
    assert lines[1].startswith("day 1 with follow") and "target 3x" in lines[1]
    assert all(", per seed " in line and "x ± " in line for line in lines)  # 2 seeds, paired


def test_ground_truth_does_not_depend_on_the_model_under_test(corpus: Path) -> None:
    """Swap the embedding for noise: recommenders that ignore it score exactly the same."""
    papers = evaluation.load_corpus(corpus)
    real = evaluation.evaluate(papers, HashingEmbedder(), config(seeds=1))
    noise = evaluation.evaluate(papers, ScrambledEmbedder(), config(seeds=1))
    for name in ("random", "popularity", "arxiv-sanity-lite"):
        for phase in evaluation.PHASES:
            assert real.mean(name, phase) == noise.mean(name, phase), (name, phase)
    # ...while paperbot, which does use the embedding, learns less from noise. (Measured
    # after warm-up: day 1 of one seed is 4 readers' first picks, too few to compare.)
    for name in ("paperbot", "paperbot + follow"):
        assert noise.mean(name, "after warm-up") < real.mean(name, "after warm-up"), name


def test_paperbot_eval_command_prints_the_table(corpus: Path, tmp_path: Path) -> None:
    topics = tmp_path / "topics.json"
    topics.write_text(json.dumps(TOPICS), encoding="utf-8")
    result = subprocess.run(
        [
            *PAPERBOT,
            "eval",
            "--corpus",
            str(corpus),
            "--topics",
            str(topics),
            "--embedder",
            "hashing",
            "--seeds",
            "1",
            "--readers",
            "4",
            "--warmup",
            "2",
            "--cache",
            str(tmp_path / "cache"),
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(COLUMNS="160"),
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for name in evaluation.ALGORITHMS:
        assert name in result.stdout
    assert "after warm-up: paperbot" in result.stdout
    assert list((tmp_path / "cache").glob("eval-embeddings-*.npz"))  # vectors kept for next time


def test_a_corpus_without_enough_topic_papers_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "tiny.jsonl"
    write_corpus(path, days=3, per_day=2)
    with pytest.raises(ValueError, match="no topic has enough papers"):
        evaluation.evaluate(evaluation.load_corpus(path), HashingEmbedder(), config())


def test_a_corpus_too_short_for_the_warm_up_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "short.jsonl"
    write_corpus(path, days=2)
    with pytest.raises(ValueError, match=r"2 listing day.*warm-up of 2"):
        evaluation.evaluate(evaluation.load_corpus(path), HashingEmbedder(), config())


def test_a_corpus_file_with_no_readable_paper_says_so(tmp_path: Path) -> None:
    # A saved Daily Papers response (one JSON document), say, instead of a JSONL feed:
    # every line is rejected, and "give fewer --warmup days" would send people astray.
    path = tmp_path / "daily_papers.json"
    path.write_text('{"not": "a feed"}\n')
    with pytest.raises(ValueError, match=r"daily_papers\.json: no papers in it \(a JSONL feed"):
        evaluation.load_corpus(path)


def test_topics_too_thin_to_score_are_named(corpus: Path, caplog: pytest.LogCaptureFixture) -> None:
    thin = evaluation.Topic("string theory", ("string theory",))  # in no paper
    topics = (*config().topics, thin)
    settings = evaluation.EvalConfig(seeds=2, warmup_days=2, readers_per_seed=3, topics=topics)
    progress: list[tuple[int, int]] = []
    with caplog.at_level(logging.WARNING, logger="bot.evaluation"):
        evaluation.evaluate(
            evaluation.load_corpus(corpus),
            HashingEmbedder(),
            settings,
            progress=lambda done, total: progress.append((done, total)),
        )
    assert "fewer than 8 papers, not scored: string theory (0)" in caplog.text
    assert "protein folding (" not in caplog.text
    assert progress == [(n, 6) for n in range(1, 7)]  # one step per reader, 2 seeds x 3


def test_a_corpus_share_gives_each_seed_a_corpus_of_its_own(corpus: Path) -> None:
    papers = evaluation.load_corpus(corpus)
    first, again, second = (evaluation._resample(papers, 0.9, seed) for seed in (0, 0, 1))
    assert first == again  # reproducible
    assert first != second  # but every seed draws its own
    assert {p.id for p in first} < {p.id for p in papers}
    assert 0.8 * len(papers) < len(first) < len(papers)

    whole = evaluation.evaluate(papers, HashingEmbedder(), config())
    shared = evaluation.evaluate(
        papers, HashingEmbedder(), dataclasses.replace(config(), corpus_share=0.9)
    )
    assert len(shared.per_seed[("random", "after warm-up")]) == 2  # one mean per seed
    # The same readers and coin flips, other papers: even random picks score otherwise.
    assert (
        shared.per_seed[("random", "after warm-up")] != whole.per_seed[("random", "after warm-up")]
    )
    assert shared.mean("paperbot", "after warm-up") > shared.mean("random", "after warm-up") + 0.2


@pytest.mark.parametrize("share", [0.0, 1.5])
def test_a_corpus_share_out_of_range_is_a_clear_error(corpus: Path, share: float) -> None:
    with pytest.raises(ValueError, match="corpus share must be above 0 and at most 1"):
        evaluation.evaluate(
            evaluation.load_corpus(corpus),
            HashingEmbedder(),
            dataclasses.replace(config(), corpus_share=share),
        )


@pytest.mark.parametrize("content", [None, '[{"name": "no keywords"}]', "not json"])
def test_a_bad_topics_file_is_one_line(tmp_path: Path, content: str | None) -> None:
    topics = tmp_path / "topics.json"
    if content is not None:
        topics.write_text(content, encoding="utf-8")
    result = subprocess.run(
        [*PAPERBOT, "eval", "--topics", str(topics), "--embedder", "hashing"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("cannot evaluate:") and str(topics) in result.stderr
