// Run page: status, progress, error text and live Plotly charts fed by Server-Sent Events.
"use strict";

const RUN_ID = Number(window.location.pathname.split("/").filter(Boolean).pop());

const CHARTS = [
  { id: "chart-losses", title: "Training losses (per optimizer step)", traces: [
    ["train/soft_loss", "soft = T²·KL(p_T ‖ q_T)"],
    ["train/hard_loss", "hard = CE(student at T=1, labels)"],
    ["train/loss", "total = α·soft + (1−α)·hard"],
  ] },
  { id: "chart-contrib", title: "What the total is made of: α·soft + (1−α)·hard", traces: [
    ["contrib/soft", "α·soft (teacher)", null, "one"],
    ["contrib/hard", "(1−α)·hard (labels)", null, "one"],
  ] },
  { id: "chart-eval", title: "Held-out (per eval interval)", traces: [
    ["eval/hard_loss", "hard (CE)"],
    ["eval/soft_loss", "soft (T²·KL at T)"],
    ["eval/kl_teacher", "KL(teacher ‖ student) at T=1"],
    ["eval/kl_true", "KL(truth ‖ student), demo language"],
  ] },
  { id: "chart-agreement", title: "Top-1 agreement with the teacher (held-out)", traces: [
    ["eval/top1_agreement", "top-1 agreement"],
  ], yrange: [0, 1] },
  { id: "chart-optim", title: "Optimizer", traces: [
    ["train/lr", "learning rate"],
    ["train/grad_norm", "grad norm (before clipping)", "y2"],
  ] },
];

const traceIndex = {};  // key -> {chart, index}
let run = null;
let source = null;

function initCharts() {
  for (const chart of CHARTS) {
    const data = chart.traces.map(([key, name, axis, stack], i) => {
      traceIndex[key] = { chart: chart.id, index: i };
      const trace = { x: [], y: [], name, mode: key.startsWith("eval/") ? "lines+markers" : "lines",
                      type: stack ? "scatter" : "scattergl", yaxis: axis || "y", connectgaps: false };
      if (stack) Object.assign(trace, { stackgroup: stack, line: { width: 0.5 } });
      return trace;
    });
    const layout = {
      title: { text: chart.title, font: { size: 14 } }, margin: { l: 55, r: 55, t: 40, b: 90 },
      xaxis: { title: { text: "step" } }, yaxis: { rangemode: "tozero", range: chart.yrange },
      legend: { orientation: "h", y: -0.32 }, height: 340, uirevision: "keep",
    };
    if (chart.traces.some((t) => t[2] === "y2")) layout.yaxis2 = { overlaying: "y", side: "right", showgrid: false };
    Plotly.newPlot(chart.id, data, layout, { responsive: true, displaylogo: false });
  }
}

function withContributions(points) {
  // The stacked chart: each step's soft and hard loss weighted by α and 1 − α.
  const alpha = run.config.alpha;
  const out = points.slice();
  for (const p of points) {
    if (p.key === "train/soft_loss") out.push({ ...p, key: "contrib/soft", value: p.value === null ? null : alpha * p.value });
    if (p.key === "train/hard_loss") out.push({ ...p, key: "contrib/hard", value: p.value === null ? null : (1 - alpha) * p.value });
  }
  return out;
}

function addPoints(points) {
  points = withContributions(points);
  const byChart = {};
  for (const p of points) {
    const t = traceIndex[p.key];
    if (!t) continue;
    const c = (byChart[t.chart] ||= {});
    const tr = (c[t.index] ||= { x: [], y: [] });
    tr.x.push(p.step);
    tr.y.push(p.value);  // null for NaN/inf: drawn as a gap
  }
  for (const [chartId, traces] of Object.entries(byChart)) {
    const idx = Object.keys(traces).map(Number);
    Plotly.extendTraces(chartId, { x: idx.map((i) => traces[i].x), y: idx.map((i) => traces[i].y) }, idx);
  }
}

function renderRun() {
  document.title = `distillscope — ${run.name}`;
  document.getElementById("run-title").textContent = `#${run.id} ${run.name}`;
  const status = document.getElementById("run-status");
  status.textContent = run.status;
  status.className = `status status-${run.status}`;
  const bar = document.getElementById("run-progress");
  bar.max = run.total_steps;
  bar.value = run.step;
  document.getElementById("run-step").textContent = `step ${run.step} / ${run.total_steps}${eta()}`;
  document.getElementById("cancel-button").hidden = !["queued", "running"].includes(run.status);
  document.getElementById("inspect-link").href =
    `/inspect?models=${encodeURIComponent(run.config.teacher)},run:${run.id}`;
  const err = document.getElementById("run-error");
  err.hidden = !run.error;
  err.textContent = run.error ? `This run ${run.status === "lost" ? "was lost" : "failed"}: ${run.error}` : "";
  const c = run.config;
  const soft = run.latest["train/soft_loss"], hard = run.latest["train/hard_loss"];
  document.getElementById("explainer").textContent =
    `total = α·soft + (1−α)·hard = ${fmt(c.alpha)}·${fmt(soft)} + ${fmt(1 - c.alpha)}·${fmt(hard)}. ` +
    `The soft loss compares the student at T = ${fmt(c.temperature)} with the teacher at the same T ` +
    `(${c.divergence}), scaled by T² so its gradient keeps its size as T changes; ` +
    `the hard loss compares the student at T = 1 with the data's labels.`;
  const tbody = document.querySelector("#config-table tbody");
  tbody.replaceChildren();
  for (const [k, v] of Object.entries(c)) {
    tbody.append(el("tr", {}, null));
    tbody.lastChild.append(el("th", {}, k), el("td", {}, Array.isArray(v) ? v.join(", ") : v));
  }
}

async function cancelRun() {
  const res = await api(`/api/runs/${RUN_ID}/cancel`, { method: "POST" });
  if (!res.ok) alert(res.body && res.body.detail ? res.body.detail : `HTTP ${res.status}`);
  await refreshRun();
}

async function download(kind) {
  const res = await api(`/api/runs/${RUN_ID}/metrics`);
  const metrics = res.body.metrics;
  let text, type;
  if (kind === "json") {
    text = JSON.stringify({ run: run, metrics }, null, 1);
    type = "application/json";
  } else {
    const lines = ["key,step,value,time,flag"];
    for (const [key, pts] of Object.entries(metrics)) {
      for (const p of pts) lines.push([key, p.step, p.value ?? "", p.time, p.flag ?? ""].join(","));
    }
    text = lines.join("\n") + "\n";
    type = "text/csv";
  }
  const a = el("a", { href: URL.createObjectURL(new Blob([text], { type })),
                      download: `run-${RUN_ID}-metrics.${kind}` });
  document.body.append(a);
  a.click();
  a.remove();
}

function eta() {
  if (run.status !== "running" || !run.started_at || run.step < 2) return "";
  const elapsed = (Date.now() - Date.parse(run.started_at)) / 1000;
  const left = (elapsed / run.step) * (run.total_steps - run.step);
  return ` · about ${Math.max(0, Math.round(left))} s left`;
}

async function refreshRun() {
  const res = await api(`/api/runs/${RUN_ID}`);
  if (!res.ok) {
    document.getElementById("run-title").textContent = `Run ${RUN_ID} not found`;
    return false;
  }
  run = res.body;
  renderRun();
  return true;
}

function stream() {
  source = new EventSource(`/api/runs/${RUN_ID}/stream`);
  source.addEventListener("points", (e) => addPoints(JSON.parse(e.data).points));
  source.addEventListener("status", () => refreshRun());
  source.addEventListener("done", () => { source.close(); refreshRun(); });
}

document.getElementById("cancel-button").addEventListener("click", cancelRun);
document.getElementById("download-csv").addEventListener("click", () => download("csv"));
document.getElementById("download-json").addEventListener("click", () => download("json"));

(async () => {
  if (!(await refreshRun())) return;
  initCharts();
  stream();
  setInterval(() => { if (run && !["succeeded", "failed", "cancelled", "lost"].includes(run.status)) refreshRun(); }, 2000);
})();
