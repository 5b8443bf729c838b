// The drawing pad: strokes kept as point lists, so undo is "drop the last one and redraw".
// Ink is opaque black on a transparent canvas; preprocess.js turns that into MNIST polarity.

// At 280 px a 22 px pen becomes ~2.2 px once the digit is scaled into MNIST's 20 px box: the
// stroke width of the digits the model learnt from.
export const PEN_WIDTH = 22;

export class Pad {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext("2d", { willReadFrequently: true });
    this.strokes = [];
    this.current = null;
  }

  get isEmpty() {
    return this.strokes.length === 0;
  }

  // Pointer position in canvas pixels, whatever size CSS gives the canvas.
  point(event) {
    const rect = this.canvas.getBoundingClientRect();
    return [
      ((event.clientX - rect.left) / rect.width) * this.canvas.width,
      ((event.clientY - rect.top) / rect.height) * this.canvas.height,
    ];
  }

  begin(event) {
    this.current = [this.point(event)];
    this.strokes.push(this.current);
    this.render();
  }

  extend(event) {
    if (!this.current) return false;
    // Coalesced events carry the points the browser sampled between two frames: smoother curves.
    const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
    for (const e of events.length ? events : [event]) this.current.push(this.point(e));
    this.render();
    return true;
  }

  end() {
    const ended = this.current !== null;
    this.current = null;
    return ended;
  }

  undo() {
    this.current = null;
    this.strokes.pop();
    this.render();
  }

  clear() {
    this.current = null;
    this.strokes = [];
    this.render();
  }

  render() {
    const { ctx, canvas } = this;
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    ctx.lineWidth = PEN_WIDTH;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#000";
    ctx.fillStyle = "#000";
    for (const points of this.strokes) drawStroke(ctx, points);
  }

  imageData() {
    return this.ctx.getImageData(0, 0, this.canvas.width, this.canvas.height);
  }
}

// A dot for a tap; otherwise quadratic curves through the midpoints, which smooths the polyline
// of sampled points without overshooting them.
function drawStroke(ctx, points) {
  const [x0, y0] = points[0];
  if (points.length === 1) {
    ctx.beginPath();
    ctx.arc(x0, y0, PEN_WIDTH / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(x0, y0);
  for (let i = 1; i < points.length - 1; i++) {
    const [x, y] = points[i];
    const [nx, ny] = points[i + 1];
    ctx.quadraticCurveTo(x, y, (x + nx) / 2, (y + ny) / 2);
  }
  const [xl, yl] = points[points.length - 1];
  ctx.lineTo(xl, yl);
  ctx.stroke();
}
