"""Turn an uploaded PNG/JPEG, or any grayscale array, into the 784 MNIST pixels the model reads.

This is the Python half of the pixel contract (docs/pixel-contract.md); the browser's canvas code is the
JavaScript half, and both are checked against `tests/golden/preprocess_vectors.json`. The
JavaScript mirror must follow these conventions to the letter, so they are spelled out here.

`to_mnist(gray)`, input a 2-D array in MNIST polarity (0 = background, 255 = full ink):

1. Clip the input to 0..255.
2. Bounding box (`ink_bounding_box`): the smallest rectangle holding every pixel strictly
   greater than `INK_THRESHOLD` (16). Rows r0..r1 and columns c0..c1, inclusive. No such pixel:
   PreprocessError("the image contains no ink"). The crop keeps every value inside the box,
   faint ones included.
3. Target size (`target_size`): crop height h, width w. The longer side becomes 20 px, the
   shorter side max(1, floor(20 * short / long + 0.5)), computed in integers as
   (40 * short + long) // (2 * long): ties round UP (JavaScript's Math.round), not to even.
4. Area averaging (`area_weights`, `area_resample`): for a source length n and target length m,
   the integer weight matrix W (m x n) holds the overlap of source pixel i, spanning
   [i*m, (i+1)*m], with target pixel j, spanning [j*n, (j+1)*n]:
   W[j][i] = max(0, min((i+1)*m, (j+1)*n) - max(i*m, j*n)). Each row sums to n.
   The unnormalised patch is P = Wy @ crop @ Wx.T (Wy from h to th, Wx from w to tw). For
   integer inputs every entry of P, and every partial sum, is an integer below 2**53, so it is
   exact in float64 whatever the summation order: that is what makes JavaScript agree with
   NumPy bit for bit. The pixel value is P / (h * w), one IEEE division.
5. Centre of mass (`centre_of_mass`) of P with pixel centres at index + 0.5:
   com_y = sum(P[j][k] * (2j + 1)) / (2 * sum(P)), likewise com_x with k. Both sums are exact
   integers for integer inputs; the only rounding is the one division.
6. Placement (`placement`): offset = floor(14 - com + 0.5) (round half up, Math.round), then
   clamped to 0..28 - size so the whole patch stays inside the frame. The patch's top-left
   corner goes at (offset_y, offset_x) of a 28x28 zero image.
7. Every pixel is rounded half to EVEN (np.rint; JavaScript needs its own helper, Math.round
   rounds half up) and clipped to 0..255. The output is float32 holding whole numbers.

`decode_image(data)` accepts PNG and JPEG only, refuses images larger than `max_side` on either
side before decoding pixels, follows the EXIF orientation, composites transparency onto white,
converts to 8-bit luma (ITU-R 601-2, Pillow's "L"; 16-bit grayscale is scaled by 1/257), and
inverts (255 - v) when the mean of the outermost ring of pixels is above 127, i.e. when the
picture is dark ink on a light background.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = [
    "BOX_SIDE",
    "FRAME_SIDE",
    "INK_THRESHOLD",
    "MAX_SIDE",
    "PreprocessError",
    "area_resample",
    "area_weights",
    "centre_of_mass",
    "decode_image",
    "image_to_pixels",
    "ink_bounding_box",
    "placement",
    "target_size",
    "to_mnist",
]

FRAME_SIDE = 28
BOX_SIDE = 20
# Strictly above this counts as ink. Low enough to keep the faint anti-aliased rim of a stroke,
# high enough that JPEG ringing and scanner noise in the background do not stretch the box.
INK_THRESHOLD = 16
MAX_SIDE = 4096
# A ring of light pixels means dark ink on paper (or on a transparent canvas composited onto white).
LIGHT_BACKGROUND_MEAN = 127
ACCEPTED_FORMATS = ("PNG", "JPEG")
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")


class PreprocessError(ValueError):
    """The image cannot be turned into MNIST pixels; the message is shown to API clients as is."""


def ink_bounding_box(gray: np.ndarray, threshold: float = INK_THRESHOLD) -> tuple[int, int, int, int]:
    """(r0, r1, c0, c1), inclusive, of the pixels strictly above `threshold`."""
    ink = gray > threshold
    rows = np.flatnonzero(ink.any(axis=1))
    if rows.size == 0:
        raise PreprocessError("the image contains no ink")
    cols = np.flatnonzero(ink.any(axis=0))
    return int(rows[0]), int(rows[-1]), int(cols[0]), int(cols[-1])


def target_size(height: int, width: int, box: int = BOX_SIDE) -> tuple[int, int]:
    """(th, tw): the longer side becomes `box`, the shorter one keeps the aspect ratio (ties round up)."""
    if height >= width:
        return box, max(1, (2 * box * width + height) // (2 * height))
    return max(1, (2 * box * height + width) // (2 * width)), box


def area_weights(source: int, target: int) -> np.ndarray:
    """Integer overlap weights (target x source) of a box filter; each row sums to `source`."""
    i = np.arange(source)
    j = np.arange(target)[:, None]
    # Measured in units of 1/target of a source pixel, both grids land on integers, so the
    # weights (and every sum built from them) stay exact.
    overlap = np.minimum((i + 1) * target, (j + 1) * source) - np.maximum(i * target, j * source)
    weights: np.ndarray = np.maximum(overlap, 0).astype(np.float64)
    return weights


def area_resample(crop: np.ndarray, height: int, width: int) -> np.ndarray:
    """The unnormalised area average P = Wy @ crop @ Wx.T; divide by crop.size for pixel values."""
    wy = area_weights(crop.shape[0], height)
    wx = area_weights(crop.shape[1], width)
    resampled: np.ndarray = wy @ crop.astype(np.float64) @ wx.T
    return resampled


def centre_of_mass(patch: np.ndarray) -> tuple[float, float]:
    """(y, x) of the patch's centre of mass, pixel centres at index + 0.5."""
    total = patch.sum()
    rows, cols = patch.sum(axis=1), patch.sum(axis=0)
    # (2j + 1) / 2 instead of j + 0.5 keeps the weighted sums integral, hence exact.
    com_y = float(rows @ (2 * np.arange(patch.shape[0]) + 1)) / float(2 * total)
    com_x = float(cols @ (2 * np.arange(patch.shape[1]) + 1)) / float(2 * total)
    return com_y, com_x


def placement(patch: np.ndarray, frame: int = FRAME_SIDE) -> tuple[int, int]:
    """Top-left (row, column) that brings the centre of mass nearest the frame's centre, patch kept inside."""
    com_y, com_x = centre_of_mass(patch)
    centre = frame / 2
    offset_y = math.floor(centre - com_y + 0.5)
    offset_x = math.floor(centre - com_x + 0.5)
    return (
        min(max(offset_y, 0), frame - patch.shape[0]),
        min(max(offset_x, 0), frame - patch.shape[1]),
    )


def to_mnist(gray: np.ndarray) -> np.ndarray:
    """A 2-D MNIST-polarity image of any size, as a (28, 28) float32 array of whole numbers 0..255."""
    image = np.asarray(gray)
    if image.ndim != 2 or image.size == 0:
        raise PreprocessError(f"expected a non-empty 2-D grayscale image, got an array of shape {image.shape}")
    image = image.astype(np.float64)
    if not np.isfinite(image).all():
        raise PreprocessError("the image contains values that are not finite numbers")
    image = np.clip(image, 0, 255)
    r0, r1, c0, c1 = ink_bounding_box(image)
    crop = image[r0 : r1 + 1, c0 : c1 + 1]
    th, tw = target_size(*crop.shape)
    patch = area_resample(crop, th, tw)
    top, left = placement(patch)
    out = np.zeros((FRAME_SIDE, FRAME_SIDE), dtype=np.float64)
    out[top : top + th, left : left + tw] = patch / crop.size
    return np.clip(np.rint(out), 0, 255).astype(np.float32)


def _border_mean(gray: np.ndarray) -> float:
    ring = np.ones(gray.shape, dtype=bool)
    ring[1:-1, 1:-1] = False
    return float(gray[ring].mean())


def _to_luma(img: Image.Image) -> np.ndarray:
    """8-bit-range grayscale as float, transparency composited onto white."""
    if img.mode in _SIXTEEN_BIT_MODES:
        # Pillow's "L" conversion clips 16-bit values instead of scaling them.
        raw = np.asarray(img).astype(np.float64)
        gray = np.clip(np.rint(raw / 257), 0, 255)
        transparent = img.info.get("transparency")
        if isinstance(transparent, int):
            gray[raw == transparent] = 255
        return gray
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        # A canvas export is often black strokes on transparent black: without compositing the
        # whole picture would read as black.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.asarray(img.convert("L"), dtype=np.float64)


def _claimed_format(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if data.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    return None


def decode_image(data: bytes, max_side: int = MAX_SIDE) -> np.ndarray:
    """A PNG or JPEG file's bytes as a 2-D float32 grayscale array in MNIST polarity (ink high)."""
    if not data:
        raise PreprocessError("the image file is empty")
    try:
        img = Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS))
    except UnidentifiedImageError:
        kind = _claimed_format(data)
        if kind:
            # Pillow says "unidentified" for a PNG/JPEG whose header it rejects (zero size, bad chunk).
            raise PreprocessError(f"the file starts like a {kind} image but its header is damaged") from None
        raise PreprocessError("not a PNG or JPEG image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreprocessError(f"the image has too many pixels to decode, the limit is {max_side}x{max_side}") from None
    except (OSError, ValueError, SyntaxError, TypeError, EOFError) as exc:
        raise PreprocessError(f"the image file is damaged and cannot be read ({exc})") from None
    with img:
        width, height = img.size
        if width <= 0 or height <= 0:
            raise PreprocessError(f"image is {width}x{height} pixels, it must be at least 1x1")
        if width > max_side or height > max_side:
            raise PreprocessError(f"image is {width}x{height} pixels, the limit is {max_side}x{max_side}")
        try:
            img.load()
            # Phone photos store "rotate me" in EXIF rather than in the pixels.
            upright = ImageOps.exif_transpose(img)
            gray = _to_luma(upright)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PreprocessError(
                f"the image has too many pixels to decode, the limit is {max_side}x{max_side}"
            ) from None
        except (OSError, ValueError, SyntaxError, TypeError, EOFError, KeyError, IndexError) as exc:
            # Pillow reports truncated or corrupt data with any of these, depending on the codec.
            raise PreprocessError(f"the image file is damaged and cannot be decoded ({exc})") from None
    if gray.ndim != 2 or gray.size == 0:
        raise PreprocessError("the image has no pixels")
    if _border_mean(gray) > LIGHT_BACKGROUND_MEAN:
        gray = 255 - gray
    return gray.astype(np.float32)


def image_to_pixels(data: bytes, max_side: int = MAX_SIDE) -> np.ndarray:
    """A PNG or JPEG file as the model's input: 784 float32 pixels, row-major, 0..255, MNIST polarity."""
    return to_mnist(decode_image(data, max_side=max_side)).reshape(FRAME_SIDE * FRAME_SIDE)
