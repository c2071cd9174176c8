// A small dependency-free SVG line chart for time series.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  return el;
}

// A top of the axis whose quarters are round numbers (whole ones for counts).
function niceMax(value, counts) {
  if (value <= 0) return counts ? 4 : 1;
  if (counts && value <= 4) return 4;
  const exp = Math.pow(10, Math.floor(Math.log10(value)));
  const steps = counts && exp < 10 ? [1, 2, 4, 6, 8, 10] : [1, 2, 2.5, 4, 5, 6, 8, 10];
  for (const step of steps) if (step * exp >= value) return step * exp;
  return 10 * exp;
}

// series: [{label, color, values: [number]}], times: [iso string]
export function lineChart(series, times, options) {
  const width = 560, height = 170, left = 42, right = 10, top = 10, bottom = 22;
  const root = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img" });
  const count = times.length;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => s.values)), !(options && options.rate));
  const x = (i) => left + (count <= 1 ? 0 : (i * (width - left - right)) / (count - 1));
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  for (let k = 0; k <= 4; k++) {
    const value = (max * k) / 4;
    root.append(svg("line", { class: "grid-line", x1: left, x2: width - right, y1: y(value), y2: y(value) }));
    const label = svg("text", { class: "axis", x: left - 6, y: y(value) + 3, "text-anchor": "end" });
    label.textContent = options && options.rate ? formatRate(value) : formatCount(value);
    root.append(label);
  }
  if (count) {
    for (const i of [0, Math.floor((count - 1) / 2), count - 1]) {
      const t = svg("text", { class: "axis", x: x(i), y: height - 6, "text-anchor": i === 0 ? "start" : i === count - 1 ? "end" : "middle" });
      t.textContent = new Date(times[i]).toISOString().slice(11, 19);
      root.append(t);
    }
  }
  for (const s of series) {
    if (!s.values.length) continue;
    const points = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`);
    const line = "M" + points.join("L");
    root.append(svg("path", { class: "area", d: `${line}L${x(count - 1)},${y(0)}L${x(0)},${y(0)}Z`, fill: s.color }));
    root.append(svg("path", { class: "line", d: line, stroke: s.color }));
  }
  return root;
}

function formatRate(v) { return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2); }
function formatCount(v) { return v >= 1000 ? (v / 1000).toFixed(1) + "k" : String(Math.round(v)); }

export function legend(series) {
  const el = document.createElement("div");
  el.className = "legend";
  for (const s of series) {
    const item = document.createElement("span");
    const swatch = document.createElement("i");
    swatch.style.background = s.color;
    item.append(swatch, s.label);
    el.append(item);
  }
  return el;
}
