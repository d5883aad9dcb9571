"""A 2-D map of papers: their embeddings projected on the two main directions (PCA).

People read a picture of "where my likes sit among today's papers" faster than
a list of scores. The projection is fitted on the papers shown, so the axes are
the directions along which today's papers differ most; followed topics are
placed on the same axes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import numpy as np

from bot.catalog import Catalog
from bot.domain import FeedbackState


@dataclass(frozen=True, slots=True)
class MapPoint:
    label: str  # the paper's title, or the followed topic
    x: float  # both coordinates in [-1, 1]
    y: float
    paper_id: str | None = None  # None for a followed topic
    today: bool = False  # listed on the mapped day
    liked: bool = False
    disliked: bool = False
    saved: bool = False
    picked: bool = False  # shown to the user in their picks


@dataclass(frozen=True, slots=True)
class PaperMap:
    papers: tuple[MapPoint, ...]
    follows: tuple[MapPoint, ...]
    explained: tuple[float, float]  # share of the variance along x and along y


def project_papers(
    catalog: Catalog,
    day: date | None,
    rated: Mapping[str, FeedbackState],
    shown: set[str],
    follows: Sequence[tuple[str, np.ndarray]],
) -> PaperMap:
    """The papers listed on `day`, every paper the user rated, and their followed topics, in 2-D."""
    today = (
        {int(r) for r in np.flatnonzero(catalog.listed_on == np.datetime64(day, "D"))}
        if day is not None
        else set()
    )
    rows = sorted(today | {catalog.index[p] for p in rated if p in catalog.index})
    # Papers not embedded yet have a zero vector: they have no place on the map.
    rows = [r for r in rows if np.any(catalog.vectors[r])]
    if not rows:
        return PaperMap((), (), (0.0, 0.0))
    vectors = catalog.vectors[rows]
    mean = vectors.mean(axis=0)
    components, explained = _principal_axes(vectors - mean)
    coords = (vectors - mean) @ components.T
    follow_coords = (
        (np.stack([v for _, v in follows]) - mean) @ components.T
        if follows
        else np.zeros((0, 2), dtype=np.float32)
    )
    scale = float(np.abs(np.concatenate([coords, follow_coords])).max())
    if scale > 0:
        coords, follow_coords = coords / scale, follow_coords / scale
    papers = []
    for (x, y), row in zip(coords, rows, strict=True):
        pid = catalog.ids[row]
        state = rated.get(pid, FeedbackState())
        papers.append(
            MapPoint(
                label=catalog.titles[row],
                x=float(x),
                y=float(y),
                paper_id=pid,
                today=row in today,
                liked=state.up,
                disliked=state.down,
                saved=state.saved,
                picked=pid in shown,
            )
        )
    topics = tuple(
        MapPoint(label=topic, x=float(x), y=float(y))
        for (topic, _), (x, y) in zip(follows, follow_coords, strict=True)
    )
    return PaperMap(tuple(papers), topics, explained)


def _principal_axes(centred: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
    """The two main directions (2, dim) and their share of the variance.

    Each direction's sign is fixed (largest loading positive) so the same papers
    give the same picture on every request.
    """
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    axes = np.zeros((2, centred.shape[1]), dtype=np.float64)
    axes[: min(2, len(vt))] = vt[:2]
    for axis in axes:
        if axis[np.argmax(np.abs(axis))] < 0:
            axis *= -1
    variance = singular**2
    total = float(variance.sum())
    shares = [float(v) / total if total > 0 else 0.0 for v in variance[:2]]
    shares += [0.0] * (2 - len(shares))
    return axes, (shares[0], shares[1])
