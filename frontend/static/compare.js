// Compare page: selected runs overlaid per metric; smoothing, x-axis, log y, grouping across
// seeds (mean line, min–max band), config diff, summary. The page state lives in the URL.
// The pure helpers are in compare-groups.js; compare-export.js saves what this draws as a file.
import { ENDED, MAX_COMPARED, METRIC_KEYS, el, fmt, plotlyLabel } from "./common.js";
import { drawExperiment } from "./compare-experiment.js";
import { exportHtml } from "./compare-export.js";
import { data, fetchMetrics, fetchRuns, takePrefetched, urlRunIds } from "./compare-data.js";
import {
  FIELD_NAMES, bandStats, configText, groupFields, groupLabel, groupRuns, hasValue, runCount, smoothEma,
} from "./compare-groups.js";
import { drawLlmExperiment, isLlmExperiment } from "./compare-llm.js";

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
// The page's settings (as in its URL); `unknownGroup`: a ?group= that is no field offered.
export const state = { runs: [], smooth: 0.6, x: "step", logy: false, group: "", diff: false, unknownGroup: "" };
const X_TITLES = { step: "step", time: "wall time (s)", tokens: "tokens seen" };
// The fields offered under "group by" ("" = no grouping, the default).
const GROUP_FIELDS = ["name", "temperature", "alpha", "divergence", "teacher", "student", "dataset", "seed", "learning_rate"];

function readUrl() {
  const q = new URLSearchParams(window.location.search);
  state.runs = urlRunIds();
  if (q.has("smooth")) state.smooth = Number(q.get("smooth"));
  state.x = q.get("x") || "step";
  state.logy = q.get("logy") === "1";
  // An unknown field (a typo, an old link) would draw no chart: no grouping, said on the page.
  const group = q.get("group") || "";
  state.group = GROUP_FIELDS.includes(group) ? group : "";
  state.unknownGroup = state.group === group ? "" : group;
  state.diff = q.get("diff") === "1";
}

function writeUrl() {
  const q = new URLSearchParams({ runs: state.runs.join(","), smooth: String(state.smooth), x: state.x,
    logy: state.logy ? "1" : "0", group: state.group, diff: state.diff ? "1" : "0" });
  const experiment = new URLSearchParams(window.location.search).get("experiment");
  if (experiment) q.set("experiment", experiment);
  history.replaceState(null, "", `/compare?${q}`);
}

function xs(run, pts) {
  if (state.x === "time") { const t0 = pts.length ? pts[0].time : 0; return pts.map((p) => p.time - t0); }
  if (state.x === "tokens") { const per = run.config.batch_size * run.config.seq_len; return pts.map((p) => p.step * per); }
  return pts.map((p) => p.step);
}

function runTitle(run) { return `#${run.id} ${run.name}`; }  // for text nodes
function label(run) { return plotlyLabel(runTitle(run)); }  // for Plotly, which reads some HTML

function drawCharts() {
  const box = document.getElementById("compare-charts");
  box.replaceChildren();
  const keys = shownKeys();
  const divs = keys.map(([key]) => {
    const card = el("div", { class: "card chart-card" });
    const div = el("div", { class: "chart", id: `cmp-${key.replace("/", "-")}` });
    card.append(div);
    box.append(card);
    return div;
  });
  // Resolves once every chart is drawn (init marks the page ready on it).
  return Promise.all(keys.map(([key, title], ki) => {
    const traces = state.group ? groupTraces(key) : runTraces(key);
    return Plotly.newPlot(divs[ki], traces, {
      title: { text: title, font: { size: 14 } }, height: 320, margin: { l: 55, r: 10, t: 40, b: 80 },
      xaxis: { title: { text: X_TITLES[state.x] } },
      yaxis: { type: state.logy ? "log" : "linear" }, legend: { orientation: "h", y: -0.3, traceorder: "normal" },
    }, { responsive: true, displaylogo: false });
  }));
}

// The metrics charted and summarised: all of them, except the demo language's KL to the truth
// once the runs have held-out numbers but none of that one (runs on real data have no truth).
export function shownKeys() {
  const has = (key) => data.runs.some((r) => ((data.metrics[r.id] || {})[key] || []).length);
  const evaluated = METRIC_KEYS.some(([key]) => key.startsWith("eval/") && has(key));
  return METRIC_KEYS.filter(([key]) => key !== "eval/kl_true" || has(key) || !evaluated);
}

// A run's series as drawn: x per the x-axis, y smoothed (eval metrics are few and not smoothed).
function runSeries(run, key) {
  const pts = (data.metrics[run.id] || {})[key] || [];
  const raw = pts.map((p) => p.value);
  return { pts, x: xs(run, pts), raw, y: key.startsWith("eval/") ? raw : smoothEma(raw, state.smooth) };
}

function runTraces(key) {
  const traces = [];
  data.runs.forEach((run, i) => {
    const { pts, x, raw: y, y: smoothed } = runSeries(run, key);
    const color = COLORS[i % COLORS.length];
    if (state.smooth > 0 && !key.startsWith("eval/")) {
      traces.push({ x, y, mode: "lines", name: `${label(run)} (raw)`, showlegend: false,
                    line: { color, width: 1 }, opacity: 0.25, hoverinfo: "skip" });
    }
    // Markers only on short series: each one is an SVG node, thousands make the draw slow.
    const markers = key.startsWith("eval/") && pts.length <= 200;
    traces.push({ x, y: smoothed, mode: markers ? "lines+markers" : "lines",
                  name: label(run), line: { color, width: 2 } });
  });
  return traces;
}

export function groupTraces(key) {
  const fields = groupFields(state.group, data.runs);
  const traces = [];
  groupRuns(data.runs, fields).forEach((members, i) => {
    // A run with no point of this metric yet (queued, or before its first eval) is left out.
    const series = members.map((run) => ({ run, ...runSeries(run, key) })).filter((s) => s.y.some(hasValue));
    if (!series.length) return;
    const band = bandStats(series);
    const color = COLORS[i % COLORS.length];
    const n = series.length === members.length ? runCount(members.length) : `${series.length} of ${runCount(members.length)}`;
    // Say why a line stops before its longest run does: the shortest run ends there.
    const lastX = (s) => s.x[s.y.findLastIndex(hasValue)];
    const shortest = series.reduce((a, b) => (lastX(b) < lastX(a) ? b : a));
    const early = band.x.length && series.some((s) => lastX(s) > band.x[band.x.length - 1])
      ? `, line ends with #${shortest.run.id}: ${shortest.run.status}` : "";
    const name = plotlyLabel(`${groupLabel(fields, members[0].config)} (${n}${early})`);
    traces.push({ x: band.x, y: band.min, mode: "lines", line: { width: 0, color }, showlegend: false, hoverinfo: "skip" });
    traces.push({ x: band.x, y: band.max, mode: "lines", line: { width: 0, color }, fill: "tonexty",
                  fillcolor: hexToRgba(color, 0.2), showlegend: false, hoverinfo: "skip" });
    traces.push({ x: band.x, y: band.mean, mode: "lines", name, line: { color, width: 2 } });
  });
  return traces;
}

// What grouping does, in words, for the hint under the controls.
function groupHint() {
  if (!state.group) return "";
  const others = groupFields(state.group, data.runs).slice(1).map((f) => FIELD_NAMES[f] || f);
  const also = others.length === 1 ? `, and by ${others[0]}, which also differs among these runs`
    : others.length ? `, and by ${others.join(", ")}, which also differ among these runs` : "";
  return `Grouped by ${FIELD_NAMES[state.group] || state.group}${also}: a group's runs differ only in seed, name or tags. ` +
    "A line is their mean and the band their min–max, drawn where every run of the group has a value " +
    "(interpolated between its points), so a line stops where its shortest run ends.";
}

// The page's settings in words, for the exported file.
function exportSettings() {
  return [`smoothing ${state.smooth.toFixed(2)} (debiased EMA; eval metrics unsmoothed)`, `x-axis: ${X_TITLES[state.x]}`,
    `y: ${state.logy ? "log" : "linear"}`, state.diff ? "config: only the fields that differ" : "config: every field"].join(" · ");
}

function hexToRgba(hex, a) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255},${(n >> 8) & 255},${n & 255},${a})`;
}

function drawSummary() {
  const table = document.getElementById("summary-table");
  const head = el("tr");
  head.append(el("th", {}, "metric"));
  for (const run of data.runs) head.append(el("th", {}, runTitle(run)));
  table.tHead.replaceChildren(head);
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const [key, title, better] of shownKeys()) {
    const row = el("tr");
    row.append(el("th", {}, title));
    for (const run of data.runs) {
      const vals = ((data.metrics[run.id] || {})[key] || []).map((p) => p.value).filter((v) => v !== null);
      const final = vals.length ? vals[vals.length - 1] : null;
      const best = vals.length ? (better === "max" ? Math.max(...vals) : Math.min(...vals)) : null;
      row.append(el("td", { class: "num" }, `${fmt(final)} (best ${fmt(best)})`));
    }
    body.append(row);
  }
}

function drawConfig() {
  const table = document.getElementById("config-compare");
  const head = el("tr");
  head.append(el("th", {}, "field"));
  for (const run of data.runs) head.append(el("th", {}, runTitle(run)));
  table.tHead.replaceChildren(head);
  const body = table.tBodies[0];
  body.replaceChildren();
  const fields = [...new Set(data.runs.flatMap((r) => Object.keys(r.config)))];
  for (const f of fields) {
    const values = data.runs.map((r) => JSON.stringify(r.config[f]));
    const differs = new Set(values).size > 1;
    if (state.diff && !differs) continue;
    const row = el("tr", { class: differs ? "differs" : null, dataset: { field: f } });
    row.append(el("th", {}, f));
    for (const r of data.runs) row.append(el("td", {}, configText(r.config[f])));
    body.append(row);
  }
}

function redraw() {
  writeUrl();
  document.getElementById("smooth-value").textContent = state.smooth.toFixed(2);
  const hint = document.getElementById("group-hint");
  hint.textContent = groupHint();
  hint.hidden = !hint.textContent;
  document.getElementById("group-note").textContent = state.unknownGroup
    ? `There is no grouping by “${state.unknownGroup}” (the link's group=): showing every run, no grouping.` : "";
  const drawn = drawCharts();
  drawSummary();
  drawConfig();
  return drawn;
}

async function load() {
  // The first load takes over the requests compare-data.js started from the page's head.
  const early = takePrefetched(state.runs);
  data.runs = (await (early ? early.runs : fetchRuns(state.runs))).filter(Boolean);
  document.getElementById("compare-title").textContent = `Compare ${data.runs.length} runs`;
  data.metrics = {};
  if (!data.runs.length) return;
  // A run that is gone makes the early request fail: ask again for the runs that exist.
  const body = (early && (await early.metrics)) || (await fetchMetrics(data.runs.map((r) => r.id)));
  document.getElementById("compare-error").textContent = body ? "" :
    `Could not load the runs' metrics (at most ${MAX_COMPARED} runs can be compared at once).`;
  for (const [id, byKey] of Object.entries(body ? body.runs : {})) {
    data.metrics[id] = {};
    for (const [key, c] of Object.entries(byKey)) {
      data.metrics[id][key] = c.step.map((step, i) => ({ step, value: c.value[i], time: c.time[i], flag: c.flag ? c.flag[i] : null }));
    }
  }
  if (isLlmExperiment()) drawLlmExperiment();
  else if (new URLSearchParams(window.location.search).has("experiment")) drawExperiment();
}

async function initCompare() {
  readUrl();
  await load();
  const group = document.getElementById("group");
  for (const f of GROUP_FIELDS) group.append(el("option", { value: f }, f));
  const smooth = document.getElementById("smooth");
  smooth.value = String(state.smooth);
  smooth.addEventListener("input", () => { state.smooth = Number(smooth.value); redraw(); });
  const xaxis = document.getElementById("xaxis");
  xaxis.value = state.x;
  xaxis.addEventListener("change", () => { state.x = xaxis.value; redraw(); });
  const logy = document.getElementById("logy");
  logy.checked = state.logy;
  logy.addEventListener("change", () => { state.logy = logy.checked; redraw(); });
  group.value = state.group;
  group.addEventListener("change", () => { state.group = group.value; state.unknownGroup = ""; redraw(); });
  const diff = document.getElementById("diff-only");
  diff.checked = state.diff;
  diff.addEventListener("change", () => { state.diff = diff.checked; redraw(); });
  await redraw();
  document.getElementById("export").addEventListener("click", () =>
    exportHtml(exportSettings(), data.runs.map((r) => r.id)));
  document.getElementById("export").disabled = false;
  document.body.dataset.ready = "1";  // first full draw done: tests and bench/compare_page.py wait on it
  // Runs still going (e.g. the built-in experiment): refresh until every one has ended.
  const timer = setInterval(async () => {
    if (data.runs.every((r) => ENDED.includes(r.status))) { clearInterval(timer); return; }
    await load();
    redraw();
  }, 4000);
}

initCompare();
