// Helper of tests/e2e/test_canvas_roundtrip.py: runs the page's canvasToPixels over many canvases
// in one process, because starting node once per digit would make the check take minutes.
//
//   node frontend/tests/roundtrip.mjs <in.bin> <out.bin> <width> <height>
//
// in.bin: N canvases, width*height bytes each, the ink coverage (alpha) of black strokes on a
// transparent canvas, which is what the page's 2-D context holds after drawing with #000.
// out.bin: per canvas, 1 byte (1 = pixels, 0 = null, i.e. no ink) then the 784 pixels as bytes.
import { readFileSync, writeFileSync } from "node:fs";

import { canvasToPixels } from "../static/js/preprocess.js";

const [input, output, widthArg, heightArg] = process.argv.slice(2);
const width = Number(widthArg);
const height = Number(heightArg);
if (!input || !output || !Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
  console.error("usage: node roundtrip.mjs <in.bin> <out.bin> <width> <height>");
  process.exit(2);
}

const alphas = readFileSync(input);
const size = width * height;
if (alphas.length % size !== 0) {
  console.error(`${input}: ${alphas.length} bytes is not a whole number of ${width}x${height} canvases`);
  process.exit(2);
}
const count = alphas.length / size;
const record = 1 + 28 * 28;
const results = new Uint8Array(count * record);
// One RGBA buffer reused for every canvas: RGB stays 0 (black ink), only alpha changes.
const data = new Uint8ClampedArray(size * 4);
for (let n = 0; n < count; n++) {
  const base = n * size;
  for (let p = 0; p < size; p++) data[p * 4 + 3] = alphas[base + p];
  const pixels = canvasToPixels({ data, width, height });
  if (pixels !== null) {
    results[n * record] = 1;
    results.set(pixels, n * record + 1);
  }
}
writeFileSync(output, results);
