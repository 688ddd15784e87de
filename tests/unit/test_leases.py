"""A run whose greenlet was killed from outside stops holding its lease."""

from __future__ import annotations

import gevent

from app.ledger import leases


def test_a_job_whose_greenlet_died_unreleased_is_no_longer_held() -> None:
    process = leases._Process()
    finished = gevent.spawn(lambda: None)
    killed = gevent.spawn(gevent.sleep, 60)
    running = gevent.spawn(gevent.sleep, 60)
    gevent.sleep(0)
    try:
        finished.join()
        killed.kill()  # GreenletExit inside, as Celery does on a broker connection loss
        process.held = {"done": finished, "killed": killed, "running": running, "prefork": None}

        leases._prune_dead(process)

        # A live greenlet, or a process without gevent (None), keeps its lease renewed.
        assert set(process.held) == {"running", "prefork"}
    finally:
        running.kill()
