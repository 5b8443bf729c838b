"""The drawing page in Debian's Chromium, driven with Playwright, against the real API.

Digits are drawn with mouse strokes; the tests read what a person reads: the digit, the ten bars,
the model version, the error box. The same tests write the screenshots the README shows.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from .strokes import DIGITS, draw, wait_for_digit

# Under build/ unless REPORT_DIR says otherwise: `make report-images` copies them into report-images/.
REPORT_IMAGES = Path(os.environ.get("REPORT_DIR", Path(__file__).resolve().parents[2] / "build" / "report-images"))


@pytest.fixture
def page(browser, stack):
    # Reduced motion: the bars are drawn at once, so screenshots show them at their final width.
    context = browser.new_context(
        viewport={"width": 900, "height": 720}, device_scale_factor=1, reduced_motion="reduce"
    )
    page = context.new_page()
    page.goto(stack.url + "/")
    expect(page.locator("#model-version")).not_to_have_text("…")
    yield page
    context.close()


@pytest.mark.parametrize("digit", sorted(DIGITS))
def test_drawn_digit_is_recognised(page, digit: int) -> None:
    draw(page, DIGITS[digit])
    wait_for_digit(page, digit)
    bars = page.locator("#bars li")
    assert bars.count() == 10
    best = page.locator("#bars li.best")
    assert best.get_attribute("data-label") == str(digit)
    # The bar a person sees: the winner's fill is drawn across most of its track (once it has grown).
    fill, track = best.locator(".fill").bounding_box(), best.locator(".track").bounding_box()
    assert fill["width"] > 0.5 * track["width"]
    assert "% sure" in page.locator("#probability").inner_text()
    assert page.locator("#model-version").inner_text() == "1"
    assert page.locator("#latency").inner_text().endswith(" ms")
    assert page.locator("#error").is_hidden()


def test_clear_and_undo_with_buttons_and_keys(page) -> None:
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url) if "/api/predict" in request.url else None)
    draw(page, DIGITS[1])
    wait_for_digit(page, 1)
    # A second stroke across the top turns the 1 into something else; undo brings the 1 back.
    draw(page, [[(60, 60), (220, 60)]])
    expect(page.locator("#prediction")).not_to_have_text(re.compile("^(1|)$"), timeout=5000)
    page.locator("#undo").click()
    wait_for_digit(page, 1)
    draw(page, [[(60, 60), (220, 60)]])
    expect(page.locator("#prediction")).not_to_have_text(re.compile("^(1|)$"), timeout=5000)
    page.keyboard.press("Control+z")
    wait_for_digit(page, 1)

    page.locator("#clear").click()
    assert page.locator("#prediction").inner_text() == ""
    assert page.locator("#clear").is_disabled() and page.locator("#undo").is_disabled()
    draw(page, DIGITS[7])
    wait_for_digit(page, 7)
    page.keyboard.press("Escape")
    expect(page.locator("#prediction")).to_have_text("")

    # An empty canvas is never sent: clearing again asks the service nothing.
    sent = len(requests)
    page.locator("#canvas").click(position={"x": 1, "y": 1}, button="right")
    page.keyboard.press("Escape")
    page.wait_for_timeout(400)
    assert len(requests) == sent


def test_prediction_updates_while_drawing(page) -> None:
    """Before the pen is lifted the page has already asked (debounced) and shows an answer."""
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 140, box["y"] + 45)
    page.mouse.down()
    page.mouse.move(box["x"] + 140, box["y"] + 235, steps=12)
    expect(page.locator("#prediction")).to_have_text("1", timeout=5000)
    page.mouse.up()


def test_unreachable_service_is_said(page) -> None:
    page.route("**/api/predict", lambda route: route.abort("connectionrefused"))
    draw(page, DIGITS[7])
    error = page.locator("#error")
    error.wait_for(state="visible")
    assert "cannot be reached" in error.inner_text()
    assert page.locator("#prediction").inner_text() == ""


def test_screenshot_of_a_prediction(page) -> None:
    REPORT_IMAGES.mkdir(parents=True, exist_ok=True)
    draw(page, DIGITS[4])
    wait_for_digit(page, 4)
    page.screenshot(path=REPORT_IMAGES / "page-prediction.png")


def on_screen(page, selector: str, width: int = 375, height: int = 667) -> None:
    """The element is wholly inside the viewport, with the page not scrolled."""
    box = page.locator(selector).bounding_box()
    assert box is not None, f"{selector} is not displayed"
    assert page.evaluate("window.scrollY") == 0
    assert box["x"] >= 0 and box["x"] + box["width"] <= width, f"{selector} sticks out sideways: {box}"
    assert box["y"] >= 0 and box["y"] + box["height"] <= height, f"{selector} runs past the bottom: {box}"


def test_phone_sized_screen(browser, stack) -> None:
    """On a 375x667 phone the canvas, the answer, its bars and every verdict button are on the first
    screen, without scrolling; so is the thanks after a verdict."""
    context = browser.new_context(
        viewport={"width": 375, "height": 667}, device_scale_factor=2, has_touch=True, reduced_motion="reduce"
    )
    page = context.new_page()
    page.goto(stack.url + "/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 375  # no sideways scrolling
    draw(page, DIGITS[0])
    wait_for_digit(page, 0)
    for selector in ("#canvas", "#undo", "#clear", "#prediction", "#probability", "#bars", "#confirm"):
        on_screen(page, selector)
    buttons = page.locator("#correct button")
    assert buttons.count() == 10
    for i in range(10):
        on_screen(page, f"#correct button >> nth={i}")
        assert buttons.nth(i).bounding_box()["height"] >= 44  # a finger's target
    assert page.locator("#bars li.best").get_attribute("data-label") == "0"
    page.locator("#correct button[data-label='6']").tap()
    expect(page.locator("#thanks")).to_contain_text("Noted: it is a 6, not a 0")
    on_screen(page, "#thanks")
    page.screenshot(path=REPORT_IMAGES / "page-phone.png")
    context.close()


def feedback_requests(page) -> list:
    sent: list = []
    page.on("request", lambda request: sent.append(request) if request.url.endswith("/api/feedback") else None)
    return sent


def test_nothing_is_sent_until_the_person_gives_a_verdict(page) -> None:
    sent = feedback_requests(page)
    assert page.locator("#confirm").is_disabled()  # no answer, nothing to judge
    draw(page, DIGITS[7])
    wait_for_digit(page, 7)
    expect(page.locator("#feedback-question")).to_have_text("Is it a 7?")
    page.wait_for_timeout(600)
    assert sent == []
    with page.expect_response("**/api/feedback") as answer:
        page.locator("#confirm").click()
    assert answer.value.status in (200, 201)
    expect(page.locator("#thanks")).to_contain_text("You confirmed the 7")
    expect(page.locator("#thanks")).to_contain_text("Model 1 has heard")
    assert json.loads(sent[0].post_data)["label"] == 7
    # One verdict per drawing: the buttons rest until the next answer.
    assert page.locator("#confirm").is_disabled() and page.locator("#correct button >> nth=3").is_disabled()
    page.keyboard.press("3")
    page.wait_for_timeout(300)
    assert len(sent) == 1
    assert page.locator("#error").is_hidden()


def test_a_correction_by_key_sends_the_answered_pixels(page) -> None:
    """The verdict carries the very pixels the answer was about and that prediction's request id."""
    predictions: list = []
    page.on("response", lambda r: predictions.append(r) if r.url.endswith("/api/predict") else None)
    sent = feedback_requests(page)
    draw(page, DIGITS[4])
    wait_for_digit(page, 4)
    page.wait_for_timeout(300)  # the answer to the pen being lifted is the last one
    last = predictions[-1]
    page.keyboard.press("9")
    expect(page.locator("#thanks")).to_contain_text("Noted: it is a 9, not a 4")
    [request] = sent
    body = json.loads(request.post_data)
    assert body["label"] == 9
    assert body["pixels"] == json.loads(last.request.post_data)["pixels"]
    assert body["request_id"] == last.headers["x-request-id"]
    # Starting another stroke makes the answer on screen stale: no verdict until the next one.
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + 30)
    page.mouse.down()
    assert page.locator("#confirm").is_disabled()
    page.mouse.move(box["x"] + 60, box["y"] + 40, steps=2)
    page.mouse.up()
    expect(page.locator("#confirm")).to_be_enabled(timeout=5000)


def test_a_verdict_the_service_cannot_store_is_said_and_can_be_given_again(own_stack) -> None:
    """The real API with its database down: the drawing is still answered, the verdict gets the
    service's 503 in #error, and the buttons stay usable for another try."""
    page, _ = own_stack(api_env={"DATABASE_URL": "postgresql://digit:pw@127.0.0.1:1/feedback"})
    draw(page, DIGITS[2])
    wait_for_digit(page, 2)
    page.locator("#correct button[data-label='5']").click()
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("feedback cannot be stored right now")
    expect(error).to_contain_text("predictions are not affected")
    assert page.locator("#thanks").is_hidden()
    expect(page.locator("#confirm")).to_be_enabled()
    assert page.locator("#prediction").inner_text() == "2"


@pytest.fixture
def own_stack(browser, tmp_path: Path):
    """A page behind its own nginx and API, for the tests that break or throttle them."""
    from contextlib import ExitStack

    from digit_testing.processes import running_api
    from digit_testing.releases import SHIPPED

    from .stack import nginx_binary, start_nginx, stop

    processes, apis = [], ExitStack()

    def start(api_env: dict[str, str] | None = None, **nginx_options):
        api = apis.enter_context(running_api(SHIPPED, tmp_path, api_env))
        server, proxy = start_nginx(
            nginx_binary(), tmp_path / "nginx", api.url.removeprefix("http://"), **nginx_options
        )
        processes.append(proxy)
        context = browser.new_context(viewport={"width": 900, "height": 720}, reduced_motion="reduce")
        page = context.new_page()
        page.goto(server.url + "/")
        expect(page.locator("#model-version")).to_have_text("1")
        return page, api

    yield start
    for process in processes:
        stop(process)
    apis.close()


def test_api_down_behind_nginx_is_said_and_shown(own_stack) -> None:
    from .stack import stop

    page, api = own_stack()
    draw(page, DIGITS[7])
    wait_for_digit(page, 7)
    stop(api.process)
    page.locator("#clear").click()
    draw(page, DIGITS[3])
    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("not available")
    assert page.locator("#prediction").inner_text() == ""
    page.screenshot(path=REPORT_IMAGES / "page-error.png")


def test_too_many_requests_through_nginx_is_said(own_stack) -> None:
    page, _ = own_stack(rate_limit="1r/s", rate_burst=1)
    box = page.locator("#canvas").bounding_box()
    for i in range(6):  # six quick strokes: each asks at its end, faster than one a second
        x = box["x"] + 60 + 30 * i
        page.mouse.move(x, box["y"] + 60)
        page.mouse.down()
        page.mouse.move(x, box["y"] + 220, steps=2)
        page.mouse.up()
    expect(page.locator("#error")).to_contain_text("Too many requests")


def test_oversized_body_through_nginx_is_413(page, stack) -> None:
    status, body = page.evaluate(
        """async () => {
            const response = await fetch('api/predict', {method: 'POST', headers: {'Content-Type': 'application/json'},
                                                        body: '[' + '0,'.repeat(1600000) + '0]'});
            return [response.status, await response.json()];
        }"""
    )
    assert status == 413
    assert body == {"detail": "request body is larger than the limit of 2097152 bytes"}


def test_api_docs_through_nginx(browser, stack) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.goto(stack.url + "/api/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Digit recognition API", timeout=10_000)
    expect(page.locator(".opblock-summary-path").first).to_be_visible()
    page.screenshot(path=REPORT_IMAGES / "api-docs.png")
    context.close()
