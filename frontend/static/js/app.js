// The page: draw, predict while drawing (debounced) and at the end of each stroke, show the answer.
import { modelInfo, predict, ServiceError } from "./api.js";
import { Pad } from "./drawing.js";
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
};
const pad = new Pad(canvas);

let timer = null;
let inFlight = null; // the AbortController of the request whose answer we still want
let sequence = 0; // answers to older drawings are dropped

function buildBars(labels) {
  ui.bars.replaceChildren(
    ...labels.map((label) => {
      const item = document.createElement("li");
      item.dataset.label = label;
      item.innerHTML = '<span class="digit"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
      item.querySelector(".digit").textContent = label;
      return item;
    }),
  );
}

function showAnswer(body, version, ms) {
  const labels = [...ui.bars.children].map((item) => item.dataset.label);
  if (labels.length !== body.probabilities.length) buildBars(body.probabilities.map((_, i) => String(i)));
  ui.prediction.textContent = String(body.prediction);
  ui.probability.textContent = `${(100 * body.probability).toFixed(1)} % sure`;
  [...ui.bars.children].forEach((item, i) => {
    const p = body.probabilities[i];
    item.querySelector(".fill").style.width = `${(100 * p).toFixed(1)}%`;
    item.querySelector(".value").textContent = `${Math.round(100 * p)}%`;
    item.classList.toggle("best", Number(item.dataset.label) === body.prediction);
    item.setAttribute("aria-label", `${item.dataset.label}: ${(100 * p).toFixed(1)} percent`);
  });
  ui.version.textContent = body.model_version || version || ui.version.textContent;
  ui.latency.textContent = `${Math.round(ms)} ms`;
  showError(null);
}

function clearAnswer() {
  ui.prediction.textContent = "";
  ui.probability.textContent = "";
  ui.latency.textContent = "–";
  for (const item of ui.bars.children) {
    item.querySelector(".fill").style.width = "0";
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
    const { body, version } = await predict(pixels, controller.signal);
    if (mine === sequence) showAnswer(body, version, performance.now() - started);
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
document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") {
    clear();
  } else if ((event.ctrlKey || event.metaKey) && !event.shiftKey && event.key.toLowerCase() === "z") {
    event.preventDefault();
    undo();
  }
});

buildBars(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
updateButtons();
modelInfo()
  .then(({ body }) => {
    buildBars(Object.keys(body.labels).sort((a, b) => a - b).map((i) => body.labels[i]));
    ui.version.textContent = body.version;
    ui.version.title = `${body.name}, accuracy ${(100 * body.metrics.accuracy).toFixed(2)} % on ${body.metrics.eval_set.size} held-out digits`;
  })
  .catch((error) => {
    ui.version.textContent = "unknown";
    showError(error instanceof ServiceError ? error.message : String(error));
  });
