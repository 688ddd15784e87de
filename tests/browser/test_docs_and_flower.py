"""API docs render with the outside network cut off; Flower shows a canary job by name."""

from __future__ import annotations

from typing import Any

import httpx
from playwright.sync_api import expect

from tests.browser.conftest import FLOWER_AUTH
from tests.browser.conftest import Outside
from tests.browser.stack import Served


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
    response = rest.post("/jobs", json={"task": "system.canary", "args": {"token": "flower"}})
    assert response.status_code == 202
    job_id = response.json()["id"]
    ctx = playwright_browser.new_context(
        base_url=flower.origin,
        http_credentials={"username": FLOWER_AUTH[0], "password": FLOWER_AUTH[1]},
    )
    try:
        page = ctx.new_page()
        page.goto(f"/task/{job_id}")
        # Flower learns of the task from its events; reload until it has them all.
        for _ in range(40):
            if "SUCCESS" in page.content():
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(page.locator("body")).to_contain_text("system.canary")
        expect(page.locator("body")).to_contain_text("SUCCESS")
    finally:
        ctx.close()
