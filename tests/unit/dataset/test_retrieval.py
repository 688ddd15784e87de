"""The keyword analyser and reciprocal rank fusion."""

from __future__ import annotations

import random

from app.services.dataset.fusion import reciprocal_rank_fusion
from app.services.dataset.keywords import search_text
from app.services.dataset.keywords import terms


def test_terms_drop_stop_words_and_stem() -> None:
    assert terms("The whales were hunting the whale") == ["whale", "hunt", "whale"]
    assert search_text("snake_case Zürich") == "snake case zürich"


def test_fusion_puts_an_item_high_in_both_lists_above_ones_high_in_only_one() -> None:
    keyword = [1, 2, 3, 4]
    vector = [1, 5, 4, 6]
    fused = reciprocal_rank_fusion([keyword, vector], k=60, limit=4)
    # 4 (fourth and third) outranks 2 and 5 (second in one list each).
    assert [item for item, _ in fused] == [1, 4, 2, 5]
    assert all(0 < score <= 1 for _, score in fused)


def test_fusion_keeps_each_lists_first_item_in_the_top_two() -> None:
    keyword = [1, 2, 3, 4]
    vector = [5, 2, 6, 1]
    # Plain RRF would give [2, 1, 5]: 2 (second in both) beats both leaders, and a third
    # item second in both would push a leader out of the top 3.
    fused = reciprocal_rank_fusion([keyword, vector], k=60, limit=3)
    assert [item for item, _ in fused] == [1, 5, 2]
    assert reciprocal_rank_fusion([keyword, [5, 2, 6, 3]], k=60, limit=1)[0][0] == 2


def test_fusion_never_places_a_lists_jth_item_below_n_times_j() -> None:
    rng = random.Random(15)
    for _ in range(2000):
        lists = rng.randint(1, 3)
        rankings = [rng.sample(range(30), rng.randint(0, 12)) for _ in range(lists)]
        limit = rng.randint(1, 15)
        fused = [item for item, _ in reciprocal_rank_fusion(rankings, k=60, limit=limit)]
        assert len(set(fused)) == len(fused) == min(limit, len({i for r in rankings for i in r}))
        for ranking in rankings:
            for rank, item in enumerate(ranking, start=1):
                if lists * rank <= limit:
                    assert item in fused[: lists * rank], (rankings, limit, fused)


def test_fusion_of_one_list_keeps_its_order_and_first_in_all_lists_scores_one() -> None:
    assert [item for item, _ in reciprocal_rank_fusion([[3, 1, 2], []], k=60, limit=5)] == [
        3,
        1,
        2,
    ]
    [(item, score)] = reciprocal_rank_fusion([[7, 8], [7, 9]], k=10, limit=1)
    assert (item, score) == (7, 1.0)


def test_a_small_k_lets_the_first_rank_dominate() -> None:
    keyword, vector = [1, 5, 3], [4, 6, 7, 3]
    # k=1: first place in one list (1/2) beats third and fourth place in both (1/4 + 1/5).
    assert reciprocal_rank_fusion([keyword, vector], k=1, limit=1)[0][0] == 1
    # k=60: being in both lists counts for more.
    assert reciprocal_rank_fusion([keyword, vector], k=60, limit=1)[0][0] == 3
