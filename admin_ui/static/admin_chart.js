// nutgate admin, the dashboard's chart: requests, revenue and balances over a period, one panel
// each, so each has its own scale and its own labelled axis; a tooltip (SVG <title>) per bucket.
// Loaded before admin.js, which calls drawChart(box, points, periodHours).
"use strict";

const CHART_NS = "http://www.w3.org/2000/svg";
const PANELS = [
  { key: "requests", label: "requests", kind: "bar", format: (v) => v.toLocaleString() },
  { key: "revenue_msat", label: "revenue (sat)", kind: "line", format: (v) => chartSat(v) },
  { key: "balances_msat", label: "balances (sat)", kind: "line", format: (v) => chartSat(v) },
];
const chartSat = (msat) => (msat / 1000).toLocaleString(undefined, { maximumFractionDigits: 3 });

// A round top for an axis: 1, 2 or 5 times a power of ten, at least `max`.
function niceMax(max) {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  return [1, 2, 5, 10].map((m) => m * power).find((v) => v >= max);
}

function chartTime(t, periodHours) {
  const d = new Date(t * 1000);
  if (periodHours <= 48) return d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return d.toLocaleDateString([], { month: "short", day: "numeric" });
}

function drawChart(box, points, periodHours) {
  const W = 800, PH = 110, GAP = 34, L = 78, R = 12, T = 18;
  const H = T + PANELS.length * (PH + GAP) + 14;
  const svg = document.createElementNS(CHART_NS, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "requests, revenue and balances over time");
  const add = (tag, attrs, parent = svg) => {
    const n = document.createElementNS(CHART_NS, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    return parent.appendChild(n);
  };
  const text = (content, attrs) => { add("text", attrs).textContent = content; };
  const n = Math.max(points.length, 1), step = (W - L - R) / n;
  const x = (i) => L + i * step + step / 2;
  PANELS.forEach((panel, row) => {
    const top = T + row * (PH + GAP), bottom = top + PH;
    const max = niceMax(Math.max(0, ...points.map((p) => p[panel.key])));
    const y = (v) => bottom - (Math.max(0, v) / max) * PH;
    for (const v of [0, max / 2, max]) { // gridlines with their values
      add("line", { class: v ? "grid" : "axis", x1: L, y1: y(v), x2: W - R, y2: y(v) });
      text(panel.format(v), { class: "tick", x: L - 6, y: y(v) + 3, "text-anchor": "end" });
    }
    text(panel.label, { class: "panel-label", x: L, y: top - 7 });
    if (panel.kind === "bar") {
      points.forEach((p, i) => {
        if (p[panel.key]) add("rect", { class: "bar", x: x(i) - step * 0.35, width: step * 0.7,
          y: y(p[panel.key]), height: bottom - y(p[panel.key]) });
      });
    } else {
      const d = points.map((p, i) => `${i ? "L" : "M"}${x(i).toFixed(1)},${y(p[panel.key]).toFixed(1)}`);
      add("path", { class: "line " + panel.key, d: d.join(" ") });
    }
  });
  const last = T + PANELS.length * (PH + GAP) - GAP;
  const labels = Math.min(n, 6);
  for (let k = 0; k < labels; k++) {
    const i = Math.round((k * (n - 1)) / Math.max(labels - 1, 1));
    if (points[i]) text(chartTime(points[i].t, periodHours), { class: "tick", x: x(i), y: last + 16, "text-anchor": "middle" });
  }
  points.forEach((p, i) => { // the whole column is the tooltip's target
    const hit = add("rect", { class: "hit", x: x(i) - step / 2, width: step, y: T, height: last - T });
    add("title", {}, hit).textContent = `${new Date(p.t * 1000).toLocaleString()}\n` +
      PANELS.map((panel) => `${panel.label}: ${panel.format(p[panel.key])}`).join("\n");
  });
  box.replaceChildren(svg);
}
