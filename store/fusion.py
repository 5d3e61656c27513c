"""Combine a lexical (BM25) ranking and a vector ranking into one hybrid ranking.

Reciprocal-rank fusion throws the scores away and lets a weak ranker pull a
strong one down: on LoCoMo it lands between BM25 and vectors. Here each
ranker's scores are normalised per query (BM25 divided by the query's best
BM25 score; cosine similarity min-max scaled over the candidates) and summed
with weights, so a document that is a strong lexical match stays on top, and
vector similarity decides among lexical near-ties and brings in memories that
share no word with the query. The weights the store uses depend on the
embedder (``store.postgres.default_fusion``); they were chosen on the LoCoMo
development split (bench/locomo.py prints the sweep).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import TypeVar

Item = TypeVar("Item", bound=Hashable)


@dataclass(frozen=True)
class FusionWeights:
    """How much each ranker counts in the hybrid score (both in [0, 1])."""

    lexical: float = 0.5
    vector: float = 0.5


def fuse_scores(
    lexical: Mapping[Item, float],
    vector: Mapping[Item, float],
    weights: FusionWeights = FusionWeights(),
) -> list[tuple[Item, float]]:
    """Return ``(id, hybrid score)`` best first for the union of both candidate sets.

    ``lexical`` maps ids to BM25 scores (absent = no lexical match);
    ``vector`` maps ids to cosine similarity (absent = no vector).
    Ties are broken by id so the order is deterministic.
    """
    best_lexical = max(lexical.values(), default=0.0)
    low = min(vector.values(), default=0.0)
    high = max(vector.values(), default=0.0)
    spread = high - low
    fused: dict[Item, float] = {}
    for item in set(lexical) | set(vector):
        lexical_part = lexical.get(item, 0.0) / best_lexical if best_lexical > 0 else 0.0
        if item in vector:
            vector_part = (vector[item] - low) / spread if spread > 0 else 1.0
        else:
            vector_part = 0.0
        fused[item] = weights.lexical * lexical_part + weights.vector * vector_part
    return sorted(fused.items(), key=lambda pair: (-pair[1], str(pair[0])))
