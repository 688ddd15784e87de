from __future__ import annotations

import pytest

from app import queues


@pytest.mark.parametrize(
    ("profile", "pool", "concurrency", "prefetch", "queues_"),
    [
        ("cpu", "prefork", "2", "1", "dataset"),
        ("io", "gevent", "100", "4", "generation,mail,ops_trace"),
    ],
    ids=["cpu-is-prefork-on-dataset", "io-is-gevent-on-the-network-queues"],
)
def test_profile_worker_args(
    profile: str, pool: str, concurrency: str, prefetch: str, queues_: str
) -> None:
    assert queues.worker_args(profile) == [
        "-P",
        pool,
        "-c",
        concurrency,
        "--prefetch-multiplier",
        prefetch,
        "-Q",
        queues_,
    ]


def test_all_profile_consumes_every_queue() -> None:
    assert queues.profile_queues("all") == list(queues.QUEUES)


def test_unknown_profile_and_queue_name_the_known_ones() -> None:
    with pytest.raises(queues.UnknownQueueError, match="cpu, io, all"):
        queues.profile_queues("gpu")
    with pytest.raises(queues.UnknownQueueError, match="dataset, generation, mail, ops_trace"):
        queues.queue("email")


def test_cli_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    assert queues.main(["profile", "cpu"]) == 0
    assert capsys.readouterr().out.strip() == "prefork 2 1 dataset"
    assert queues.main(["profile", "gpu"]) == 64
    assert queues.main(["bogus"]) == 64
