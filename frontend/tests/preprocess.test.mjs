// node --test frontend/tests/ : the JavaScript half of the pixel contract against the golden
// vectors that api/tests/test_preprocess.py checks the Python half with.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  areaWeights,
  canvasToGray,
  canvasToPixels,
  centreOfMass,
  inkBoundingBox,
  placement,
  roundHalfEven,
  targetSize,
  toMnist,
} from "../static/js/preprocess.js";

const golden = JSON.parse(readFileSync(new URL("../../tests/golden/preprocess_vectors.json", import.meta.url), "utf8"));

for (const { name, width, height, input, expected } of golden.cases) {
  test(`golden vector ${name}`, () => {
    assert.deepEqual(toMnist(input, width, height), expected);
  });
}

test("golden vectors give the same result from a typed array", () => {
  const { width, height, input, expected } = golden.cases[0];
  assert.deepEqual(toMnist(Uint8ClampedArray.from(input), width, height), expected);
  assert.deepEqual(toMnist(Float64Array.from(input), width, height), expected);
});

test("no ink gives null", () => {
  assert.equal(toMnist(new Float64Array(280 * 280), 280, 280), null);
  // Faint marks at or below the threshold (16) are not ink.
  assert.equal(toMnist(new Array(100).fill(16), 10, 10), null);
  assert.equal(toMnist([], 0, 0), null);
});

test("input is clipped to 0..255 before anything else", () => {
  const { width, height, input, expected } = golden.cases[0];
  const stretched = input.map((v) => (v === 0 ? -40 : v === 255 ? 900 : v));
  assert.deepEqual(toMnist(stretched, width, height), expected);
});

test("malformed input throws rather than sending garbage", () => {
  assert.throws(() => toMnist([1, 2, 3], 2, 2), RangeError);
  assert.throws(() => toMnist([0, NaN, 0, 0], 2, 2), RangeError);
  assert.throws(() => toMnist([0, 0], 2.5, 1), RangeError);
});

// A filled rectangle or ellipse of ink, anti-aliased by 4x4 supersampling, on a larger canvas.
function shape(width, height, inside) {
  const gray = new Float64Array(width * height);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let hits = 0;
      for (let sy = 0; sy < 4; sy++) {
        for (let sx = 0; sx < 4; sx++) if (inside(y + (sy + 0.5) / 4, x + (sx + 0.5) / 4)) hits++;
      }
      gray[y * width + x] = Math.round((hits / 16) * 255);
    }
  }
  return gray;
}

function inkExtent(pixels) {
  const box = inkBoundingBox(pixels, 28, 28, 0);
  return { height: box[1] - box[0] + 1, width: box[3] - box[2] + 1 };
}

const shapes = {
  "tall ellipse off to the side": {
    width: 200,
    height: 160,
    gray: shape(200, 160, (y, x) => ((y - 60) / 50) ** 2 + ((x - 40) / 20) ** 2 <= 1),
    aspect: 40 / 100,
  },
  "wide bar near the bottom": {
    width: 120,
    height: 120,
    gray: shape(120, 120, (y, x) => y >= 90 && y < 105 && x >= 10 && x < 110),
    aspect: 15 / 100,
  },
};

for (const [name, { width: w, height: h, gray, aspect }] of Object.entries(shapes)) {
  test(`properties of the MNIST recipe: ${name}`, () => {
    const pixels = toMnist(gray, w, h);
    assert.equal(pixels.length, 784);
    assert.ok(pixels.every((v) => Number.isInteger(v) && v >= 0 && v <= 255));
    const { height, width } = inkExtent(pixels);
    assert.equal(Math.max(height, width), 20, "the longer side becomes 20 px");
    const short = Math.min(height, width);
    // The rim of the anti-aliased shape can add or drop a pixel at each end of the short side.
    assert.ok(Math.abs(short - 20 * aspect) <= 2, `short side ${short} for aspect ${aspect}`);
    const [comY, comX] = centreOfMass(pixels, 28, 28);
    assert.ok(Math.abs(comY - 14) <= 0.5 && Math.abs(comX - 14) <= 0.5, `centre of mass ${comY}, ${comX}`);
  });
}

test("targetSize keeps the aspect ratio and rounds ties up", () => {
  assert.deepEqual(targetSize(48, 40), [20, 17]);
  assert.deepEqual(targetSize(7, 56), [3, 20]); // 2.5 rounds up, not to even
  assert.deepEqual(targetSize(1, 100), [1, 20]); // never below one pixel
  assert.deepEqual(targetSize(5, 5), [20, 20]);
});

test("areaWeights rows sum to the source length", () => {
  for (const [source, target] of [
    [7, 20],
    [56, 3],
    [280, 20],
    [1, 20],
  ]) {
    const w = areaWeights(source, target);
    for (let j = 0; j < target; j++) {
      let sum = 0;
      for (let i = 0; i < source; i++) sum += w[j * source + i];
      assert.equal(sum, source);
    }
  }
});

test("placement keeps the patch inside the frame", () => {
  const patch = new Float64Array(20 * 20);
  patch.fill(255, 0, 20); // all the mass in the top row pulls the patch down past the edge
  assert.deepEqual(placement(patch, 20, 20), [8, 4]);
});

test("roundHalfEven rounds ties to the even neighbour, like np.rint", () => {
  assert.equal(roundHalfEven(0.5), 0);
  assert.equal(roundHalfEven(1.5), 2);
  assert.equal(roundHalfEven(2.5), 2);
  assert.equal(roundHalfEven(127.5), 128);
  assert.equal(roundHalfEven(128.5), 128);
  assert.equal(roundHalfEven(254.5), 254);
  assert.equal(roundHalfEven(2.4999999999999996), 2);
  assert.equal(roundHalfEven(2.5000000000000004), 3);
  assert.equal(roundHalfEven(3.2), 3);
  assert.equal(roundHalfEven(3.7), 4);
  assert.equal(roundHalfEven(0), 0);
});

function rgba(pixels) {
  return { data: Uint8ClampedArray.from(pixels.flat()), width: pixels.length, height: 1 };
}

test("canvasToGray: opaque black is full ink, transparent is background", () => {
  const gray = canvasToGray(
    rgba([
      [0, 0, 0, 255],
      [0, 0, 0, 0],
      [0, 0, 0, 128],
      [255, 255, 255, 255],
      [0, 0, 0, 64],
      [255, 0, 0, 255],
    ]),
  );
  assert.equal(gray[0], 255);
  assert.equal(gray[1], 0);
  assert.ok(Math.abs(gray[2] - 128) <= 1, `50% black gave ${gray[2]}`);
  assert.equal(gray[3], 0);
  assert.ok(Math.abs(gray[4] - 64) <= 1, `25% black gave ${gray[4]}`);
  // Pure red has luma round(255 * 0.299) = 76 under Pillow's fixed-point weights.
  assert.equal(gray[5], 255 - 76);
});

test("canvasToGray: transparent pixels count as white whatever their colour", () => {
  assert.deepEqual(
    [
      ...canvasToGray(
        rgba([
          [0, 0, 0, 0],
          [255, 0, 255, 0],
        ]),
      ),
    ],
    [0, 0],
  );
});

test("canvasToPixels: an empty canvas gives null, a stroke gives 784 ints", () => {
  const width = 280;
  const height = 280;
  const data = new Uint8ClampedArray(width * height * 4);
  assert.equal(canvasToPixels({ data, width, height }), null);
  for (let y = 60; y < 220; y++) {
    for (let x = 130; x < 150; x++) data[(y * width + x) * 4 + 3] = 255;
  }
  const pixels = canvasToPixels({ data, width, height });
  assert.equal(pixels.length, 784);
  assert.equal(Math.max(...pixels), 255);
  assert.equal(inkExtent(pixels).height, 20);
});
