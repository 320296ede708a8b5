// Charts of plan.html, drawn as inline SVG from the plan data embedded in the page (no libraries).
// Every element with data-chart="KIND" gets one chart; body[data-charts] counts those drawn.
"use strict";
(function () {
  const plan = JSON.parse(document.getElementById("plan-data").textContent);
  const NS = "http://www.w3.org/2000/svg";
  const C3 = "#4e79a7", C6 = "#f28e2b", CRIT = "#d62728", GREY = "#9aa5b1";
  const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];
  // block i: hue by the golden angle, so neighbouring and distant blocks never share a colour
  const blockColor = (i) => `hsl(${(i * 137.508) % 360}, 62%, ${i % 2 ? 42 : 55}%)`;

  function el(name, attrs, parent, text) {
    const e = document.createElementNS(NS, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    if (parent) parent.appendChild(e);
    return e;
  }
  function svg(host, w, h) {
    return el("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img" }, host);
  }
  function fmt(v) {
    if (typeof v !== "number") return String(v);
    if (Math.abs(v) >= 1e4) return Intl.NumberFormat("en", { notation: "compact", maximumSignificantDigits: 3 }).format(v);
    return Math.abs(v) >= 10 ? v.toFixed(0) : v.toFixed(2);
  }
  function tip(node, text) { el("title", {}, node, text); }
  const col = (t, name) => t.columns.indexOf(name);

  // horizontal bars: rows of [label, value, ...]; max: scale end
  function hbars(host, labels, series, colors, max, unit, left = 170) {
    const rowH = 18, w = 760 + left - 170, h = labels.length * rowH * series.length + 30;
    const s = svg(host, w, h);
    let y = 4;
    labels.forEach((lab, i) => {
      el("text", { x: left - 6, y: y + rowH * series.length / 2 + 4, "text-anchor": "end", class: "lab" }, s, lab);
      series.forEach((ser, j) => {
        const v = ser.values[i] === null ? 0 : ser.values[i];
        const r = el("rect", { x: left, y: y + 1, width: Math.max(0, (w - left - 110) * v / max), height: rowH - 3, fill: colors[j], class: "bar" }, s);
        tip(r, `${lab} ${ser.name}: ${ser.values[i] === null ? "n/a" : fmt(v)} ${unit}`);
        const text = ser.values[i] === null ? "n/a" : v === 0 ? "" : series.length > 1 ? `${ser.name} ${fmt(v)}` : `${fmt(v)} ${unit}`;
        if (text) el("text", { x: left + (w - left - 110) * Math.min(v, max) / max + 4, y: y + rowH - 5, class: "val" }, s, text);
        y += rowH;
      });
    });
    return s;
  }
  // vertical stacked bars: labels, stacks [{name, values}], colors
  function vstack(host, labels, stacks, colors, unit) {
    const w = 760, h = 220, bottom = 30, top = 10, left = 50;
    const s = svg(host, w, h);
    const tot = labels.map((_, i) => stacks.reduce((a, st) => a + st.values[i], 0));
    const max = Math.max(...tot, 1e-12);
    const bw = (w - left - 10) / labels.length;
    labels.forEach((lab, i) => {
      let y = h - bottom;
      stacks.forEach((st, j) => {
        const hh = (h - bottom - top) * st.values[i] / max;
        y -= hh;
        const r = el("rect", { x: left + i * bw + 1, y: y, width: Math.max(bw - 2, 1), height: hh, fill: colors[j], class: "bar" }, s);
        tip(r, `${lab} ${st.name}: ${fmt(st.values[i])} ${unit}`);
      });
      if (i % Math.max(1, Math.ceil(30 / bw)) === 0)
        el("text", { x: left + i * bw + bw / 2, y: h - bottom + 12, "text-anchor": "middle", class: "tick" }, s, lab);
    });
    el("text", { x: left - 4, y: top + 8, "text-anchor": "end", class: "tick" }, s, fmt(max));
    el("line", { x1: left, x2: w - 10, y1: h - bottom, y2: h - bottom, class: "axis" }, s);
    stacks.forEach((st, j) => {
      el("rect", { x: left + 10 + j * 120, y: h - 12, width: 10, height: 10, fill: colors[j] }, s);
      el("text", { x: left + 24 + j * 120, y: h - 3, class: "tick" }, s, st.name);
    });
    return s;
  }

  // line chart, log-scaled x: xs, series [{name, values}], colours
  function lines(host, xs, series, colors, xlabel, unit) {
    const w = 760, h = 260, left = 70, right = 20, top = 12, bottom = 46;
    const s = svg(host, w, h);
    const lx = (v) => Math.log(Math.max(v, 1));
    const x0 = lx(xs[0]), x1 = Math.max(lx(xs[xs.length - 1]), x0 + 1e-9);
    const ymax = Math.max(...series.flatMap((ser) => ser.values), 1e-12);
    const X = (v) => left + (w - left - right) * (lx(v) - x0) / (x1 - x0);
    const Y = (v) => h - bottom - (h - bottom - top) * v / ymax;
    el("line", { x1: left, x2: w - right, y1: h - bottom, y2: h - bottom, class: "axis" }, s);
    el("line", { x1: left, x2: left, y1: top, y2: h - bottom, class: "axis" }, s);
    for (let k = 0; k <= 4; k++) el("text", { x: left - 6, y: Y(ymax * k / 4) + 4, "text-anchor": "end", class: "tick" }, s, fmt(ymax * k / 4));
    let lastX = -1e9;
    xs.forEach((v) => {
      if (X(v) - lastX < 34) return;
      lastX = X(v);
      el("text", { x: X(v), y: h - bottom + 14, "text-anchor": "middle", class: "tick" }, s, fmt(v));
    });
    el("text", { x: (left + w - right) / 2, y: h - bottom + 30, "text-anchor": "middle", class: "tick" }, s, xlabel + " (log scale)");
    series.forEach((ser, j) => {
      el("polyline", { points: xs.map((v, i) => `${X(v)},${Y(ser.values[i])}`).join(" "), fill: "none", stroke: colors[j], "stroke-width": 2 }, s);
      xs.forEach((v, i) => tip(el("circle", { cx: X(v), cy: Y(ser.values[i]), r: 3, fill: colors[j] }, s), `${xlabel} ${fmt(v)}: ${fmt(ser.values[i])} ${unit}`));
      el("rect", { x: left + 10 + j * 200, y: h - 12, width: 10, height: 10, fill: colors[j] }, s);
      el("text", { x: left + 24 + j * 200, y: h - 3, class: "tick" }, s, ser.name);
    });
    return s;
  }

  const charts = {
    "context-curve": (host) => {
      const t = plan.performance.tables.context;
      return lines(host, t.rows.map((r) => r[0]), [{ name: "tokens/s, one user", values: t.rows.map((r) => r[1]) }], [C3], "context tokens", "tokens/s");
    },
    "users-curve": (host) => {
      const t = plan.performance.tables.users;
      if (!t.rows.length) return null;
      return lines(host, t.rows.map((r) => r[0]), [{ name: "tokens/s, all sequences", values: t.rows.map((r) => r[3]) },
        { name: "tokens/s, each sequence", values: t.rows.map((r) => r[2]) }], [C3, C6], "concurrent sequences", "tokens/s");
    },
    "fit-dies": (host) => {
      const t = plan.fit.tables.dies;
      const names = ["MAC tiles", "ROM cells", "vector units", "SRAM", "routing"];
      const series = names.map((n) => ({ name: n, values: t.rows.map((r) => r[col(t, n)]) }));
      return hbars(host, t.rows.map((r) => `die ${r[0]}`), series, PALETTE, 1, "of the die");
    },
    "blocks": (host) => {
      const t = plan.fit.tables.blocks;
      return vstack(host, t.rows.map((r) => r[0]), [{ name: "ROM fill of the block's MAC tiles", values: t.rows.map((r) => r[col(t, "ROM fill")]) }], [C3], "");
    },
    "bits-tensor": (host) => {
      const t = plan.fit.tables.bits_by_tensor;
      const max = Math.max(...t.rows.map((r) => r[1] + r[2]), 1);
      return hbars(host, t.rows.map((r) => r[0]), [{ name: "3-bit", values: t.rows.map((r) => r[1]) }, { name: "6-bit", values: t.rows.map((r) => r[2]) }], [C3, C6], max, "weights");
    },
    "bits-layer": (host) => {
      const t = plan.fit.tables.bits_by_layer;
      return vstack(host, t.rows.map((r) => r[0]), [{ name: "3-bit weights", values: t.rows.map((r) => r[1]) }, { name: "6-bit weights", values: t.rows.map((r) => r[2]) }], [C3, C6], "weights");
    },
    "context": (host) => {
      const t = plan.capacity.tables.context;
      return hbars(host, t.rows.map((r) => `${r[0]} user(s)`), [{ name: "tokens", values: t.rows.map((r) => r[1]) }], [C3], Math.max(...t.rows.map((r) => r[1]), 1), "tokens");
    },
    "stages": (host) => {
      const t = plan.performance.tables.stages;
      return hbars(host, t.rows.map((r) => `die ${r[0]}: ${r[1]}..${r[2]}`), [{ name: "latency", values: t.rows.map((r) => r[col(t, "latency µs")]) }], [C3], Math.max(...t.rows.map((r) => r[col(t, "latency µs")]), 1e-9), "µs", 220);
    },
    "gantt": (host) => {
      const tasks = plan.schedule.tasks, left = 290, w = 900, rowH = 20;
      const end = Math.max(Math.ceil(Math.max(...tasks.map((t) => t.end_week))), 1);
      const h = tasks.length * rowH + 40;
      const s = svg(host, w, h);
      const x = (wk) => left + (w - left - 40) * wk / end;
      const step = Math.max(1, Math.ceil(end / 20));
      for (let wk = 0; wk <= end; wk += step) {
        el("line", { x1: x(wk), x2: x(wk), y1: 0, y2: h - 24, class: "grid" }, s);
        el("text", { x: x(wk), y: h - 10, "text-anchor": "middle", class: "tick" }, s, `w${wk}`);
      }
      tasks.forEach((t, i) => {
        const y = i * rowH + 2;
        el("text", { x: left - 6, y: y + 13, "text-anchor": "end", class: "lab" + (t.critical ? " crit" : "") }, s, t.label);
        const r = el("rect", { x: x(t.start_week), y: y + 2, width: Math.max(x(t.end_week) - x(t.start_week), 2), height: rowH - 6, fill: t.critical ? CRIT : GREY, class: "bar task" }, s);
        tip(r, `${t.label}: week ${fmt(t.start_week)}–${fmt(t.end_week)}` + (t.start_date ? ` (${t.start_date} – ${t.end_date})` : "") + (t.critical ? ", critical path" : "") + `; ${t.source.kind}: ${t.source.ref}`);
      });
      return s;
    },
    "whatif": (host) => {
      const w = plan.schedule.whatif;
      const base = plan.schedule.figures.find((f) => f.id === "weeks_to_chip").value;
      const labels = ["plan as is"].concat(w.map((x) => x.label));
      const vals = [base].concat(w.map((x) => x.finish_week));
      return hbars(host, labels, [{ name: "weeks", values: vals }], [C3], Math.max(...vals), "weeks to boards running", 380);
    },
    "floorplan": (host) => {
      const fp = plan.floorplan, img = document.getElementById("floorplan-image");
      const die = fp.dies[Number(host.dataset.die || 0)];
      const W = 800, H = Math.round(W * die.size_nm[1] / die.size_nm[0]);
      const s = svg(host, W, H);
      el("rect", { x: 0, y: 0, width: W, height: H, fill: "#ffffff", stroke: "#333" }, s);
      if (img && fp.image) {  // the picture has margins (title, legend, scale bar): place its die on the die
        const b = fp.image_box || [0, 0, 1, 1], iw = W / b[2], ih = H / b[3];
        el("image", { href: img.getAttribute("src"), x: -b[0] * iw, y: -b[1] * ih, width: iw, height: ih, preserveAspectRatio: "none" }, s);
      }
      die.blocks.forEach((b, i) => {
        const c = blockColor(i);
        const g = el("g", { class: "block" }, s);
        tip(g, `${b.block}: ${b.tiles} tiles`);
        b.rects.forEach((r) => el("rect", { x: r[0] * W, y: r[1] * H, width: r[2] * W, height: r[3] * H, fill: c, "fill-opacity": fp.image ? 0.25 : 0.6, stroke: c }, g));
        el("text", { x: b.label[0] * W, y: b.label[1] * H, "text-anchor": "middle", class: "blk" }, g, b.block);
      });
      return s;
    },
  };

  let drawn = 0;
  document.querySelectorAll("[data-chart]").forEach((host) => {
    const f = charts[host.dataset.chart];
    if (f && f(host)) { host.dataset.rendered = "1"; drawn++; }
  });
  document.body.dataset.charts = String(drawn);
})();
