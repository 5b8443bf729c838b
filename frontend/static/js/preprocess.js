// The browser half of the pixel contract (docs/pixel-contract.md): the MNIST preprocessing recipe.
//
// The reference is api/digit_api/preprocess.py; its module docstring spells out every
// convention, and each function here carries the same name in camelCase so the two files read
// side by side. Both halves must give the very same 784 integers for tests/golden/
// preprocess_vectors.json (frontend/tests/preprocess.test.mjs checks this one).
//
// Exactness: for integer inputs (what a canvas gives) every sum below is an integer under 2**53,
// hence exact in float64 whatever the summation order, and each pixel needs one IEEE division,
// the same one NumPy does. Non-integer inputs are accepted but may differ from NumPy in the last
// bit (NumPy's matmul sums in its own order), which can flip a pixel sitting on an exact .5.
//
// canvasToGray + toMnist is what the API does for a PNG export of the same canvas:
// decode_image composites transparency onto white, converts to Pillow's "L" and inverts when
// the outermost ring is light, which it is for dark strokes on a transparent canvas. canvasToGray
// always inverts because the page always draws dark ink on a transparent (read: white) canvas;
// the two agree unless the strokes cover most of the canvas border.

export const FRAME_SIDE = 28;
export const BOX_SIDE = 20;
export const INK_THRESHOLD = 16;

// Round half to even, like np.rint: Math.round sends every .5 up, which would bias the pixels
// against the Python half on exact ties (e.g. 127.5 from averaging 255 and 0).
export function roundHalfEven(x) {
  const floor = Math.floor(x);
  const diff = x - floor; // exact: the fractional part of a double is always representable
  if (diff < 0.5) return floor;
  if (diff > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

// (r0, r1, c0, c1), inclusive, of the pixels strictly above `threshold`; null when there is none.
export function inkBoundingBox(gray, width, height, threshold = INK_THRESHOLD) {
  let r0 = height;
  let r1 = -1;
  let c0 = width;
  let c1 = -1;
  for (let r = 0; r < height; r++) {
    const row = r * width;
    for (let c = 0; c < width; c++) {
      if (gray[row + c] > threshold) {
        if (r < r0) r0 = r;
        r1 = r;
        if (c < c0) c0 = c;
        if (c > c1) c1 = c;
      }
    }
  }
  return r1 < 0 ? null : [r0, r1, c0, c1];
}

// [th, tw]: the longer side becomes `box`, the shorter keeps the aspect ratio. The integer
// formula floor((2*box*short + long) / (2*long)) rounds ties up, as the Python half does.
export function targetSize(height, width, box = BOX_SIDE) {
  if (height >= width) {
    return [box, Math.max(1, Math.floor((2 * box * width + height) / (2 * height)))];
  }
  return [Math.max(1, Math.floor((2 * box * height + width) / (2 * width))), box];
}

// Integer overlap weights, row-major (target x source), of a box filter; each row sums to
// `source`. Measured in units of 1/target of a source pixel both grids land on integers, which
// keeps the weights, and every sum built from them, exact.
export function areaWeights(source, target) {
  const weights = new Float64Array(target * source);
  for (let j = 0; j < target; j++) {
    for (let i = 0; i < source; i++) {
      const overlap = Math.min((i + 1) * target, (j + 1) * source) - Math.max(i * target, j * source);
      weights[j * source + i] = Math.max(overlap, 0);
    }
  }
  return weights;
}

// The non-zero span [first, last] of each weight row, so the products skip the zeros; adding a
// zero product would not change any sum, so skipping them keeps the result identical.
function nonZeroSpans(weights, source, target) {
  const spans = [];
  for (let j = 0; j < target; j++) {
    let first = -1;
    let last = -1;
    for (let i = 0; i < source; i++) {
      if (weights[j * source + i] !== 0) {
        if (first < 0) first = i;
        last = i;
      }
    }
    spans.push([first, last]);
  }
  return spans;
}

// The unnormalised area average P = Wy @ crop @ Wx.T (row-major, height x width), in the same
// order as NumPy (rows first); divide by cropHeight * cropWidth for pixel values.
export function areaResample(crop, cropHeight, cropWidth, height, width) {
  const wy = areaWeights(cropHeight, height);
  const wx = areaWeights(cropWidth, width);
  const ySpans = nonZeroSpans(wy, cropHeight, height);
  const xSpans = nonZeroSpans(wx, cropWidth, width);
  const rows = new Float64Array(height * cropWidth);
  for (let j = 0; j < height; j++) {
    const [first, last] = ySpans[j];
    for (let i = first; i <= last; i++) {
      const weight = wy[j * cropHeight + i];
      const src = i * cropWidth;
      const dst = j * cropWidth;
      for (let c = 0; c < cropWidth; c++) rows[dst + c] += weight * crop[src + c];
    }
  }
  const patch = new Float64Array(height * width);
  for (let j = 0; j < height; j++) {
    for (let k = 0; k < width; k++) {
      const [first, last] = xSpans[k];
      let sum = 0;
      for (let c = first; c <= last; c++) sum += rows[j * cropWidth + c] * wx[k * cropWidth + c];
      patch[j * width + k] = sum;
    }
  }
  return patch;
}

// [comY, comX] of the patch, pixel centres at index + 0.5.
export function centreOfMass(patch, height, width) {
  let total = 0;
  let sumY = 0;
  let sumX = 0;
  // (2j + 1) / 2 instead of j + 0.5 keeps the weighted sums integral, hence exact.
  for (let j = 0; j < height; j++) {
    for (let k = 0; k < width; k++) {
      const v = patch[j * width + k];
      total += v;
      sumY += v * (2 * j + 1);
      sumX += v * (2 * k + 1);
    }
  }
  return [sumY / (2 * total), sumX / (2 * total)];
}

// [top, left] that brings the centre of mass nearest the frame's centre, patch kept inside.
export function placement(patch, height, width, frame = FRAME_SIDE) {
  const [comY, comX] = centreOfMass(patch, height, width);
  const centre = frame / 2;
  const offsetY = Math.floor(centre - comY + 0.5);
  const offsetX = Math.floor(centre - comX + 0.5);
  return [Math.min(Math.max(offsetY, 0), frame - height), Math.min(Math.max(offsetX, 0), frame - width)];
}

// A MNIST-polarity image (0 = background, 255 = ink), row-major, as the 784 whole numbers 0..255
// the model reads, or null when nothing is above the ink threshold (an empty drawing is not
// sent). A plain Array so that JSON.stringify gives a JSON list.
export function toMnist(gray, width, height) {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new RangeError(`width and height must be non-negative integers, got ${width} x ${height}`);
  }
  if (!gray || gray.length !== width * height) {
    throw new RangeError(`expected ${width} x ${height} = ${width * height} values, got ${gray ? gray.length : gray}`);
  }
  const image = new Float64Array(width * height);
  for (let p = 0; p < image.length; p++) {
    const v = Number(gray[p]);
    if (!Number.isFinite(v)) throw new RangeError("the image contains values that are not finite numbers");
    image[p] = Math.min(Math.max(v, 0), 255);
  }
  const box = inkBoundingBox(image, width, height);
  if (box === null) return null;
  const [r0, r1, c0, c1] = box;
  const cropHeight = r1 - r0 + 1;
  const cropWidth = c1 - c0 + 1;
  const crop = new Float64Array(cropHeight * cropWidth);
  for (let r = 0; r < cropHeight; r++) {
    crop.set(image.subarray((r0 + r) * width + c0, (r0 + r) * width + c1 + 1), r * cropWidth);
  }
  const [th, tw] = targetSize(cropHeight, cropWidth);
  const patch = areaResample(crop, cropHeight, cropWidth, th, tw);
  const [top, left] = placement(patch, th, tw);
  const area = cropHeight * cropWidth;
  const out = new Array(FRAME_SIDE * FRAME_SIDE).fill(0);
  for (let j = 0; j < th; j++) {
    for (let k = 0; k < tw; k++) {
      const v = roundHalfEven(patch[j * tw + k] / area);
      out[(top + j) * FRAME_SIDE + left + k] = Math.min(Math.max(v, 0), 255);
    }
  }
  return out;
}

// Pillow's Image.alpha_composite of one channel over opaque white, bit for bit
// (libImaging/AlphaComposite.c: 7 extra bits of precision, division by 255 done with shifts).
// With an opaque white backdrop its coef1 reduces to alpha * 128.
function compositeOnWhite(channel, alpha) {
  if (alpha === 0) return 255;
  const tmp = channel * alpha * 128 + 255 * (255 - alpha) * 128 + (0x80 << 7);
  return (((tmp >> 8) + tmp) >> 8) >> 7;
}

// A canvas ImageData (or any {data: RGBA bytes, width, height}) as MNIST-polarity gray: a
// Uint8ClampedArray of width*height values, 0 = background, 255 = ink.
//
// Composited onto white, then Pillow's mode "L" luma (ITU-R 601-2): Pillow does not compute
// R*299/1000 + G*587/1000 + B*114/1000 literally but in 16-bit fixed point rounded to nearest,
// (R*19595 + G*38470 + B*7471 + 0x8000) >> 16 (the L24 macro of libImaging/Convert.c), which
// is what this uses. Then inverted (255 - L) so ink is high.
export function canvasToGray(imageData) {
  const { data, width, height } = imageData;
  if (!data || data.length !== width * height * 4) {
    throw new RangeError(`expected ${width} x ${height} RGBA pixels, got ${data ? data.length : data} bytes`);
  }
  const gray = new Uint8ClampedArray(width * height);
  for (let p = 0, q = 0; p < gray.length; p++, q += 4) {
    const a = data[q + 3];
    const r = compositeOnWhite(data[q], a);
    const g = compositeOnWhite(data[q + 1], a);
    const b = compositeOnWhite(data[q + 2], a);
    gray[p] = 255 - ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16);
  }
  return gray;
}

// The 784 ints to send for a canvas, or null when the drawing is empty.
export function canvasToPixels(imageData) {
  return toMnist(canvasToGray(imageData), imageData.width, imageData.height);
}
