// The person's verdict on an answer: confirm it, or give the right digit. Pure functions here (the
// page wires them to buttons and keys), so node --test checks them without a browser.

// The digit a key press gives, or null: plain digit keys (top row or keypad), no modifier, no
// auto-repeat, and only digits the model knows.
export function digitFromKey(event, labels) {
  if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return null;
  const key = String(event.key);
  if (!/^[0-9]$/.test(key)) return null;
  return labels.includes(key) ? Number(key) : null;
}

// What the page sends: the very pixels the answer was about, the digit given, and the id of the
// prediction request when there is one.
export function feedbackBody(pixels, label, requestId) {
  const body = { pixels: Array.from(pixels), label: Number(label) };
  if (requestId && /^[A-Za-z0-9._-]{1,128}$/.test(requestId)) body.request_id = requestId;
  return body;
}

const percent = (x) => `${Math.round(100 * x)}\u00a0%`; // no line break inside "83 %"
const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`;

// "Model 3 has heard 12 verdicts: 10 confirmed, 2 corrected, live accuracy 83 %."
export function heardText(heard) {
  const total = heard.confirmed + heard.corrected;
  if (!total) return `Model ${heard.model_version} has heard no verdict yet.`;
  const accuracy = heard.accuracy ?? heard.confirmed / total;
  return (
    `Model ${heard.model_version} has heard ${plural(total, "verdict", "verdicts")}: ` +
    `${heard.confirmed} confirmed, ${heard.corrected} corrected, live accuracy ${percent(accuracy)}.`
  );
}

// The thanks for one verdict (the API's answer to POST /feedback).
export function thanksText(result) {
  const said = result.confirmed
    ? `Thanks! You confirmed the ${result.label}.`
    : `Thanks! Noted: it is a ${result.label}, not a ${result.prediction}.`;
  const again = result.stored ? "" : " (This drawing was already noted.)";
  return `${said}${again} ${heardText(result.heard)}`;
}
