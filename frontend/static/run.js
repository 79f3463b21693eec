// Run page: status, progress, error text and live Plotly charts fed by Server-Sent Events.
import { ACTIVE, ENDED, api, el, errorText, fmt } from "./common.js";

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
let cancelAsked = false;  // pressed here (and not refused): "cancelling…" even before the
                          // api answers, and whatever an older refresh still in flight says

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
  // A cancel asked for (here, or before a reload) and not yet carried out by the worker.
  const active = ACTIVE.includes(run.status);
  const cancelling = active && (run.cancel_requested || cancelAsked);
  const status = document.getElementById("run-status");
  status.textContent = cancelling ? "cancelling…" : run.status;
  status.className = `status status-${cancelling ? "cancelling" : run.status}`;
  const bar = document.getElementById("run-progress");
  bar.max = run.total_steps;
  bar.value = run.step;
  document.getElementById("run-step").textContent = `step ${run.step} / ${run.total_steps}${cancelling ? "" : eta()}`;
  const cancel = document.getElementById("cancel-button");
  cancel.hidden = !active;
  cancel.disabled = cancelling;
  cancel.textContent = cancelling ? "Cancelling…" : "Cancel run";
  document.getElementById("inspect-link").href = inspectUrl(`run:${run.id}`);
  const err = document.getElementById("run-error");
  err.hidden = !run.error;
  // Only a failed run ends with an error; a lost one (its worker died) is queued again.
  err.textContent = !run.error ? ""
    : run.status === "failed" ? `This run failed: ${run.error}`
    : `This run was interrupted: ${run.error}`;
  renderExplainer();
  renderMeta();
  const c = run.config;
  const tbody = document.querySelector("#config-table tbody");
  tbody.replaceChildren();
  for (const [k, v] of Object.entries(c)) {
    tbody.append(el("tr", {}, null));
    tbody.lastChild.append(el("th", {}, k), el("td", {}, Array.isArray(v) ? v.join(", ") : v));
  }
}

let teacherInfo = null;  // the run's teacher as /api/models describes it (role, profile)

function wholePct(x) { return `${Math.round(x * 100)} %`; }

// Why soften this run's teacher, said with what the kit measured of it when it did: how often
// its top token holds ≥ 0.9 on held-out text, how much of the truth's top 5 it ranks right, and
// its KL to the truth at T = 1 and at its best T (of 1 to 8).
export function softenText(name, info) {
  const p = info && info.profile;
  const tail = "Too high a T flattens everything toward uniform, known or not.";
  if (!p) {
    return `A teacher fine-tuned on one-hot labels, such as demo-teacher-finetuned, can put nearly all its mass on ` +
      `one token; at T = 1 its distribution then says little more than the label does. Dividing by T > 1 lifts the ` +
      `runner-ups: those that rise well above the uniform share are what the teacher ranks next, the “dark ` +
      `knowledge” a label cannot carry. ${tail} How peaked this run's teacher (${name}) is, the inspector shows.`;
  }
  if (p.best_t === undefined || p.best_t === null) return realSoftenText(name, p, tail);
  const closest = p.best_t === 1 ? "no T from 1.25 to 8 brings it closer to the truth"
    : `it is closest to the truth at T = ${p.best_t} (KL ${fmt(p.kl_true_best_t, 3)} against ${fmt(p.kl_true_t1, 3)} at T = 1)`;
  // What T lifts is the teacher's own ranking: worth saying when that ranking is off.
  const ranking = p.top5_overlap < 0.85
    ? ` But what it ranks is partly wrong: its top 5 hold only ${fmt(p.top5_overlap, 2)} of the truth's top 5, and T cannot reorder them.`
    : "";
  const share = `${wholePct(p.confident_share)} of the held-out positions where the language has a choice`;
  if (p.confident_share >= 0.5) {
    return `This run's teacher, ${name}, is confident: its top token holds at least 0.9 at ${share}, so at T = 1 its ` +
      `distribution says little more than the label does. Dividing by T > 1 lifts its runner-ups; those that rise well ` +
      `above the uniform share are what it ranks next, the “dark knowledge” a label cannot carry, and ${closest}.` +
      `${ranking} ${tail}`;
  }
  const how = p.confident_share >= 0.1 ? `is confident at some positions only: its top token holds at least 0.9 at ${share}`
    : `is not peaked: its top token holds at least 0.9 at only ${share}`;
  return `This run's teacher, ${name}, ${how}, so at T = 1 it mostly shows its runner-ups already, and ${closest}.` +
    `${ranking} Softening is meant for a peaked teacher, one fine-tuned on one-hot labels such as demo-teacher-finetuned; ` +
    `whether its students gain from it, the built-in experiment measures. ${tail}`;
}

// A teacher without a known truth (the real kit's): what was measured on its own held-out
// answers — how often its top token holds ≥ 0.9, and how much of its mass its top 8 keep at
// each T (on a 49,152-token vocabulary a high T moves most of it into the tail).
function realSoftenText(name, p, tail) {
  const share = `${wholePct(p.confident_share)} of the answer positions it was measured on`;
  const how = p.confident_share >= 0.5 ? `is confident: its top token holds at least 0.9 at ${share}`
    : p.confident_share >= 0.1 ? `is confident at some positions only: its top token holds at least 0.9 at ${share}`
    : `is not peaked: its top token holds at least 0.9 at only ${share}`;
  const mean = p.top1_mean !== undefined ? ` (${fmt(p.top1_mean, 2)} on its top token on average)` : "";
  const byT = Object.entries(p.top8_mass_by_t || {}).map(([t, m]) => [Number(t), m]).sort((a, b) => a[0] - b[0]);
  let mass = "";
  if (byT.length) {
    const v = p.vocab ? ` of its ${p.vocab.toLocaleString("en-US")} tokens` : "";
    mass = ` Its top 8${v} keep ${byT.map(([t, m]) => `${m < 0.01 ? "under 1 %" : wholePct(m)} of its mass at T = ${t}`).join(", ")}`;
    const [tHot, mHot] = byT[byT.length - 1];
    mass += mHot < 0.5 && tHot > 1
      ? `: at T = ${tHot} most of the softened target is the long tail, not the few runner-ups.`
      : ".";
  }
  return `This run's teacher, ${name}, ${how}${mean}.${mass} Dividing by T > 1 lifts its runner-ups; how far, ` +
    `and whether the student gains from it, the real kit's experiment measures. ${tail}`;
}

async function loadTeacherInfo() {
  const res = await api("/api/models");
  teacherInfo = (res.body || []).find((m) => m.name === run.config.teacher) || null;
  renderExplainer();
}

const DIVERGENCE = {
  forward_kl: "KL(teacher_T ‖ student_T)",
  reverse_kl: "KL(student_T ‖ teacher_T)",
  jsd: "JSD_β(teacher_T, student_T)",
};

function renderExplainer() {
  // Every sentence uses this run's own numbers: α, T and the latest soft and hard losses.
  const c = run.config, T = c.temperature, a = c.alpha;
  const soft = run.latest["train/soft_loss"], hard = run.latest["train/hard_loss"];
  const has = soft !== undefined && soft !== null && hard !== undefined && hard !== null;
  const total = has ? a * soft + (1 - a) * hard : null;
  document.getElementById("explainer").textContent = a === 0
    ? `α = 0: this run learns from the labels alone (plain fine-tuning); the teacher's soft loss is ` +
      `logged for comparison but carries no weight. It is the baseline distillation has to beat.`
    : `The student learns from two signals at once: the teacher's softened next-token distribution ` +
      `(soft loss, weight α = ${fmt(a)}) and the data's labels (hard loss, weight 1 − α = ${fmt(1 - a)}).`;
  document.getElementById("why-formula").textContent =
    `loss = α · T² · ${DIVERGENCE[c.divergence] || c.divergence} + (1 − α) · CE(student_1, label)` +
    (has ? `\n     = ${fmt(a)} · ${fmt(soft)} + ${fmt(1 - a)} · ${fmt(hard)} = ${fmt(total)}` +
           `   (step ${run.step}; “soft” is already multiplied by T² = ${fmt(T * T)})` : "\n(numbers appear with the first step)");
  document.getElementById("why-same-t").textContent =
    `The soft loss divides both models' logits by the same T = ${fmt(T)}: it compares the student ` +
    `at T with the teacher at T, and so asks the student's logits to match the teacher's shape. It ` +
    `does not compare the student at T with itself at T = 1, and the hard loss stays at T = 1: ` +
    `after training the student is used at T = 1.`;
  document.getElementById("why-t2").textContent =
    `Dividing the logits by T shrinks the soft loss's gradients with respect to them by about 1/T²` +
    ` (Hinton et al., 2015). Multiplying by T² = ${fmt(T * T)} undoes that, so that α keeps the same ` +
    `meaning at any T: without it, at T = ${fmt(T)} the teacher's term would weigh ` +
    `${T === 1 ? "the same" : `${fmt(T * T)}× less`} than α says.`;
  document.getElementById("why-soften").textContent = softenText(c.teacher, teacherInfo) + " ";
  const see = el("a", { href: document.getElementById("inspect-link").href, id: "why-inspect" },
                 "See it on a prompt in the inspector, for this run's teacher and student.");
  document.getElementById("why-soften").append(see);
}

function renderMeta() {
  const tags = document.getElementById("run-tags");
  tags.replaceChildren(...run.tags.map((t) => el("span", { class: "tag" }, t)));
  const sweep = document.getElementById("run-sweep");
  sweep.replaceChildren();
  if (run.sweep_id) sweep.append(el("a", { href: `/?sweep=${run.sweep_id}` }, `part of sweep #${run.sweep_id}`));
  document.getElementById("run-note").textContent = run.note || "";
}

function bindMeta() {
  const editor = document.getElementById("meta-editor");
  document.getElementById("edit-meta").addEventListener("click", () => {
    document.getElementById("meta-tags").value = run.tags.join(", ");
    document.getElementById("meta-note").value = run.note || "";
    editor.hidden = false;
  });
  document.getElementById("meta-cancel").addEventListener("click", () => { editor.hidden = true; });
  document.getElementById("meta-save").addEventListener("click", async () => {
    const body = {};  // only what changed
    const tags = document.getElementById("meta-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
    const note = document.getElementById("meta-note").value;
    if (tags.join("\n") !== run.tags.join("\n")) body.tags = tags;
    if (note !== (run.note || "")) body.note = note;
    const res = await api(`/api/runs/${RUN_ID}`, { method: "PATCH", body: JSON.stringify(body) });
    if (!res.ok) {
      document.getElementById("meta-error").textContent = errorText(res);
      return;
    }
    editor.hidden = true;
    document.getElementById("meta-error").textContent = "";
    run = res.body;
    renderRun();
  });
}

function inspectUrl(student) {
  // The inspector on this run's teacher and a student, at T = 1, the run's T and 4, with the
  // slider on the run's T.
  const T = run.config.temperature;
  const temps = [...new Set([1, T, 4])].sort((x, y) => x - y);
  const q = new URLSearchParams({ models: `${run.config.teacher},${student}`, temperatures: temps.join(", "), t: String(T) });
  return `/inspect?${q}`;
}

function nearestStudent(step, ckpts) {
  // The saved student closest to a step: a checkpoint (run:<id>@<step>) or the final one.
  const options = ckpts.steps.map((s) => ({ step: s, spec: `run:${RUN_ID}@${s}` }));
  if (ckpts.final && !ckpts.steps.includes(ckpts.final_step)) options.push({ step: ckpts.final_step, spec: `run:${RUN_ID}` });
  let best = null;
  for (const o of options) if (!best || Math.abs(o.step - step) < Math.abs(best.step - step)) best = o;
  return best;
}

async function openInspectorAt(step) {
  const res = await api(`/api/runs/${RUN_ID}/checkpoints`);
  const best = res.ok ? nearestStudent(step, res.body) : null;
  if (!best) {
    document.getElementById("click-error").textContent =
      `No checkpoint of this run is saved yet (one is written every ${run.config.checkpoint_interval || run.config.eval_interval} steps).`;
    return;
  }
  window.location.href = inspectUrl(best.spec);
}

async function cancelRun() {
  // Said at once: a running run stops only at its next step, which can take a while.
  const error = document.getElementById("cancel-error");
  error.textContent = "";
  cancelAsked = true;
  renderRun();
  let res;
  try {
    res = await api(`/api/runs/${RUN_ID}/cancel`, { method: "POST" });
  } catch (e) {
    res = { ok: false, status: 0, body: { detail: `could not reach the api: ${e}` } };
  }
  if (res.ok) run = res.body;  // its cancel_requested keeps "cancelling…" across a reload
  else {
    cancelAsked = false;
    error.textContent = `Could not cancel: ${errorText(res)}`;
  }
  renderRun();
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

bindMeta();

(async () => {
  if (!(await refreshRun())) return;
  loadTeacherInfo();
  initCharts();
  document.getElementById("chart-losses").on("plotly_click", (ev) => {
    if (ev.points && ev.points.length) openInspectorAt(ev.points[0].x);
  });
  stream();
  setInterval(() => { if (run && !ENDED.includes(run.status)) refreshRun(); }, 2000);
})();
