"""Chromium (Debian's, driven by Playwright) against the real stack: gunicorn, workers, Redis, DB.

Everything here is package-scoped: it starts when the first browser test runs and is gone
before the next test package starts its own workers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.browser.stack import CHROMIUM
from tests.browser.stack import CHROMIUM_ARGS
from tests.browser.stack import Served
from tests.browser.stack import chromium_missing
from tests.support.workers import WorkerProcess

BROWSER_TASKS = "tests.browser.tasks"
# Set to a folder (docs/) to save a screenshot of each page the tests visit.
SCREENSHOTS = os.environ.get("DASHBOARD_SCREENSHOTS")


@pytest.fixture(scope="package")
def stack_env(worker_env: dict[str, str]) -> dict[str, str]:
    modules = worker_env.get("TASKLANE_EXTRA_TASK_MODULES", "")
    return {
        **worker_env,
        "TASKLANE_EXTRA_TASK_MODULES": ",".join(filter(None, [modules, BROWSER_TASKS])),
        "DASHBOARD_REFRESH_SECONDS": "0.5",
    }


FLOWER_AUTH = ("ops", "flower-test")
STARTUP_TIMEOUT = 240.0


class Stack:
    def __init__(self, workers: dict[str, WorkerProcess], api: Served, flower: Served) -> None:
        self.workers = workers
        self.api = api
        self.flower = flower


@pytest.fixture(scope="package")
def stack(app: Flask, stack_env: dict[str, str], session_tmp: Path) -> Iterator[Stack]:
    """Workers (cpu, io), `./entrypoint.sh api` (gunicorn) and `./entrypoint.sh flower`.

    All are spawned at once and then waited for, since each spends seconds importing.
    """
    celery_app = app.extensions["celery"]
    workers = {
        profile: WorkerProcess.for_profile(
            profile,
            env=stack_env,
            log_dir=session_tmp,
            name=f"browser-{profile}",
            WORKER_CONCURRENCY="4",
        )
        for profile in ("cpu", "io")
    }
    api = Served("api", ["api"], {}, session_tmp)
    api.env = {**stack_env, "API_BIND": f"127.0.0.1:{api.port}", "API_WORKERS": "1"}
    flower = Served("flower", ["flower"], {}, session_tmp)
    flower.env = {
        **stack_env,
        "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH),
        "FLOWER_PORT": str(flower.port),
    }
    try:
        for worker in workers.values():
            worker.spawn()
        api.spawn()
        flower.spawn()
        # Four processes import the app at once; on a busy 2-core machine that takes a while.
        for worker in workers.values():
            worker.wait_ready(celery_app, timeout=STARTUP_TIMEOUT)
        api.wait_ready("/api/v1/health", timeout=STARTUP_TIMEOUT)
        flower.wait_ready("/healthcheck", timeout=STARTUP_TIMEOUT)
        yield Stack(workers, api, flower)
    finally:
        # All at once: each waits for its own graceful shutdown. Flower holds nothing worth
        # one; don't wait long for its event thread.
        stops = [lambda: flower.stop(timeout=3.0), api.stop]
        stops += [worker.stop for worker in workers.values()]
        with ThreadPoolExecutor(max_workers=len(stops)) as pool:
            for stopped in [pool.submit(stop) for stop in stops]:
                stopped.result()


@pytest.fixture(scope="package")
def browser_workers(stack: Stack) -> dict[str, WorkerProcess]:
    return stack.workers


@pytest.fixture(scope="package")
def server(stack: Stack) -> Served:
    return stack.api


@pytest.fixture(scope="package")
def flower(stack: Stack) -> Served:
    return stack.flower


@pytest.fixture(scope="package")
def playwright_browser() -> Iterator[Any]:
    missing = chromium_missing()
    if missing:
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


class Outside:
    """Every request a page made to anything but the app's own origin."""

    def __init__(self, origin: str) -> None:
        self.origin = origin
        self.urls: list[str] = []

    def __call__(self, request: Any) -> None:
        url = request.url
        if not (url.startswith(self.origin + "/") or url.startswith(("data:", "blob:"))):
            self.urls.append(url)


@pytest.fixture
def context(playwright_browser: Any, server: Served) -> Iterator[tuple[Any, Outside]]:
    ctx = playwright_browser.new_context(
        base_url=server.origin, viewport={"width": 1280, "height": 800}
    )
    outside = Outside(server.origin)
    ctx.on("request", outside)
    ctx.set_default_timeout(20_000)
    try:
        yield ctx, outside
    finally:
        ctx.close()


@pytest.fixture
def rest(server: Served, api_token: str) -> Iterator[httpx.Client]:
    """The REST API of the served app, over HTTP."""
    with httpx.Client(
        base_url=server.origin + "/api/v1",
        headers={"Authorization": f"Bearer {api_token}"},
        timeout=10.0,
    ) as client:
        yield client


@pytest.fixture
def signed_in(context: tuple[Any, Outside], api_token: str) -> Any:
    """A new page of the browser context, signed in to the dashboard with the session's key."""
    page = context[0].new_page()
    sign_in(page, api_token)
    return page


def sign_in(page: Any, token: str) -> None:
    page.goto("/dashboard/")
    page.fill("input[name=api_key]", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/dashboard/")


def screenshot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        page.screenshot(path=str(Path(SCREENSHOTS) / f"dashboard-{name}.png"), full_page=True)
