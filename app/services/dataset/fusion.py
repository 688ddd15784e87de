"""Reciprocal rank fusion: combine ranked lists by rank, never by their raw scores.

BM25 and cosine scores live on unrelated scales, so averaging them lets one noisy
keyword hit outrank a strong vector match. RRF gives an item 1 / (k + rank) from each
list it is in and sums; an item high in either list stays high, one high in both rises
above both. k (DATASET_RRF_K, 60 as in Cormack et al. 2009) damps the gap between the
first ranks.

RRF alone can still bury one list's best answers: with k = 60, the first item of one
list (1/61) loses to any item fifth in both (2/65), so when one input is weak (say the
vector list, for a query it does not understand) items it ranks middling everywhere
push the other input's confident first hit out of the top 3. So the fused order is RRF
under the bound balanced interleaving gives (Joachims 2003): with n lists, an item j-th in
any list is never placed below position n * j. The fused top n * j then always holds the
top j of every input: fusion can reorder its inputs' leaders but never drop them, and
hybrid hit@2 is at least the better input's hit@1. Where the bound does not bind (the
usual case) the order is plain RRF.
"""

from __future__ import annotations

from collections.abc import Sequence


def reciprocal_rank_fusion(
    rankings: Sequence[Sequence[int]], *, k: int, limit: int
) -> list[tuple[int, float]]:
    """(item, fused score) of the best `limit` items, best first.

    The score is scaled by its largest possible value, so it is in (0, 1] and 1 means
    first in every list. Ties go to the item seen first in the earlier list. An item
    lifted by the interleaving bound keeps its own score, so scores are not always
    descending.
    """
    if not rankings or limit <= 0:
        return []
    fused: dict[int, float] = {}
    # Position an item must not fall below: n x its best rank in any list.
    deadline: dict[int, int] = {}
    lists = len(rankings)
    for ranking in rankings:
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
            deadline[item] = min(deadline.get(item, lists * rank), lists * rank)
    best_possible = lists / (k + 1)
    seen = {item: order for order, item in enumerate(fused)}
    ordered = sorted(fused, key=lambda item: (-fused[item], seen[item]))
    placed = _bounded(ordered, deadline, min(limit, len(ordered)))
    return [(item, fused[item] / best_possible) for item in placed]


def _bounded(ordered: list[int], deadline: dict[int, int], limit: int) -> list[int]:
    """The first `limit` of `ordered`, taken in order unless a deadline would be missed.

    At each position the best remaining item is taken, except when the items due by some
    later position exactly fill the places left before it (the bound is tight): then the
    best of those due items is taken. Each list has at most D / n items due by position
    D, so the bound can always be met.
    """
    remaining = list(ordered)
    placed: list[int] = []
    for position in range(1, limit + 1):
        due = [0] * (limit + 1)  # due[d]: remaining items whose deadline is d (<= limit)
        for item in remaining:
            if deadline[item] <= limit:
                due[deadline[item]] += 1
        tight, count = None, 0
        for last in range(position, limit + 1):
            count += due[last]
            if count >= last - position + 1:
                tight = last
                break
        choice = next(item for item in remaining if tight is None or deadline[item] <= tight)
        remaining.remove(choice)
        placed.append(choice)
    return placed
