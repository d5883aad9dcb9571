"""Embedding throughput: plain `SentenceTransformer.encode` against the project's path.

    HF_HUB_OFFLINE=1 python bench/embed.py [--rounds 3] [--limit N]

Both run in this one process on the same texts (title + abstract of the bundled
sample feed), interleaved round by round so that a noisy shared machine slows
both alike; the figures are medians over the rounds. Quality of the project's
vectors is measured against the fp32 vectors of the plain run: mean cosine, and
the share of papers whose top-5 nearest neighbours (as a set) are the same.

Targets (issue 3): ratio >= 2.0, mean cosine >= 0.98, same top-5 >= 95%.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bot.embedding import SentenceTransformerEmbedder, paper_text
from bot.sources.sample import SampleSource

NEIGHBOURS = 5


def top_neighbours(vectors: np.ndarray, k: int = NEIGHBOURS) -> np.ndarray:
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :k]


def same_neighbours(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref, cand = top_neighbours(reference), top_neighbours(candidate)
    return float(np.mean([set(a) == set(b) for a, b in zip(ref, cand, strict=True)]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="use the first N papers")
    args = parser.parse_args()

    texts = [paper_text(p.title, p.abstract) for p in SampleSource().fetch()][: args.limit]
    project = SentenceTransformerEmbedder("bundled", fast=True)
    project.embed(texts[:4])  # load and warm up outside the timings

    from sentence_transformers import SentenceTransformer

    plain = SentenceTransformer(project._path, device="cpu")
    plain.encode(texts[:4])

    plain_rates, project_rates = [], []
    reference = candidate = np.zeros(0)
    for _ in range(args.rounds):
        started = time.perf_counter()
        reference = plain.encode(texts, normalize_embeddings=True, convert_to_numpy=True)
        plain_rates.append(len(texts) / (time.perf_counter() - started))
        started = time.perf_counter()
        candidate = project.embed(texts)
        project_rates.append(len(texts) / (time.perf_counter() - started))

    import torch

    plain_rate, project_rate = statistics.median(plain_rates), statistics.median(project_rates)
    cosine = np.sum(reference.astype(np.float32) * candidate, axis=1)
    print(f"papers: {len(texts)}, rounds: {args.rounds}, torch threads: {torch.get_num_threads()}")
    print(f"{'plain SentenceTransformer.encode (fp32):':<40} {plain_rate:8.1f} papers/s")
    path = f"project path ({project.precision}, {project.workers} workers):"
    print(f"{path:<40} {project_rate:8.1f} papers/s")
    print(f"ratio: {project_rate / plain_rate:.2f}x")
    print(f"mean cosine to fp32: {cosine.mean():.5f} (min {cosine.min():.5f})")
    print(f"same top-{NEIGHBOURS} neighbours: {same_neighbours(reference, candidate):.1%}")


if __name__ == "__main__":
    main()
