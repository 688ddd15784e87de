"""Reciprocal rank fusion: combine ranked lists by rank, never by their raw scores.

BM25 and cosine scores live on unrelated scales, so averaging them lets one noisy
keyword hit outrank a strong vector match. RRF gives an item 1 / (k + rank) from each
list it is in and sums; an item high in either list stays high, one high in both rises
above both. k (DATASET_RRF_K, 60 as in Cormack et al. 2009) damps the gap between the
first ranks.
"""

from __future__ import annotations

from collections.abc import Sequence


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], *, k: int, limit: int
) -> list[tuple[int, float]]:
    """(item, fused score) of the best `limit` items, best first.

    The score is scaled by its largest possible value, so it is in (0, 1] and 1 means
    first in every list. Ties go to the item seen first in the earlier list.
    """
    if not rankings or limit <= 0:
        return []
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    best_possible = len(rankings) / (k + 1)
    seen = {item: order for order, item in enumerate(fused)}
    ordered = sorted(fused.items(), key=lambda pair: (-pair[1], seen[pair[0]]))
    return [(item, score / best_possible) for item, score in ordered[:limit]]
