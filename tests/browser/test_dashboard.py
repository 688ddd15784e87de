"""The dashboard in Chromium against the real stack: sign in, watch, cancel, retry, backlog."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
from flask import Flask
from playwright.sync_api import expect

from tests.browser.conftest import Outside
from tests.browser.conftest import screenshot
from tests.browser.conftest import sign_in
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProcess

PAGES = {
    "overview": ("/dashboard/", "#workers"),
    "jobs": ("/dashboard/jobs", "table.jobs"),
    "failures": ("/dashboard/failures", "h1"),
    "datasets": ("/dashboard/datasets", "h1"),
    "mail": ("/dashboard/mail", "h1"),
    "generations": ("/dashboard/generations", "h1"),
}


def _submit(rest: httpx.Client, task: str, **args: Any) -> str:
    response = rest.post("/jobs", json={"task": task, "args": args})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def _state(rest: httpx.Client, job_id: str) -> str:
    return str(rest.get(f"/jobs/{job_id}").json()["state"])


def _lane_work(rest: httpx.Client) -> dict[str, str]:
    """A document indexed, a generation written and a mail sent, each through the API."""
    dataset = rest.post("/datasets", json={"name": "handbook"})
    assert dataset.status_code == 201, dataset.text
    dataset_id = dataset.json()["id"]
    text = "Queues hold work. Workers take jobs from queues and run them. " * 20
    upload = rest.post(
        f"/datasets/{dataset_id}/documents",
        json={"documents": [{"name": "operators-guide.md", "text": text}]},
    )
    assert upload.status_code == 202, upload.text
    doc_id = upload.json()["documents"][0]["id"]
    prompt = "The dashboard shows every queue. Workers drain the backlog quickly."
    generation = rest.post("/generations", json={"prompt": prompt})
    assert generation.status_code == 202, generation.text
    mailed = _submit_with(rest, "tests.echo", notify="ops@example.com")

    def settled() -> bool:
        doc = rest.get(f"/datasets/{dataset_id}/documents/{doc_id}").json()
        gen = rest.get(f"/generations/{generation.json()['id']}").json()
        return doc["indexing_status"] == "completed" and gen["status"] == "succeeded"

    wait_for(settled, timeout=60, what="the document and the generation to finish")
    wait_for(lambda: _state(rest, mailed) == "succeeded", timeout=30, what="the notified job")
    return {"document": "operators-guide.md", "generation": "Workers drain"}


def _submit_with(rest: httpx.Client, task: str, **body: Any) -> str:
    response = rest.post("/jobs", json={"task": task, "args": {}, **body})
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_sign_in_and_every_page_stays_on_its_own_origin(
    context: tuple[Any, Outside], rest: httpx.Client, api_token: str
) -> None:
    ctx, outside = context
    work = _lane_work(rest)
    page = ctx.new_page()
    page.goto("/dashboard/jobs")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.fill("input[name=api_key]", "tl_not-a-key")
    page.click("button[type=submit]")
    expect(page.locator("[role=alert]")).to_contain_text("unknown or revoked")
    sign_in(page, api_token)
    page.goto("/dashboard/datasets")
    expect(page.locator("tr", has_text=work["document"])).to_contain_text("completed")
    page.goto("/dashboard/generations")
    expect(page.locator("tbody tr").first).to_contain_text(work["generation"])
    mail_row = page.locator("tr", has_text="Tasklane job tests.echo succeeded")

    def mail_sent() -> bool:
        # The notification is queued once the job has finished: reload until it was sent.
        page.goto("/dashboard/mail")
        return mail_row.count() > 0 and "sent" in mail_row.first.inner_text()

    wait_for(mail_sent, timeout=30, interval=0.5, what="the job_finished mail on the Mail page")
    for name, (path, ready) in PAGES.items():
        page.goto(path)
        expect(page.locator(ready).first).to_be_visible()
        screenshot(page, name)
    # The overview drew its chart (uPlot) from the vendored script.
    page.goto("/dashboard/")
    expect(page.locator("#throughput-chart canvas").first).to_be_attached()
    assert outside.urls == [], f"pages requested outside the app's origin: {outside.urls}"


def test_a_long_jobs_progress_moves_live_and_cancel_stops_it(
    context: tuple[Any, Outside], signed_in: Any, rest: httpx.Client, tmp_path: Path
) -> None:
    _ctx, outside = context
    page = signed_in
    # 30 s of steps: far longer than the test needs to see it move and cancel it.
    job_id = _submit(rest, "tests.steps", count=150, interval=0.2, marker_dir=str(tmp_path))
    page.goto(f"/dashboard/jobs/{job_id}")
    moved = "v => Number(document.querySelector('#job-progress progress').value) > v"
    page.wait_for_function(moved, arg=0)
    first = float(page.eval_on_selector("#job-progress progress", "el => el.value"))
    # No reload: the value grows through the event stream alone.
    page.wait_for_function(moved, arg=first)
    screenshot(page, "job")
    page.click("button:has-text('Cancel')")
    expect(page.locator(".flash")).to_contain_text("Cancel")
    expect(page.locator("#job-state")).to_have_text("cancelled", timeout=20_000)
    assert _state(rest, job_id) == "cancelled"
    done = rest.get(f"/jobs/{job_id}").json()["progress"]["current"]
    assert 0 < done < 150, "cancelled mid-run, with its progress kept"
    assert outside.urls == []


def test_a_failed_job_is_retried_from_its_page(
    signed_in: Any, rest: httpx.Client, tmp_path: Path
) -> None:
    page = signed_in
    job_id = _submit(rest, "tests.fail_once", marker_dir=str(tmp_path))
    wait_for(lambda: _state(rest, job_id) == "failed", timeout=30, what="the job to fail")
    page.goto(f"/dashboard/jobs/{job_id}")
    expect(page.locator("#job-error")).to_contain_text("first attempt fails on purpose")
    page.click("button:has-text('Retry')")
    expect(page.locator("#job-state")).to_have_text("succeeded", timeout=20_000)
    expect(page.locator("#job-result")).to_contain_text("second attempt succeeded")
    assert rest.get(f"/jobs/{job_id}").json()["attempts"] == 2


def test_a_queues_backlog_grows_and_drains_on_the_overview(
    signed_in: Any,
    rest: httpx.Client,
    app: Flask,
    browser_workers: dict[str, WorkerProcess],
    tmp_path: Path,
) -> None:
    page = signed_in
    celery_app = app.extensions["celery"]
    cpu = browser_workers["cpu"].hostname
    waiting = page.locator("tr[data-queue=dataset] .waiting")
    expect(waiting).to_have_text("0")
    celery_app.control.cancel_consumer("dataset", destination=[cpu], reply=True, timeout=5)
    try:
        for _ in range(6):
            _submit(rest, "tests.record", marker_dir=str(tmp_path))
        expect(waiting).to_have_text("6")
        expect(page.locator("tr[data-queue=dataset] td").last).to_contain_text("no worker")
        screenshot(page, "backlog")
    finally:
        celery_app.control.add_consumer("dataset", destination=[cpu], reply=True, timeout=5)
    expect(waiting).to_have_text("0", timeout=30_000)
    wait_for(lambda: len(list(tmp_path.glob("*.ran"))) == 6, timeout=30, what="6 jobs to run")
    expect(page.locator("#workers")).to_contain_text(re.compile("browser-cpu-.*prefork"))
