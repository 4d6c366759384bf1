// The draw page: strokes on a 280x280 canvas -> a 28x28 input made the way MNIST's digits were -> the ONNX model
// (onnxruntime-web, in this page) -> ten probabilities. window.modelInput holds the last input, window.idle resolves
// when the last stroke has been read (the browser test uses both).
"use strict";

const pad = document.getElementById("pad");
const ink = pad.getContext("2d", { willReadFrequently: true });
const shown = document.getElementById("model-input").getContext("2d");
const status = document.getElementById("status");
const table = document.getElementById("probabilities");
const BRUSH = 22; // px on the 280-px pad: about 2.2 px at 28x28, MNIST's stroke width

ort.env.wasm.wasmPaths = new URL("ort/", location.href).href; // a full URL: the runtime import()s its .mjs from there
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a plain static server does not give
const session = ort.InferenceSession.create("03_training.onnx");
window.idle = session.then(() => { status.textContent = "draw a digit"; });

function clear() {
  ink.fillStyle = "#000";
  ink.fillRect(0, 0, pad.width, pad.height);
  shown.clearRect(0, 0, 28, 28);
  document.getElementById("prediction").textContent = "–";
  table.replaceChildren();
  window.modelInput = null;
}

// Drawing: pointer events serve mouse, pen and touch alike.
let last = null;
function point(e) {
  const r = pad.getBoundingClientRect();
  return [(e.clientX - r.left) * (pad.width / r.width), (e.clientY - r.top) * (pad.height / r.height)];
}
pad.addEventListener("pointerdown", (e) => { last = point(e); pad.setPointerCapture(e.pointerId); line(last, last); });
pad.addEventListener("pointermove", (e) => { if (last) { const p = point(e); line(last, p); last = p; } });
pad.addEventListener("pointerup", () => { if (last) { last = null; window.idle = window.idle.then(read); } });
document.getElementById("clear").addEventListener("click", clear);
function line(a, b) {
  ink.strokeStyle = "#fff";
  ink.lineWidth = BRUSH;
  ink.lineCap = ink.lineJoin = "round";
  ink.beginPath();
  ink.moveTo(a[0], a[1]);
  ink.lineTo(b[0], b[1]);
  ink.stroke();
}

// MNIST's preprocessing: bounding box -> longer side 20 px (area-averaged grey levels) -> centre of mass at (14, 14).
function mnistInput() {
  const { data, width, height } = ink.getImageData(0, 0, pad.width, pad.height);
  const grey = (x, y) => data[4 * (y * width + x)] / 255;
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) if (grey(x, y) > 0) {
    x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
  }
  if (x1 < 0) return null; // nothing drawn
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const scale = 20 / side; // target pixels per source pixel
  const w = Math.max(1, Math.round((x1 - x0 + 1) * scale)), h = Math.max(1, Math.round((y1 - y0 + 1) * scale));
  const small = new Float32Array(w * h);
  const count = new Float32Array(w * h);
  for (let y = y0; y <= y1; y++) for (let x = x0; x <= x1; x++) { // each source pixel into the target pixel it falls in
    const i = Math.min(h - 1, Math.floor((y - y0) * scale)) * w + Math.min(w - 1, Math.floor((x - x0) * scale));
    small[i] += grey(x, y);
    count[i] += 1;
  }
  let mass = 0, mx = 0, my = 0;
  for (let i = 0; i < w * h; i++) {
    small[i] /= count[i] || 1;
    mass += small[i]; mx += small[i] * (i % w); my += small[i] * Math.floor(i / w);
  }
  const dx = Math.round(13.5 - mx / mass), dy = Math.round(13.5 - my / mass); // 13.5: the middle of 0..27
  const input = new Float32Array(28 * 28);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const tx = x + dx, ty = y + dy;
    if (tx >= 0 && tx < 28 && ty >= 0 && ty < 28) input[ty * 28 + tx] = small[y * w + x];
  }
  return input;
}

async function read() {
  const input = mnistInput();
  if (!input) return;
  window.modelInput = input;
  const pixels = shown.createImageData(28, 28);
  input.forEach((v, i) => { pixels.data.set([255 * v, 255 * v, 255 * v, 255], 4 * i); });
  shown.putImageData(pixels, 0, 0);
  const result = await (await session).run({ image: new ort.Tensor("float32", input, [1, 1, 28, 28]) });
  const logits = Array.from(result.logits.data);
  const top = Math.max(...logits);
  const exp = logits.map((l) => Math.exp(l - top));
  const sum = exp.reduce((a, b) => a + b);
  const probs = exp.map((e) => e / sum);
  const digit = logits.indexOf(top);
  document.getElementById("prediction").textContent = String(digit);
  table.replaceChildren(...probs.map((p, d) => {
    const row = document.createElement("tr");
    if (d === digit) row.className = "top";
    row.innerHTML = `<td>${d}</td><td style="width:12em"><div class="bar" style="width:${(100 * p).toFixed(1)}%"></div></td>` +
      `<td>${(100 * p).toFixed(1)}%</td>`;
    return row;
  }));
  status.textContent = "draw more, or clear";
}

clear();
