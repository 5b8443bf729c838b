"""Image preprocessing: the MNIST recipe, its golden vectors, and the decoding of uploads.

The golden vectors in tests/golden/preprocess_vectors.json are what the browser's JavaScript
must reproduce exactly. After a deliberate change to the recipe, regenerate them with
`make golden` (digit_testing.golden).
"""

from __future__ import annotations

import io
import json
import struct
import warnings
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from digit_api.preprocess import (
    INK_THRESHOLD,
    PreprocessError,
    area_resample,
    decode_image,
    image_to_pixels,
    ink_bounding_box,
    placement,
    target_size,
    to_mnist,
)
from digit_release.model import LiteRTModel
from digit_testing import golden as golden_vectors
from digit_testing.releases import SHIPPED, held_out

UPSCALED_ACCURACY = 0.97
ROUND_TRIP_DIGITS = 500


@pytest.fixture(scope="module")
def golden() -> dict[str, Any]:
    return json.loads(golden_vectors.GOLDEN_PATH.read_text(encoding="utf-8"))


def test_golden_file_is_what_the_generator_and_to_mnist_produce(golden: dict[str, Any]) -> None:
    assert golden == golden_vectors.build_document()


@pytest.mark.parametrize("case", golden_vectors.build_cases(), ids=lambda case: case["name"])
def test_golden_case_matches_to_mnist_exactly(golden: dict[str, Any], case: dict[str, Any]) -> None:
    stored = {c["name"]: c for c in golden["cases"]}[case["name"]]
    assert (stored["width"], stored["height"]) == (case["width"], case["height"])
    assert len(stored["input"]) == stored["width"] * stored["height"]
    assert len(stored["expected"]) == 784
    image = np.array(stored["input"], dtype=np.int64).reshape(stored["height"], stored["width"])
    np.testing.assert_array_equal(image, case["input"])
    np.testing.assert_array_equal(to_mnist(image).reshape(-1), np.array(stored["expected"]))


def test_golden_cases_cover_the_conventions_a_port_gets_wrong(golden: dict[str, Any]) -> None:
    """The vectors exercise the tie rules and the clamping, so a port that differs cannot pass."""
    cases = {c["name"]: np.array(c["expected"]).reshape(28, 28) for c in golden["cases"]}
    r0, r1, _, _ = ink_bounding_box(cases["horizontal_bar_tie"])
    assert r1 - r0 + 1 == 3  # round half up, not Python's round(2.5) == 2
    values = set(np.unique(cases["half_way_ties"]).tolist())
    assert {126, 128} <= values and not {127} & values  # pixels round half to even
    r0, _, _, _ = ink_bounding_box(cases["top_heavy_clamped"])
    assert r0 == 8  # clamped: the centre of mass alone would push the patch off the bottom
    assert len(golden["cases"]) >= 8


# --- the recipe --------------------------------------------------------------------------------


def _com(image: np.ndarray) -> tuple[float, float]:
    rows, cols = np.arange(image.shape[0]) + 0.5, np.arange(image.shape[1]) + 0.5
    total = image.sum()
    return float(image.sum(axis=1) @ rows / total), float(image.sum(axis=0) @ cols / total)


def _box_size(image: np.ndarray, threshold: float = 0) -> tuple[int, int]:
    r0, r1, c0, c1 = ink_bounding_box(image, threshold)
    return r1 - r0 + 1, c1 - c0 + 1


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [(1, 1, (20, 20)), (50, 3, (20, 1)), (3, 50, (1, 20)), (200, 120, (20, 12)), (37, 91, (8, 20)), (7, 7, (20, 20))],
)
def test_crisp_rectangle_fills_a_box_whose_longer_side_is_20(height: int, width: int, expected: tuple) -> None:
    canvas = np.zeros((height + 13, width + 29))
    canvas[5 : 5 + height, 11 : 11 + width] = 255
    out = to_mnist(canvas)
    assert _box_size(out) == expected
    r0, r1, c0, c1 = ink_bounding_box(out, 0)
    assert (out[r0 : r1 + 1, c0 : c1 + 1] == 255).all()
    assert out.sum() == 255 * expected[0] * expected[1]


def test_output_is_28x28_float32_whole_numbers_in_range() -> None:
    rng = np.random.default_rng(3)
    image = rng.uniform(0, 255, size=(61, 47))
    out = to_mnist(image)
    assert out.shape == (28, 28) and out.dtype == np.float32
    assert (out == np.rint(out)).all() and out.min() >= 0 and out.max() <= 255


def test_anti_aliased_shape_keeps_its_grey_rim_and_a_longer_side_near_20() -> None:
    disc = golden_vectors.coverage(120, 90, lambda y, x: ((y - 60) / 50) ** 2 + ((x - 45) / 25) ** 2 <= 1)
    out = to_mnist(disc)
    height, width = _box_size(out)
    assert height in (19, 20) and width in (10, 11)
    grey = (out > 0) & (out < 255)
    assert grey.sum() >= 20  # the edge is still soft, not thresholded to black and white


def test_aspect_ratio_of_a_two_to_one_bar_is_kept() -> None:
    canvas = np.zeros((100, 200))
    canvas[30:70, 20:100] = 255  # 80 wide, 40 tall
    assert _box_size(to_mnist(canvas)) == (10, 20)
    tall = canvas.T.copy()
    assert _box_size(to_mnist(tall)) == (20, 10)
    soft = golden_vectors.coverage(60, 140, lambda y, x: ((y - 30) / 12.4) ** 2 + ((x - 70) / 24.8) ** 2 <= 1)
    height, width = _box_size(to_mnist(soft), INK_THRESHOLD)
    assert width == 20 and abs(width / height - 2) <= 0.25


def test_centre_of_mass_lands_within_half_a_pixel_of_the_centre() -> None:
    images, _ = held_out()
    checked = 0
    for digit in images[:200]:
        big = golden_vectors.upscale(digit)
        r0, r1, c0, c1 = ink_bounding_box(big)
        crop = big[r0 : r1 + 1, c0 : c1 + 1].astype(np.float64)
        patch = area_resample(crop, *target_size(*crop.shape))
        com_y, com_x = _com(patch)
        unclamped = (np.floor(14 - com_y + 0.5), np.floor(14 - com_x + 0.5))
        if placement(patch) != unclamped:
            continue
        out_y, out_x = _com(to_mnist(big))
        # Half a pixel from the integer offset, plus a hair for the rounding of each pixel value.
        assert abs(out_y - 14) <= 0.5 + 1e-3 and abs(out_x - 14) <= 0.5 + 1e-3
        checked += 1
    assert checked >= 190


def test_an_l_shape_is_centred_by_its_mass_not_by_its_box() -> None:
    shape = np.zeros((40, 40))
    shape[5:35, 5:10] = 255
    shape[30:35, 5:35] = 255
    out = to_mnist(shape)
    com_y, com_x = _com(out)
    assert abs(com_y - 14) <= 0.5 and abs(com_x - 14) <= 0.5
    r0, r1, c0, c1 = ink_bounding_box(out, 0)
    assert (r0 + r1 + 1) / 2 < 14 and (c0 + c1 + 1) / 2 > 14  # the box itself sits off-centre


def test_patch_is_clamped_inside_the_frame_when_its_mass_is_lopsided() -> None:
    top_heavy = np.zeros((60, 60))
    top_heavy[0:20, 0:60] = 255
    top_heavy[20:60, 29:31] = 255
    out = to_mnist(top_heavy)
    assert _box_size(out) == (20, 20)
    r0, r1, _, _ = ink_bounding_box(out, 0)
    assert (r0, r1) == (8, 27)


def test_position_in_the_canvas_does_not_matter() -> None:
    digit = golden_vectors.upscale(held_out()[0][0], 4)
    a, b = np.zeros((300, 300)), np.zeros((200, 500))
    a[3 : 3 + 112, 170 : 170 + 112] = digit
    b[80 : 80 + 112, 7 : 7 + 112] = digit
    np.testing.assert_array_equal(to_mnist(a), to_mnist(b))


def test_integer_and_float_inputs_give_identical_results() -> None:
    digit = golden_vectors.upscale(held_out()[0][3], 7)
    reference = to_mnist(digit.astype(np.uint8))
    np.testing.assert_array_equal(to_mnist(digit.astype(np.float32)), reference)
    np.testing.assert_array_equal(to_mnist(digit.astype(np.float64)), reference)


@pytest.fixture(scope="module")
def shipped_model() -> LiteRTModel:
    return LiteRTModel.load(SHIPPED)


def test_upscaled_held_out_digits_are_still_recognised(shipped_model: LiteRTModel) -> None:
    """The first 500 held-out digits, drawn 10x larger and brought back by the recipe."""
    images, labels = held_out()
    images, labels = images[:ROUND_TRIP_DIGITS], labels[:ROUND_TRIP_DIGITS]
    pixels = np.stack([to_mnist(golden_vectors.upscale(digit)).reshape(784) for digit in images])
    accuracy = float((shipped_model.predict(pixels).argmax(axis=1) == labels).mean())
    assert accuracy >= UPSCALED_ACCURACY, f"accuracy {accuracy:.3f} on {len(labels)} upscaled digits"


def test_empty_or_faint_image_has_no_ink() -> None:
    with pytest.raises(PreprocessError, match="the image contains no ink"):
        to_mnist(np.zeros((50, 50)))
    with pytest.raises(PreprocessError, match="the image contains no ink"):
        to_mnist(np.full((50, 50), INK_THRESHOLD))


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((0, 5)), "non-empty 2-D"),
        (np.ones(784), "non-empty 2-D"),
        (np.ones((2, 28, 28)), "non-empty 2-D"),
        (np.array([[np.nan, 255.0]]), "not finite"),
    ],
)
def test_malformed_arrays_are_refused(array: np.ndarray, message: str) -> None:
    with pytest.raises(PreprocessError, match=message):
        to_mnist(array)


# --- decoding uploads --------------------------------------------------------------------------


def _encode(image: Image.Image, fmt: str = "PNG", **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _strokes(mode: str, background: Any, ink: Any, size: tuple[int, int] = (100, 80)) -> Image.Image:
    if mode == "P":
        return _strokes("RGB", background, ink, size).convert("P")
    image = Image.new(mode, size, background)
    draw = ImageDraw.Draw(image)
    draw.line([(50, 10), (50, 70)], fill=ink, width=8)
    draw.line([(30, 20), (50, 10)], fill=ink, width=8)
    return image


STROKE_PIXEL = (40, 50)  # (row, column) in the middle of the vertical stroke
BACKGROUND_PIXEL = (70, 10)


def _assert_mnist_polarity(gray: np.ndarray, ink_at_least: float = 250, background_at_most: float = 0) -> None:
    assert gray.dtype == np.float32 and gray.shape == (80, 100)
    assert gray[STROKE_PIXEL] >= ink_at_least
    assert gray[BACKGROUND_PIXEL] <= background_at_most
    assert float(np.median(gray)) <= background_at_most


def test_dark_strokes_on_white_are_inverted_to_ink() -> None:
    gray = decode_image(_encode(_strokes("RGB", "white", "black")))
    _assert_mnist_polarity(gray)
    assert set(np.unique(gray).tolist()) == {0.0, 255.0}


def test_strokes_on_a_transparent_canvas_come_out_as_ink() -> None:
    """A canvas export: transparent black background, opaque black strokes, one half-covered pixel."""
    image = _strokes("RGBA", (0, 0, 0, 0), (0, 0, 0, 255))
    image.putpixel((5, 5), (0, 0, 0, 128))
    gray = decode_image(_encode(image))
    _assert_mnist_polarity(gray)
    assert 120 <= gray[5, 5] <= 136
    opaque = decode_image(_encode(_strokes("RGB", "white", "black")))
    mask = np.ones_like(gray, dtype=bool)
    mask[5, 5] = False
    np.testing.assert_array_equal(gray[mask], opaque[mask])


def test_white_strokes_on_black_are_kept_as_they_are() -> None:
    image = _strokes("L", 0, 255)
    gray = decode_image(_encode(image))
    _assert_mnist_polarity(gray)
    np.testing.assert_array_equal(gray, np.asarray(image, dtype=np.float32))


def test_jpeg_of_dark_strokes_comes_out_as_ink() -> None:
    gray = decode_image(_encode(_strokes("RGB", "white", (20, 20, 20)), "JPEG", quality=85))
    _assert_mnist_polarity(gray, ink_at_least=220, background_at_most=INK_THRESHOLD)


@pytest.mark.parametrize(
    ("mode", "background", "ink", "fmt"),
    [
        ("L", 255, 0, "JPEG"),
        ("CMYK", (0, 0, 0, 0), (0, 0, 0, 255), "JPEG"),
        ("P", "white", "black", "PNG"),
        ("1", 1, 0, "PNG"),
        ("LA", (0, 0), (0, 255), "PNG"),
        ("I;16", 65535, 0, "PNG"),
        ("I;16", 0, 65535, "PNG"),
    ],
)
def test_other_pixel_formats_decode_to_mnist_polarity(mode: str, background: Any, ink: Any, fmt: str) -> None:
    lossy = fmt == "JPEG"
    gray = decode_image(_encode(_strokes(mode, background, ink), fmt))
    _assert_mnist_polarity(gray, ink_at_least=220 if lossy else 255, background_at_most=INK_THRESHOLD if lossy else 0)


@pytest.mark.parametrize(
    ("paper", "ink", "inverted"), [(200, 40, True), (140, 0, True), (110, 250, False), (60, 230, False)]
)
def test_polarity_follows_the_brightness_of_the_border(paper: int, ink: int, inverted: bool) -> None:
    """Grey paper in a photo is still paper: only a border darker than mid-grey means light ink."""
    gray = decode_image(_encode(_strokes("L", paper, ink)))
    expected = (255 - paper, 255 - ink) if inverted else (paper, ink)
    assert (gray[BACKGROUND_PIXEL], gray[STROKE_PIXEL]) == expected


def test_bold_ink_covering_most_of_the_page_is_still_ink() -> None:
    page = Image.new("L", (60, 60), 255)
    ImageDraw.Draw(page).rectangle((3, 3, 56, 56), fill=0)  # the mean of the whole image is dark
    gray = decode_image(_encode(page))
    assert gray[0, 0] == 0 and gray[30, 30] == 255


def test_sixteen_bit_grey_levels_are_scaled_not_clipped() -> None:
    gray = decode_image(_encode(_strokes("I;16", 200 * 257, 40 * 257)))
    assert (gray[BACKGROUND_PIXEL], gray[STROKE_PIXEL]) == (55, 215)


def test_tiny_images_decode() -> None:
    assert decode_image(_encode(Image.new("L", (1, 1), 0))).tolist() == [[0.0]]
    assert decode_image(_encode(Image.new("L", (1, 1), 255))).tolist() == [[0.0]]
    assert decode_image(_encode(Image.new("RGB", (2, 1), "white"))).shape == (1, 2)


def test_jpeg_exif_orientation_is_applied() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways, to be shown rotated 90 degrees clockwise
    stored = Image.new("L", (60, 30), 255)
    data = _encode(stored, "JPEG", exif=exif.tobytes())
    assert decode_image(data).shape == (60, 30)


def test_png_of_a_digit_on_paper_gives_the_same_pixels_as_the_array() -> None:
    digit = golden_vectors.upscale(held_out()[0][5], 6)
    paper = Image.fromarray((255 - digit).astype(np.uint8), "L")
    pixels = image_to_pixels(_encode(paper))
    assert pixels.shape == (784,) and pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, to_mnist(digit).reshape(784))


def test_jpeg_photos_of_digits_are_recognised(shipped_model: LiteRTModel) -> None:
    images, labels = held_out()
    uploads = [
        _encode(
            Image.fromarray((255 - golden_vectors.upscale(d, 8)).astype(np.uint8), "L").convert("RGB"),
            "JPEG",
            quality=80,
        )
        for d in images[:50]
    ]
    predicted = shipped_model.predict(np.stack([image_to_pixels(u) for u in uploads])).argmax(axis=1)
    assert (predicted == labels[:50]).mean() >= 0.96


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares any size in its header, without the pixels to go with it."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0\0")) + chunk(b"IEND", b"")


def _valid_png() -> bytes:
    return _encode(_strokes("RGB", "white", "black"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_valid_png()[: len(_valid_png()) // 2], "the image file is damaged"),
        (_valid_png()[:40], "damaged"),
        (_encode(_strokes("RGB", "white", "black"), "GIF"), "not a PNG or JPEG image"),
        (_encode(_strokes("RGB", "white", "black"), "BMP"), "not a PNG or JPEG image"),
        (b"this is plain text, not a picture\n", "not a PNG or JPEG image"),
        (b"", "the image file is empty"),
        (_encode(Image.new("L", (5000, 10), 255)), "image is 5000x10 pixels, the limit is 4096x4096"),
        (_encode(Image.new("L", (10, 4097), 255)), "image is 10x4097 pixels, the limit is 4096x4096"),
        (_png_header_only(0, 10), "starts like a PNG image but its header is damaged"),
        (_png_header_only(30000, 30000), "too many pixels to decode, the limit is 4096x4096"),
    ],
    ids=["truncated", "header-only", "gif", "bmp", "text", "empty", "5000x10", "10x4097", "zero-width", "bomb"],
)
def test_unusable_uploads_raise_a_clear_error(data: bytes, message: str) -> None:
    with pytest.raises(PreprocessError, match=message):
        decode_image(data)


def test_size_limit_is_checked_before_decoding_even_for_a_possible_bomb() -> None:
    data = _png_header_only(10000, 10000)  # over Pillow's warning limit, under its error limit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with pytest.raises(PreprocessError, match="image is 10000x10000 pixels, the limit is 4096x4096"):
            decode_image(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(PreprocessError, match="too many pixels"):
            decode_image(data)
    with pytest.raises(PreprocessError, match="image is 300x20 pixels, the limit is 256x256"):
        decode_image(_encode(Image.new("L", (300, 20))), max_side=256)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_corrupted_files_never_raise_anything_but_preprocess_error(fmt: str) -> None:
    original = _encode(_strokes("RGB", "white", "black"), fmt)
    rng = np.random.default_rng(11)
    for _ in range(300):
        data = bytearray(original)
        if rng.random() < 0.3:
            data = data[: int(rng.integers(1, len(data)))]
        for position in rng.integers(0, len(data), size=int(rng.integers(1, 6))):
            data[position] = int(rng.integers(0, 256))
        try:
            gray = decode_image(bytes(data))
        except PreprocessError as exc:
            assert str(exc)
        else:
            assert gray.ndim == 2 and gray.dtype == np.float32
