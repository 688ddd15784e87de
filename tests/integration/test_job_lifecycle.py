"""Jobs submitted over REST run on real workers, and the ledger tells their whole story."""

from __future__ import annotations

from pathlib import Path

from tests.support.api import Api


def test_submitted_job_runs_and_ledger_holds_result(api: Api) -> None:
    accepted = api.submit("tests.echo", args={"value": {"n": 1}})
    assert accepted["state"] == "queued"
    assert accepted["queue"] == "dataset"

    done = api.wait(accepted["id"])

    assert done["state"] == "succeeded"
    assert done["result"] == {"value": {"n": 1}}
    assert done["attempts"] == 1
    assert done["worker"].startswith("cpu-")
    assert done["started_at"] and done["finished_at"]
    assert done["error"] is None


def test_location_header_points_at_the_job(client, auth, workers) -> None:
    response = client.post("/api/v1/jobs", json={"task": "tests.echo"}, headers=auth)
    assert response.status_code == 202
    job_id = response.get_json()["id"]
    assert response.headers["Location"] == f"/api/v1/jobs/{job_id}"
    assert client.get(response.headers["Location"], headers=auth).status_code == 200


def test_same_idempotency_key_returns_first_job_and_runs_once(api: Api, markers: Path) -> None:
    body = {"args": {"marker_dir": str(markers)}, "idempotency_key": f"key-{markers.name}"}
    first = api.submit("tests.record", **body)
    second = api.submit("tests.record", **body)

    assert second["id"] == first["id"]
    api.wait(first["id"])
    assert (markers / f"{first['id']}.ran").read_text().count("\n") == 1
    assert not list(markers.glob("*.ran"))[1:]  # no second job ran at all


def test_idempotency_key_with_other_arguments_is_a_conflict(api: Api) -> None:
    api.submit("tests.echo", args={"value": 1}, idempotency_key="conflict-key-1")
    problem = api.submit(
        "tests.echo", expect=409, args={"value": 2}, idempotency_key="conflict-key-1"
    )
    assert problem["status"] == 409
    assert "different task or arguments" in problem["detail"]


def test_failure_is_recorded_with_type_and_message(api: Api) -> None:
    job = api.submit("tests.fail", args={"message": "the input was wrong"})
    done = api.wait(job["id"])
    assert done["state"] == "failed"
    assert done["error"] == {"type": "ValueError", "message": "the input was wrong"}
    assert done["queue"] == "generation"


def test_retries_show_as_attempts_and_end_in_success(api: Api) -> None:
    job = api.submit("tests.flaky", args={"failures": 2})
    done = api.wait(job["id"])
    assert done["state"] == "succeeded"
    assert done["result"] == {"retries": 2}
    assert done["attempts"] == 3


def test_soft_time_limit_fails_the_job(api: Api) -> None:
    done = api.wait(api.submit("tests.overrun")["id"])
    assert done["state"] == "failed"
    assert done["error"]["type"] == "SoftTimeLimitExceeded"


def test_hard_time_limit_is_recorded_by_the_worker_parent(api: Api) -> None:
    # The task swallows the soft limit, so the pool kills it at the hard limit; only the
    # worker's main process can record that.
    done = api.wait(api.submit("tests.overrun", args={"ignore_soft_limit": True})["id"])
    assert done["state"] == "failed"
    assert done["error"]["type"] == "TimeLimitExceeded"


def test_failed_job_can_be_retried_as_a_new_attempt(api: Api) -> None:
    job = api.submit("tests.fail", args={"message": "once"})
    api.wait(job["id"])

    again = api.post(f"/jobs/{job['id']}/retry", expect=202)
    assert again["state"] == "queued"

    done = api.wait(job["id"])
    assert done["id"] == job["id"]
    assert done["state"] == "failed"
    # Same job, second run: attempts counts every run.
    assert done["attempts"] == 2


def test_retry_of_a_running_or_finished_ok_job_is_refused(api: Api) -> None:
    job = api.submit("tests.echo")
    api.wait(job["id"])
    problem = api.post(f"/jobs/{job['id']}/retry", expect=409)
    assert "only failed or cancelled" in problem["detail"]


def test_progress_is_visible_while_the_job_runs(api: Api, markers: Path) -> None:
    job = api.submit(
        "tests.io_steps", args={"count": 40, "interval": 0.05, "marker_dir": str(markers)}
    )
    midway = api.wait_progress(job["id"], at_least=5)
    assert midway["state"] == "started"
    assert midway["progress"]["total"] == 40
    done = api.wait(job["id"])
    assert done["progress"] == {"current": 40, "total": 40, "message": "done"}


def test_every_job_of_a_batch_runs_once_with_its_own_arguments(api: Api) -> None:
    # All but the first message of a shape are copies of the first (message_copies.py):
    # a real worker must take each as the job it names, with that job's arguments.
    items = [{"task": "tests.echo", "args": {"value": n}} for n in range(20)]
    items += [{"task": "tests.echo", "args": {"value": "urgent"}, "priority": 9}] * 2
    accepted = api.post("/jobs/batch", 202, {"jobs": items})["jobs"]

    done = [api.wait(job["id"]) for job in accepted]

    assert [job["state"] for job in done] == ["succeeded"] * len(items)
    assert [job["result"]["value"] for job in done] == [*range(20), "urgent", "urgent"]
    assert [job["attempts"] for job in done] == [1] * len(items)
