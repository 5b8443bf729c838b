"""compose.yaml comes up for real: with Debian's docker-compose 1.29, and with Compose v2 reading the same file.

The images are the session's (built with the repository's Dockerfiles on the stand-in bases,
digit_testing.images). A person draws in Debian's Chromium through the frontend container, gets
the answer and gives a verdict; the stack goes down and up again, and the verdict is still
counted, because the feedback volume outlived the containers.
"""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import expect

from digit_testing.compose import CLIS, project
from digit_testing.images import ProjectImages

from .strokes import DIGITS, draw, wait_for_digit

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("which", CLIS)
def test_compose_up_serves_the_page_and_the_api_behind_it(
    which: str, docker_engine, project_images: ProjectImages, digit_pixels: list[int]
) -> None:
    with project(which, project_images) as stack:
        stack.up()
        assert "<canvas" in httpx.get(f"{stack.url}/").text
        answer = httpx.post(f"{stack.url}/api/predict", json={"pixels": digit_pixels}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert httpx.get(f"{stack.url}/api/metrics").status_code == 404
        # Both services as compose.yaml locks them down, whichever Compose read it.
        for service, user in (("api", "10001:10001"), ("frontend", "101:101")):
            container = stack("ps", "--quiet", service).stdout.strip()
            [config] = docker_engine.inspect(container)
            assert config["Config"]["User"] == user
            assert config["HostConfig"]["ReadonlyRootfs"] is True
            assert config["HostConfig"]["CapDrop"] == ["ALL"]
        assert "127.0.0.1:" in stack("port", "frontend", "8080").stdout  # the page on loopback only


def test_a_verdict_given_on_the_page_outlives_down_and_up(
    browser, docker_engine, project_images: ProjectImages
) -> None:
    with project("1.29", project_images) as stack:
        stack.up()
        context = browser.new_context(viewport={"width": 900, "height": 720})
        try:
            page = context.new_page()
            page.goto(stack.url + "/")
            draw(page, DIGITS[7])
            wait_for_digit(page, 7)
            with page.expect_response("**/api/feedback") as answer:
                page.locator("#confirm").click()
            assert answer.value.status == 201
            expect(page.locator("#thanks")).to_contain_text("Model 1 has heard 1 verdict")

            stack("down", "--timeout", "10")  # the containers go; the named volume stays
            assert stack("ps", "--quiet").stdout.strip() == ""
            stack.up()

            page.goto(stack.url + "/")
            draw(page, DIGITS[1])
            wait_for_digit(page, 1)
            page.locator("#confirm").click()
            expect(page.locator("#thanks")).to_contain_text("Model 1 has heard 2 verdicts: 2 confirmed")
        finally:
            context.close()
