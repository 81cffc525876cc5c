// The viewer's image in the browser (widgets/canvas.py): window/level and the
// label overlay computed here, so that a window slider (linked in the page with
// jsdlink) repaints without a round trip to the kernel.
//
// The arithmetic is medimg_lab.display.apply_window's, bit for bit:
// - integer values (u1, u2, i2): ((v - c) / w + 0.5) * 255 + 0.5 in float64,
//   clipped to [0, 255] and truncated, through a lookup table per window;
// - float32 values (f4): v * float32(255 / w) + float32(127.5 - c * 255 / w + 0.5)
//   in float32 (Math.fround after each operation), clipped and truncated.
// The overlay is a table made in Python by display.overlay itself: for each
// colour k and grey level g, the RGB of (k, g) at the opacity in force.
// Mode "rgb" shows the kernel's own uint8 RGB image as it is.
//
// After each paint the canvas's data-frame attribute counts up and its
// data-window holds the window painted, "center width" (for tests).

function typed(view, kind) {
  if (!view || view.byteLength === 0) return null;
  const Type = {
    u1: Uint8Array,
    u2: Uint16Array,
    i2: Int16Array,
    f4: Float32Array,
    rgb: Uint8Array,
  }[kind];
  let { buffer, byteOffset, byteLength } = view;
  if (byteOffset % Type.BYTES_PER_ELEMENT !== 0) {
    buffer = buffer.slice(byteOffset, byteOffset + byteLength);
    byteOffset = 0;
  }
  return new Type(buffer, byteOffset, byteLength / Type.BYTES_PER_ELEMENT);
}

function intLut(kind, center, width) {
  const n = kind === "u1" ? 256 : 65536;
  const low = kind === "i2" ? -32768 : 0;
  const lut = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const x = ((low + i - center) / width + 0.5) * 255.0 + 0.5;
    lut[i] = x <= 0 ? 0 : x >= 255 ? 255 : x | 0;
  }
  return { lut, low };
}

function greys(values, kind, center, width, out) {
  if (kind === "f4") {
    const f = Math.fround;
    const scale = f(255.0 / width);
    const offset = f(127.5 - (center * 255.0) / width + 0.5);
    for (let i = 0; i < values.length; i++) {
      const x = f(f(values[i] * scale) + offset);
      out[i] = x <= 0 ? 0 : x >= 255 ? 255 : x | 0;
    }
    return;
  }
  const { lut, low } = intLut(kind, center, width);
  for (let i = 0; i < values.length; i++) out[i] = lut[values[i] - low];
}

function render({ model, el }) {
  const canvas = document.createElement("canvas");
  canvas.className = "medimg-canvas";
  canvas.style.cssText = "display:block;width:100%;height:100%";
  canvas.dataset.frame = "0";
  el.appendChild(canvas);
  const ctx = canvas.getContext("2d");
  let values = null;
  let labels = null;
  let table = null;
  let grey = null;
  let image = null;
  let shown = [model.get("center"), model.get("width")];
  let queued = false;
  let stale = true; // the data traits changed since the last load()

  // Typed views of the data traits; the pixel buffers are kept while the
  // plane's size stays (scrolling slices allocates nothing).
  const load = () => {
    const [rows, cols] = model.get("shape");
    values = typed(model.get("values"), model.get("kind"));
    labels = typed(model.get("labels"), "u1");
    table = labels ? typed(model.get("table"), "u1") : null;
    if (canvas.width !== cols || canvas.height !== rows || !image) {
      canvas.width = cols;
      canvas.height = rows;
      grey = new Uint8Array(rows * cols);
      image = ctx.createImageData(Math.max(cols, 1), Math.max(rows, 1));
    }
    stale = false;
  };

  const paint = () => {
    queued = false;
    if (stale) load();
    const kind = model.get("kind");
    if (!values) return;
    const rgba = image.data;
    const n = grey.length;
    if (kind === "rgb") {
      for (let i = 0, j = 0; i < n; i++, j += 3) {
        rgba[4 * i] = values[j];
        rgba[4 * i + 1] = values[j + 1];
        rgba[4 * i + 2] = values[j + 2];
        rgba[4 * i + 3] = 255;
      }
    } else {
      greys(values, kind, shown[0], shown[1], grey);
      for (let i = 0; i < n; i++) {
        const g = grey[i];
        const k = table ? labels[i] : 0;
        if (k === 0) {
          rgba[4 * i] = rgba[4 * i + 1] = rgba[4 * i + 2] = g;
        } else {
          const t = ((k - 1) * 256 + g) * 3;
          rgba[4 * i] = table[t];
          rgba[4 * i + 1] = table[t + 1];
          rgba[4 * i + 2] = table[t + 2];
        }
        rgba[4 * i + 3] = 255;
      }
    }
    ctx.putImageData(image, 0, 0);
    canvas.dataset.window = kind === "rgb" ? "" : `${shown[0]} ${shown[1]}`;
    canvas.dataset.frame = String(Number(canvas.dataset.frame) + 1);
  };

  // Several traits of one message change together: paint once, at once after.
  const queue = () => {
    if (queued) return;
    queued = true;
    queueMicrotask(paint);
  };
  // A slider moves its own half of the window only: the other half stays as
  // the kernel last sent it (a slider holds a value snapped to its step).
  // A slider re-snapping a value the kernel sent gives it back with float
  // error (40.00000000000023 for 40): that is no move.
  const near = (a, b) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
  const fromCenter = () => {
    if (near(model.get("center"), shown[0])) return;
    shown = [model.get("center"), shown[1]];
    queue();
  };
  const fromWidth = () => {
    if (near(model.get("width"), shown[1])) return;
    shown = [shown[0], model.get("width")];
    queue();
  };
  const fromKernel = () => {
    const [center, width] = model.get("window");
    shown = [center, width];
    queue();
  };
  // Several data traits come in one message: loaded once, at the paint.
  const reload = () => {
    stale = true;
    queue();
  };

  const handlers = {
    "change:center": fromCenter,
    "change:width": fromWidth,
    "change:window": fromKernel,
    "change:values": reload,
    "change:shape": reload,
    "change:kind": reload,
    "change:labels": reload,
    "change:table": reload,
  };
  for (const [event, handler] of Object.entries(handlers)) model.on(event, handler);
  if (model.get("window").length) shown = model.get("window").slice(0, 2);
  paint();
  return () => {
    for (const [event, handler] of Object.entries(handlers)) model.off(event, handler);
  };
}

export { greys, intLut };
export default { render };
