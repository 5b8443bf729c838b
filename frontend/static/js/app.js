// The page: draw, predict while drawing (debounced) and at the end of each stroke, show the answer,
// and take the person's verdict on it (confirm, or the right digit) only when they give one.
import { modelInfo, predict, ServiceError, sendFeedback } from "./api.js";
import { Pad } from "./drawing.js";
import { digitFromKey, feedbackBody, thanksText } from "./feedback.js";
import { canvasToPixels } from "./preprocess.js";

const DEBOUNCE_MS = 150;

const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const ui = {
  prediction: $("prediction"),
  probability: $("probability"),
  bars: $("bars"),
  error: $("error"),
  version: $("model-version"),
  latency: $("latency"),
  undo: $("undo"),
  clear: $("clear"),
  question: $("feedback-question"),
  confirm: $("confirm"),
  correct: $("correct"),
  thanks: $("thanks"),
};
const pad = new Pad(canvas);

let timer = null;
let inFlight = null; // the AbortController of the request whose answer we still want
let sequence = 0; // answers to older drawings are dropped
// The answer on screen, for the drawing on screen: what a verdict is about. Null while there is
// none, while a stroke is being drawn, and once a verdict on it has been given.
let answered = null;
let sending = false;

function buildBars(labels) {
  ui.bars.replaceChildren(
    ...labels.map((label) => {
      const item = document.createElement("li");
      item.dataset.label = label;
      item.innerHTML =
        '<span class="digit"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
      item.querySelector(".digit").textContent = label;
      return item;
    }),
  );
}

function buildDigits(labels) {
  ui.correct.replaceChildren(
    ...labels.map((label) => {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.label = label;
      button.textContent = label;
      button.setAttribute("aria-label", `No, it is a ${label}`);
      button.setAttribute("aria-keyshortcuts", label);
      return button;
    }),
  );
  setVerdictButtons(false);
}

function labelsShown() {
  return [...ui.bars.children].map((item) => item.dataset.label);
}

function setVerdictButtons(enabled) {
  ui.confirm.disabled = !enabled;
  for (const button of ui.correct.children) button.disabled = !enabled;
}

function askForVerdict(answer) {
  answered = answer;
  ui.question.textContent = `Is it a ${answer.prediction}?`;
  for (const button of ui.correct.children) button.setAttribute("aria-pressed", "false");
  setVerdictButtons(true);
}

function dropVerdict() {
  answered = null;
  ui.question.textContent = "Right?";
  setVerdictButtons(false);
}

async function giveVerdict(label) {
  if (!answered || sending) return;
  const answer = answered;
  sending = true;
  setVerdictButtons(false);
  try {
    const { body } = await sendFeedback(feedbackBody(answer.pixels, label, answer.requestId));
    ui.thanks.textContent = thanksText(body);
    ui.thanks.hidden = false;
    const chosen = [...ui.correct.children].find((button) => button.dataset.label === String(label));
    chosen?.setAttribute("aria-pressed", "true");
    if (answered === answer) answered = null; // one verdict per drawing
    showError(null);
  } catch (error) {
    showError(error instanceof ServiceError ? error.message : `Unexpected error: ${error.message}`);
    if (answered === answer) setVerdictButtons(true); // nothing was stored: the person may try again
  } finally {
    sending = false;
  }
}

function showAnswer(body, version, ms, pixels, requestId) {
  const labels = labelsShown();
  if (labels.length !== body.probabilities.length) buildBars(body.probabilities.map((_, i) => String(i)));
  ui.prediction.textContent = String(body.prediction);
  ui.probability.textContent = `${(100 * body.probability).toFixed(1)} % sure`;
  [...ui.bars.children].forEach((item, i) => {
    const p = body.probabilities[i];
    item.style.setProperty("--p", p.toFixed(4)); // the stylesheet draws the bar from it
    item.querySelector(".value").textContent = `${Math.round(100 * p)}%`;
    item.classList.toggle("best", Number(item.dataset.label) === body.prediction);
    item.setAttribute("aria-label", `${item.dataset.label}: ${(100 * p).toFixed(1)} percent`);
  });
  ui.version.textContent = body.model_version || version || ui.version.textContent;
  ui.latency.textContent = `${Math.round(ms)} ms`;
  showError(null);
  askForVerdict({ pixels, prediction: body.prediction, requestId });
}

function clearAnswer() {
  dropVerdict();
  ui.prediction.textContent = "";
  ui.probability.textContent = "";
  ui.latency.textContent = "–";
  for (const item of ui.bars.children) {
    item.style.setProperty("--p", "0");
    item.querySelector(".value").textContent = "";
    item.classList.remove("best");
    item.removeAttribute("aria-label");
  }
}

function showError(message) {
  ui.error.textContent = message || "";
  ui.error.hidden = !message;
}

function updateButtons() {
  ui.undo.disabled = pad.isEmpty;
  ui.clear.disabled = pad.isEmpty;
}

async function predictNow() {
  clearTimeout(timer);
  timer = null;
  inFlight?.abort();
  inFlight = null;
  const pixels = canvasToPixels(pad.imageData());
  if (!pixels) {
    // Nothing drawn (or nothing left after undo): nothing to ask.
    sequence++;
    clearAnswer();
    showError(null);
    return;
  }
  const mine = ++sequence;
  const controller = new AbortController();
  inFlight = controller;
  const started = performance.now();
  try {
    const { body, version, requestId } = await predict(pixels, controller.signal);
    if (mine === sequence) showAnswer(body, version, performance.now() - started, pixels, requestId);
  } catch (error) {
    if (error.name === "AbortError" || mine !== sequence) return;
    showError(error instanceof ServiceError ? error.message : `Unexpected error: ${error.message}`);
  } finally {
    if (inFlight === controller) inFlight = null;
  }
}

function predictSoon() {
  clearTimeout(timer);
  timer = setTimeout(predictNow, DEBOUNCE_MS);
}

canvas.addEventListener("pointerdown", (event) => {
  if (event.button !== 0) return;
  canvas.setPointerCapture(event.pointerId);
  dropVerdict(); // the answer on screen is about the drawing before this stroke
  pad.begin(event);
  updateButtons();
  event.preventDefault();
});
canvas.addEventListener("pointermove", (event) => {
  if (pad.extend(event)) predictSoon();
});
for (const type of ["pointerup", "pointercancel"]) {
  canvas.addEventListener(type, () => {
    if (pad.end()) predictNow();
  });
}

function undo() {
  pad.undo();
  updateButtons();
  predictNow();
}

function clear() {
  pad.clear();
  updateButtons();
  predictNow();
  canvas.focus();
}

ui.undo.addEventListener("click", undo);
ui.clear.addEventListener("click", clear);
ui.confirm.addEventListener("click", () => answered && giveVerdict(answered.prediction));
ui.correct.addEventListener("click", (event) => {
  const button = event.target.closest("button[data-label]");
  if (button) giveVerdict(Number(button.dataset.label));
});
document.addEventListener("keydown", (event) => {
  const digit = digitFromKey(event, labelsShown());
  if (digit !== null) {
    event.preventDefault();
    giveVerdict(digit);
  } else if (event.key === "Escape") {
    clear();
  } else if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  }
});

buildBars(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
buildDigits(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
updateButtons();
modelInfo()
  .then(({ body }) => {
    const labels = Object.keys(body.labels)
      .sort((a, b) => a - b)
      .map((i) => body.labels[i]);
    buildBars(labels);
    buildDigits(labels);
    ui.version.textContent = body.version;
    ui.version.title = `${body.name}, accuracy ${(100 * body.metrics.accuracy).toFixed(2)} % on ${body.metrics.eval_set.size} held-out digits`;
  })
  .catch((error) => {
    ui.version.textContent = "unknown";
    showError(error instanceof ServiceError ? error.message : String(error));
  });
