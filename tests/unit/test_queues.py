from __future__ import annotations

import pytest

from app import queues


def test_cpu_profile_is_prefork_on_dataset() -> None:
    assert queues.worker_args("cpu") == [
        "-P",
        "prefork",
        "-c",
        "2",
        "--prefetch-multiplier",
        "1",
        "-Q",
        "dataset",
    ]


def test_io_profile_is_gevent_on_the_network_queues() -> None:
    assert queues.worker_args("io") == [
        "-P",
        "gevent",
        "-c",
        "100",
        "--prefetch-multiplier",
        "4",
        "-Q",
        "generation,mail,ops_trace",
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
