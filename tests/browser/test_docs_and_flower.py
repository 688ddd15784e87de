"""API docs render with the outside network cut off; Flower shows a canary job by name."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import FLOWER_AUTH
from tests.browser.conftest import Outside
from tests.browser.stack import Served
from tests.support.waiting import wait_for


def _cut_off_outside(ctx: Any, origin: str) -> list[str]:
    aborted: list[str] = []

    def route(route: Any) -> None:
        if route.request.url.startswith(origin + "/"):
            route.continue_()
        else:
            aborted.append(route.request.url)
            route.abort("internetdisconnected")

    ctx.route("**/*", route)
    return aborted


def test_swagger_ui_and_redoc_render_with_no_internet(
    context: tuple[Any, Outside], server: Served
) -> None:
    ctx, _outside = context
    aborted = _cut_off_outside(ctx, server.origin)
    page = ctx.new_page()
    page.goto("/api/v1/docs")
    operations = page.locator(".opblock-summary-path")
    expect(operations.first).to_be_visible()
    assert operations.count() >= 10
    expect(page.locator("#swagger-ui-container")).to_contain_text("/api/v1/jobs")
    page.goto("/api/v1/redoc")
    expect(page.get_by_text("Submit a job; answers at once").first).to_be_attached()
    assert aborted == [], f"the docs tried to load from outside: {aborted}"


def test_flower_shows_a_canary_submitted_over_rest(
    playwright_browser: Any, flower: Served, rest: httpx.Client
) -> None:
    assert httpx.get(flower.origin + "/", timeout=5).status_code == 401, "basic auth is on"
    ctx = playwright_browser.new_context(
        base_url=flower.origin,
        http_credentials={"username": FLOWER_AUTH[0], "password": FLOWER_AUTH[1]},
    )
    try:
        page = ctx.new_page()

        # Workers send task events once Flower has switched them on (its enable_events
        # broadcast, every 5 s; TASK_EVENTS is off here, as by default): a canary that ran
        # before that is not Flower's to show, so each probe sends a fresh one.
        def fresh_canary_shown() -> bool:
            response = rest.post("/jobs", json={"task": "system.canary", "args": {"token": "f"}})
            assert response.status_code == 202
            page.goto(f"/task/{response.json()['id']}")
            for _ in range(6):
                if "SUCCESS" in page.content():
                    return True
                page.wait_for_timeout(500)
                page.reload()
            return False

        wait_for(
            fresh_canary_shown,
            timeout=60,
            interval=0,
            what="a canary submitted over REST to show SUCCESS in Flower",
        )
        expect(page.locator("body")).to_contain_text("system.canary")
    finally:
        ctx.close()
