"""Digits as pen strokes on the 280x280 canvas, the way a person draws them (one list of points per stroke)."""

from __future__ import annotations

import math

from playwright.sync_api import expect

Stroke = list[tuple[float, float]]


def arc(centre: tuple[float, float], radii: tuple[float, float], start: float, end: float, steps: int = 24) -> Stroke:
    """Points on an ellipse from angle `start` to `end` (degrees, 0 = right, 90 = down, as on screen)."""
    (cx, cy), (rx, ry) = centre, radii
    return [
        (cx + rx * math.cos(math.radians(start + (end - start) * i / steps)),
         cy + ry * math.sin(math.radians(start + (end - start) * i / steps)))
        for i in range(steps + 1)
    ]  # fmt: skip


DIGITS: dict[int, list[Stroke]] = {
    0: [arc((140, 140), (58, 92), -90, 275, 40)],
    1: [[(135, 45), (140, 140), (142, 235)]],
    2: [[*arc((140, 95), (55, 50), 190, 360, 16), (175, 150), (90, 235), (205, 235)]],
    3: [[*arc((135, 90), (50, 45), 200, 450, 20), *arc((135, 185), (58, 50), 270, 500, 20)]],
    4: [[(165, 45), (85, 165), (210, 165)], [(170, 95), (170, 240)]],
    7: [[(80, 55), (200, 55), (120, 240)]],
}


def draw(page, strokes: list[Stroke]) -> None:
    """The strokes drawn with the mouse on the page's canvas, whatever size it is shown at."""
    box = page.locator("#canvas").bounding_box()
    scale = box["width"] / 280
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x * scale, box["y"] + y * scale, steps=3)
        page.mouse.up()


def wait_for_digit(page, digit: int) -> None:
    expect(page.locator("#prediction")).to_have_text(str(digit), timeout=5000)
