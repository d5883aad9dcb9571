"""Storing incoming papers: dedup by id, update what changes, embed each paper once per model."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial

import sqlalchemy as sa
from sqlmodel import col

from bot.database import Database
from bot.domain import IngestReport, PaperIn
from bot.embedding import Embedder, paper_text, to_bytes
from bot.models import Paper, PaperEmbedding, utcnow
from bot.normalise import MAX_COUNT, abs_url, pdf_url, plausible_day, plausible_instant
from bot.sources import Source
from bot.sources.feed_http import FeedError

log = logging.getLogger(__name__)

EMBED_BATCH = 64
Progress = Callable[[int, int], None]  # (done, total)


@dataclass
class _Tally:
    fetched: int = 0
    new: int = 0
    updated: int = 0
    embedded: int = 0
    rejected: Counter[str] = field(default_factory=Counter)


def store_papers(
    db: Database,
    embedder: Embedder,
    papers: Iterable[PaperIn],
    *,
    rejected: Counter[str] | None = None,
    progress: Progress | None = None,
) -> IngestReport:
    """Upsert `papers`, then embed those without a vector for this embedder.

    Each paper is written in one transaction together with nothing else, so a
    crash leaves whole papers or none; embedding afterwards is resumable, since
    it only looks for papers that still lack a vector.
    """
    started = time.perf_counter()
    tally = _Tally(rejected=Counter(rejected or {}))
    seen: dict[str, PaperIn] = {}
    for paper in papers:
        tally.fetched += 1
        if problem := _unstorable(paper):
            # A source's parser should have caught it; one bad paper must not
            # abort the ingest of the rest.
            log.warning("paper %s rejected: %s", paper.id, problem)
            tally.rejected[problem] += 1
            continue
        # The same paper twice in one batch (two sources, two days) becomes one.
        seen[paper.id] = _merge(seen.get(paper.id), paper)

    for paper in seen.values():
        created = db.write_retrying(partial(_upsert, paper=paper), what=f"store {paper.id}")
        if created:
            tally.new += 1
        else:
            tally.updated += 1

    tally.embedded = embed_missing(db, embedder, progress=progress)
    return IngestReport(
        fetched=tally.fetched,
        new=tally.new,
        updated=tally.updated,
        embedded=tally.embedded,
        rejected={k: v for k, v in tally.rejected.items() if v},
        seconds=time.perf_counter() - started,
    )


def fetch_all(
    source: Source, *, on_paper: Callable[[int], None] | None = None
) -> tuple[list[PaperIn], FeedError | None]:
    """Everything `source` yields, and the feed error that stopped it early, if any.

    Papers fetched before a failure (say page 3 of 4 timed out) are whole and
    valid, so they are kept: the caller stores them and still reports the error.
    """
    papers: list[PaperIn] = []
    try:
        for paper in source.fetch():
            papers.append(paper)
            if on_paper:
                on_paper(len(papers))
    except FeedError as exc:
        log.error("%s feed failed after %d papers: %s", source.name, len(papers), exc)
        return papers, exc
    return papers, None


def _unstorable(paper: PaperIn) -> str | None:
    """Why the database cannot hold this paper, if it cannot."""
    if not 0 <= paper.upvotes <= MAX_COUNT:
        return "upvotes out of range"
    if not plausible_day(paper.listed_on):
        return "listing day out of range"
    if paper.published is not None:
        try:
            plausible_instant(paper.published)
        except ValueError:
            return "publication date out of range"
    return None


def _merge(old: PaperIn | None, new: PaperIn) -> PaperIn:
    if old is None:
        return new
    first_day = min(old.listed_on, new.listed_on)
    keep = new if new.upvotes >= old.upvotes else old
    return replace(
        keep,
        listed_on=first_day,
        github=keep.github or old.github or new.github,
        ai_summary=keep.ai_summary or old.ai_summary or new.ai_summary,
        keywords=tuple(keep.keywords) or tuple(old.keywords) or tuple(new.keywords),
        thumbnail=keep.thumbnail or old.thumbnail or new.thumbnail,
        project_page=keep.project_page or old.project_page or new.project_page,
    )


def _upsert(session: sa.orm.Session, paper: PaperIn) -> bool:
    """Insert or update one paper. Returns True when it is new."""
    row = session.get(Paper, paper.id)
    if row is None:
        session.add(
            Paper(
                id=paper.id,
                title=paper.title,
                abstract=paper.abstract,
                authors=list(paper.authors),
                abs_url=paper.url or abs_url(paper.id),
                pdf_url=paper.pdf_url or pdf_url(paper.id),
                published=paper.published,
                listed_on=paper.listed_on,
                upvotes=paper.upvotes,
                github=paper.github,
                project_page=paper.project_page,
                thumbnail=paper.thumbnail,
                ai_summary=paper.ai_summary,
                keywords=list(paper.keywords),
                source=paper.source,
            )
        )
        return True
    # Known paper: refresh what moves (upvotes, links); the first listing day stays.
    fresh = {
        "upvotes": max(row.upvotes, paper.upvotes),
        "listed_on": min(row.listed_on, paper.listed_on),
        "github": paper.github or row.github,
        "project_page": paper.project_page or row.project_page,
        "thumbnail": paper.thumbnail or row.thumbnail,
        "ai_summary": paper.ai_summary or row.ai_summary,
        "keywords": list(paper.keywords) or row.keywords,
        "abs_url": row.abs_url or paper.url,
    }
    changed = {name: value for name, value in fresh.items() if getattr(row, name) != value}
    # Only a real change moves updated_at: it is in the papers table's stamp, and a
    # new stamp makes every serving process rebuild its catalogue (seconds for a
    # large one) and every user's model. A weekend retry re-ingests the same list.
    if changed:
        for name, value in changed.items():
            setattr(row, name, value)
        row.updated_at = utcnow()
    return False


def embed_missing(db: Database, embedder: Embedder, *, progress: Progress | None = None) -> int:
    """Embed every paper that has no vector for `embedder.name`. Returns how many."""
    with db.read() as session:
        missing = session.execute(lacking_vector(embedder.name).order_by(col(Paper.id))).all()
    done = 0
    if progress:
        progress(0, len(missing))
    for start in range(0, len(missing), EMBED_BATCH):
        batch = missing[start : start + EMBED_BATCH]
        vectors = embedder.embed([paper_text(r.title, r.abstract) for r in batch])

        def save(session: sa.orm.Session, batch=batch, vectors=vectors) -> None:  # type: ignore[no-untyped-def]
            for row, vector in zip(batch, vectors, strict=True):
                session.merge(
                    PaperEmbedding(
                        paper_id=row.id,
                        model=embedder.name,
                        dim=embedder.dim,
                        vector=to_bytes(vector),
                    )
                )

        db.write_retrying(save, what="store embeddings")
        done += len(batch)
        if progress:
            progress(done, len(missing))
    if done:
        log.info("embedded %d papers with %s", done, embedder.name)
    return done


def lacking_vector(model: str) -> sa.Select[str, str, str]:
    """Papers with no vector for `model` (id, title, abstract): what `embed_missing` embeds."""
    return (
        sa.select(col(Paper.id), col(Paper.title), col(Paper.abstract))
        .outerjoin(
            PaperEmbedding,
            sa.and_(
                col(PaperEmbedding.paper_id) == col(Paper.id), col(PaperEmbedding.model) == model
            ),
        )
        .where(col(PaperEmbedding.paper_id).is_(None))
    )


def count_lacking_vector(db: Database, model: str) -> int:
    """How many papers `embed_missing` would embed for `model`; reads only."""
    with db.read() as session:
        query = sa.select(sa.func.count()).select_from(lacking_vector(model).subquery())
        return int(session.scalar(query) or 0)
