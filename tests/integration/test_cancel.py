"""Cancellation is persistent: a queued job never runs; a running job is stopped."""

from __future__ import annotations

from pathlib import Path

from tests.support.api import Api


def test_cancelled_queued_job_never_runs_when_its_message_arrives(api: Api, markers: Path) -> None:
    # The message is already on its way (delivered at its ETA); cancel reaches only the ledger.
    job = api.submit("tests.record", args={"marker_dir": str(markers)}, countdown=2)
    cancelled = api.post(f"/jobs/{job['id']}/cancel", expect=202)
    assert cancelled["state"] == "cancelled"
    # A later job on the same queue finishing proves the cancelled message was delivered first.
    sentinel = api.submit("tests.record", args={"marker_dir": str(markers)}, countdown=3)
    assert api.wait(sentinel["id"])["state"] == "succeeded"

    assert not (markers / f"{job['id']}.ran").exists()
    after = api.job(job["id"])
    assert after["state"] == "cancelled"
    assert after["attempts"] == 0


def test_cancel_while_running_stops_the_task(api: Api, markers: Path) -> None:
    job = api.submit(
        "tests.io_steps", args={"count": 400, "interval": 0.05, "marker_dir": str(markers)}
    )
    api.wait_progress(job["id"], at_least=2)

    requested = api.post(f"/jobs/{job['id']}/cancel", expect=202)
    assert requested["cancel_requested"] is True

    done = api.wait(job["id"], timeout=10)
    assert done["state"] == "cancelled"
    assert done["progress"]["current"] < 400  # progress at the stop is kept
    assert not (markers / f"{job['id']}.done").exists()


def test_cancelling_a_finished_job_is_a_conflict(api: Api) -> None:
    job = api.submit("tests.echo")
    api.wait(job["id"])
    problem = api.post(f"/jobs/{job['id']}/cancel", expect=409)
    assert problem["title"] == "Job is not in a state that allows this"


def test_cancelled_job_can_be_retried_and_then_runs(api: Api, markers: Path) -> None:
    job = api.submit("tests.record", args={"marker_dir": str(markers)}, countdown=30)
    api.post(f"/jobs/{job['id']}/cancel", expect=202)

    api.post(f"/jobs/{job['id']}/retry", expect=202)
    done = api.wait(job["id"])
    assert done["state"] == "succeeded"
    assert (markers / f"{job['id']}.ran").exists()
