// node --test frontend/tests/ : the verdict half of the page (frontend/static/js/feedback.js) and
// its call to POST /api/feedback (api.js), with fetch stubbed.

import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { ServiceError, sendFeedback } from "../static/js/api.js";
import { digitFromKey, feedbackBody, heardText, thanksText } from "../static/js/feedback.js";

const TEN = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
});

test("digit keys give digits; anything else, modified or repeated keys give nothing", () => {
  assert.equal(digitFromKey({ key: "7" }, TEN), 7);
  assert.equal(digitFromKey({ key: "0" }, TEN), 0);
  for (const event of [
    { key: "a" },
    { key: "Escape" },
    { key: "10" },
    { key: "F7" },
    { key: "7", ctrlKey: true },
    { key: "7", metaKey: true },
    { key: "7", altKey: true },
    { key: "7", repeat: true },
  ]) {
    assert.equal(digitFromKey(event, TEN), null, JSON.stringify(event));
  }
});

test("only digits the model knows are verdicts", () => {
  const three = ["0", "1", "7"];
  assert.equal(digitFromKey({ key: "7" }, three), 7);
  assert.equal(digitFromKey({ key: "5" }, three), null);
});

test("the body holds the pixels, the digit and a well-formed request id only", () => {
  const pixels = Uint8Array.from({ length: 784 }, (_, i) => i % 256);
  const body = feedbackBody(pixels, "7", "abc-123");
  assert.deepEqual(Object.keys(body).sort(), ["label", "pixels", "request_id"]);
  assert.equal(body.label, 7);
  assert.equal(body.pixels.length, 784);
  assert.equal(body.pixels[300], 300 % 256);
  assert.equal(body.request_id, "abc-123");
  assert.equal("request_id" in feedbackBody(pixels, 7, null), false);
  assert.equal("request_id" in feedbackBody(pixels, 7, "has spaces, <script>"), false);
});

test("what the model has heard, in words", () => {
  assert.equal(
    heardText({ model_version: "3", confirmed: 10, corrected: 2, accuracy: 10 / 12 }),
    "Model 3 has heard 12 verdicts: 10 confirmed, 2 corrected, live accuracy 83\u00a0%.",
  );
  assert.equal(
    heardText({ model_version: "1", confirmed: 0, corrected: 1, accuracy: 0 }),
    "Model 1 has heard 1 verdict: 0 confirmed, 1 corrected, live accuracy 0\u00a0%.",
  );
  assert.equal(
    heardText({ model_version: "1", confirmed: 0, corrected: 0, accuracy: null }),
    "Model 1 has heard no verdict yet.",
  );
});

test("the thanks says what was noted", () => {
  const heard = { model_version: "1", confirmed: 1, corrected: 1, accuracy: 0.5 };
  assert.match(
    thanksText({ confirmed: true, label: 7, prediction: 7, stored: true, heard }),
    /^Thanks! You confirmed the 7\. Model 1 has heard 2 verdicts/,
  );
  assert.match(
    thanksText({ confirmed: false, label: 7, prediction: 1, stored: true, heard }),
    /^Thanks! Noted: it is a 7, not a 1\. Model 1/,
  );
  assert.match(thanksText({ confirmed: false, label: 7, prediction: 1, stored: false, heard }), /already noted/);
});

function stubFetch(status, body, headers = {}) {
  const calls = [];
  globalThis.fetch = async (url, options) => {
    calls.push({ url, options });
    return new Response(body === undefined ? "" : JSON.stringify(body), {
      status,
      headers: { "Content-Type": "application/json", ...headers },
    });
  };
  return calls;
}

test("sendFeedback posts JSON to api/feedback and returns the answer", async () => {
  const answer = { id: "a1", stored: true, label: 7, prediction: 1, confirmed: false, model_version: "1", heard: {} };
  const calls = stubFetch(201, answer, { "X-Model-Version": "1", "X-Request-Id": "r9" });
  const result = await sendFeedback({ pixels: [1, 2], label: 7 });
  assert.deepEqual(result.body, answer);
  assert.equal(result.requestId, "r9");
  assert.equal(calls.length, 1);
  assert.equal(calls[0].url, "api/feedback");
  assert.equal(calls[0].options.method, "POST");
  assert.equal(calls[0].options.headers["Content-Type"], "application/json");
  assert.deepEqual(JSON.parse(calls[0].options.body), { pixels: [1, 2], label: 7 });
});

test("a database that is down is said as the service says it", async () => {
  stubFetch(503, { detail: "feedback cannot be stored right now, try again later (predictions are not affected): x" });
  await assert.rejects(sendFeedback({ pixels: [], label: 1 }), (error) => {
    assert.ok(error instanceof ServiceError);
    assert.equal(error.status, 503);
    assert.match(error.message, /feedback cannot be stored right now/);
    return true;
  });
});

test("a refused verdict, too many verdicts and no network are each said", async () => {
  stubFetch(422, { detail: "label: 12 is not one of the model's labels" });
  await assert.rejects(sendFeedback({ pixels: [], label: 12 }), /The service refused the verdict: label: 12/);
  stubFetch(429, { detail: "too many requests, slow down" });
  await assert.rejects(
    sendFeedback({ pixels: [], label: 1 }),
    (error) => error.status === 429 && /Too many requests/.test(error.message),
  );
  globalThis.fetch = async () => {
    throw new TypeError("Failed to fetch");
  };
  await assert.rejects(
    sendFeedback({ pixels: [], label: 1 }),
    (error) => error.status === 0 && /cannot be reached/.test(error.message),
  );
});
