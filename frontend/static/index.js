// Runs page: the launch form (presets, inline validation errors, the sweep builder) and the
// live runs table (filters, sort, sweeps as groups, sparklines, tags and notes).
"use strict";

const FIELDS = [
  { name: "name", type: "text", label: "name" },
  { name: "teacher", type: "text", list: "models", label: "teacher" },
  { name: "student", type: "text", list: "models", label: "student" },
  { name: "dataset", type: "text", list: "datasets", label: "dataset" },
  { name: "temperature", type: "number", label: "temperature T", help: "softens both distributions in the soft loss" },
  { name: "alpha", type: "number", label: "α (soft weight)", help: "0 = labels only, 1 = teacher only" },
  { name: "divergence", type: "select", options: ["forward_kl", "reverse_kl", "jsd"], label: "divergence" },
  { name: "beta", type: "number", label: "β (jsd only)" },
  { name: "max_steps", type: "number", label: "steps" },
  { name: "batch_size", type: "number", label: "batch size" },
  { name: "grad_accum_steps", type: "number", label: "grad. accumulation" },
  { name: "seq_len", type: "number", label: "sequence length" },
  { name: "learning_rate", type: "number", label: "learning rate" },
  { name: "warmup_steps", type: "number", label: "warm-up steps", help: "empty: 10 % of the steps" },
  { name: "eval_interval", type: "number", label: "eval every" },
  { name: "seed", type: "number", label: "seed" },
  { name: "tags", type: "text", label: "tags", help: "comma-separated" },
  // Under "More settings".
  { name: "weight_decay", type: "number", label: "weight decay", more: true },
  { name: "max_grad_norm", type: "number", label: "max grad norm", help: "clip the gradient's norm to this", more: true },
  { name: "eval_batches", type: "number", label: "eval batches", more: true },
  { name: "checkpoint_interval", type: "number", label: "checkpoint every", help: "empty: every eval", more: true },
  { name: "keep_checkpoints", type: "number", label: "resumable checkpoints kept", help: "0 = all", more: true },
  { name: "keep_checkpoint_weights", type: "number", label: "older checkpoints' weights kept",
    help: "spread over the run, for the inspector; 0 = none", more: true },
  { name: "teacher_cache_k", type: "number", label: "teacher-logit cache k",
    help: "empty: no cache; reuse the teacher's top-k logits across runs (forward_kl)", more: true },
];

let presets = [];
const selected = new Set();

function updateCompare() {
  const b = document.getElementById("compare-button");
  b.disabled = selected.size < 2;
  b.textContent = selected.size >= 2 ? `Compare ${selected.size} runs` : "Compare selected";
}

function buildForm() {
  const main = document.getElementById("fields");
  const more = el("details", { id: "more-settings" });
  more.append(el("summary", {}, "More settings"));
  main.after(more);
  for (const f of FIELDS) {
    const box = f.more ? more : main;
    const id = `f-${f.name}`;
    const row = el("div", { class: "field", dataset: { field: f.name } });
    row.append(el("label", { for: id }, f.label));
    let input;
    if (f.type === "select") {
      input = el("select", { id, name: f.name });
      for (const o of f.options) input.append(el("option", { value: o }, o));
    } else {
      input = el("input", { id, name: f.name, type: "text", list: f.list ? `list-${f.list}` : null,
                            inputmode: f.type === "number" ? "decimal" : null, autocomplete: "off" });
    }
    row.append(input);
    if (f.help) row.append(el("small", { class: "help" }, f.help));
    row.append(el("small", { class: "field-error", id: `err-${f.name}`, role: "alert" }));
    box.append(row);
  }
  for (const list of ["models", "datasets"]) document.body.append(el("datalist", { id: `list-${list}` }));
}

function fillForm(config) {
  for (const f of FIELDS) {
    const input = document.getElementById(`f-${f.name}`);
    const v = config[f.name];
    input.value = v === undefined || v === null ? "" : (Array.isArray(v) ? v.join(", ") : String(v));
  }
  clearErrors();
}

function readForm() {
  const body = {};
  for (const f of FIELDS) {
    const raw = document.getElementById(`f-${f.name}`).value.trim();
    if (raw === "") continue;  // the api's default applies (or it says the field is required)
    if (f.name === "tags") body.tags = raw.split(",").map((t) => t.trim()).filter(Boolean);
    else if (f.type === "number" && raw !== "" && !Number.isNaN(Number(raw))) body[f.name] = Number(raw);
    else body[f.name] = raw;  // the api says what is wrong with it
  }
  return body;
}

function clearErrors() {
  document.querySelectorAll(".field-error").forEach((n) => (n.textContent = ""));
  document.querySelectorAll(".field.invalid").forEach((n) => n.classList.remove("invalid"));
  document.getElementById("form-error").textContent = "";
}

function showErrors(detail) {
  const general = [];
  for (const err of Array.isArray(detail) ? detail : [{ msg: String(detail) }]) {
    const loc = err.loc || [];
    const field = loc[0] === "body" ? loc[1] : undefined;
    const slot = field !== undefined && document.getElementById(`err-${field}`);
    if (slot) {
      slot.textContent = err.msg;
      slot.parentElement.classList.add("invalid");
      const more = slot.closest("details");
      if (more) more.open = true;  // an error under "More settings" must be seen
    } else {
      general.push(field ? `${field}: ${err.msg}` : err.msg);
    }
  }
  document.getElementById("form-error").textContent = general.join("\n");
}

async function launch(event) {
  event.preventDefault();
  clearErrors();
  const button = document.getElementById("launch-button");
  button.disabled = true;
  try {
    const res = await api("/api/runs", { method: "POST", body: JSON.stringify(readForm()) });
    if (res.status === 201) window.location.href = `/runs/${res.body.id}`;
    else showErrors(res.body ? res.body.detail : `HTTP ${res.status}`);
  } catch (e) {
    showErrors(`could not reach the api: ${e}`);
  } finally {
    button.disabled = false;
  }
}

async function loadCatalog() {
  const [models, datasets, pre] = await Promise.all([api("/api/models"), api("/api/datasets"), api("/api/presets")]);
  for (const [list, res] of [["models", models], ["datasets", datasets]]) {
    const node = document.getElementById(`list-${list}`);
    for (const item of res.body || []) node.append(el("option", { value: item.name }, item.description || item.model_type || ""));
  }
  presets = pre.body || [];
  const select = document.getElementById("preset");
  for (const p of presets) select.append(el("option", { value: p.id }, p.label));
  select.addEventListener("change", () => applyPreset(select.value));
  if (presets.length) applyPreset(presets[0].id);
}

function applyPreset(id) {
  const p = presets.find((x) => x.id === id);
  if (!p) return;
  fillForm(p.config);
  document.getElementById("preset-description").textContent = p.description;
}

// ---- The runs table: filters and sort (kept in the URL), sweeps as groups, sparklines, and
// an inline editor for tags and the note.
const view = { status: "", tag: "", q: "", sort: "-id", sweep: "" };
const expanded = new Set();   // sweep ids shown open
const sparks = {};            // run id -> { step, points }
let editing = null;           // run id whose editor is open (the table then pauses refreshing)
let lastList = null;

function readView() {
  const q = new URLSearchParams(window.location.search);
  for (const k of Object.keys(view)) if (q.has(k)) view[k] = q.get(k);
  if (view.sweep) expanded.add(Number(view.sweep));  // opened from a run page: show its sweep
  document.getElementById("filter-status").value = view.status;
  document.getElementById("filter-text").value = view.q;
}

function writeView() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(view)) if (v && !(k === "sort" && v === "-id")) q.set(k, v);
  history.replaceState(null, "", q.toString() ? `/?${q}` : "/");
}

function sparkline(points) {
  // A tiny SVG line of the soft loss: shape at a glance, numbers in the next column.
  const w = 70, h = 20, svgNs = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(svgNs, "svg");
  svg.setAttribute("width", w); svg.setAttribute("height", h); svg.setAttribute("class", "sparkline");
  const pts = (points || []).filter((p) => p.value !== null && Number.isFinite(p.value));
  if (pts.length < 2) return svg;
  const x0 = pts[0].step, x1 = pts[pts.length - 1].step;
  const ys = pts.map((p) => p.value), lo = Math.min(...ys), hi = Math.max(...ys);
  const line = document.createElementNS(svgNs, "polyline");
  line.setAttribute("points", pts.map((p) =>
    `${((p.step - x0) / Math.max(x1 - x0, 1) * (w - 2) + 1).toFixed(1)},` +
    `${(h - 2 - (p.value - lo) / Math.max(hi - lo, 1e-12) * (h - 4)).toFixed(1)}`).join(" "));
  svg.append(line);
  svg.dataset.points = String(pts.length);
  return svg;
}

async function loadSparks(runs) {
  // Only runs whose series changed since the last fetch: ended runs are fetched once.
  const stale = runs.filter((r) => !sparks[r.id] || sparks[r.id].step !== r.step).map((r) => r.id);
  for (let i = 0; i < stale.length; i += 50) {
    const ids = stale.slice(i, i + 50);
    const res = await api(`/api/metrics?runs=${ids.join(",")}&keys=train/soft_loss,train/hard_loss&max_points=60`);
    if (!res.ok) return;
    for (const id of ids) {
      const m = res.body.runs[String(id)] || {};
      const run = runs.find((r) => r.id === id);
      const soft = m["train/soft_loss"] || [];
      // A labels-only run (α = 0) has no teacher term worth drawing: its hard loss is.
      sparks[id] = { step: run.step, points: soft.length && run.config.alpha > 0 ? soft : (m["train/hard_loss"] || soft) };
    }
  }
}

function runRow(r) {
  const c = r.config;
  const tr = el("tr", { class: "run-row", dataset: { runId: r.id } });
  if (r.sweep_id) tr.classList.add("in-sweep");
  const box = el("input", { type: "checkbox", class: "select-run", value: r.id, "aria-label": `select run ${r.id}` });
  box.checked = selected.has(r.id);
  box.addEventListener("change", () => { box.checked ? selected.add(r.id) : selected.delete(r.id); updateCompare(); });
  const name = el("td", { class: "run-name" });
  name.append(el("a", { href: `/runs/${r.id}` }, r.name));
  // Inside its sweep's group a run's sweep-<id> tag says nothing new.
  for (const t of r.tags) if (t !== `sweep-${r.sweep_id}`) name.append(" ", el("span", { class: "tag" }, t));
  if (r.note) name.append(el("div", { class: "note", title: r.note }, r.note));
  const progress = el("td");
  progress.append(el("progress", { max: r.total_steps, value: r.step }), el("span", { class: "steps" }, ` ${r.step}/${r.total_steps}`));
  const status = el("td");
  status.append(statusBadge(r.status));
  const spark = el("td", { class: "spark" });
  spark.append(sparkline(sparks[r.id] && sparks[r.id].points), " ", el("span", { class: "num soft" }, fmt(r.latest["train/soft_loss"])));
  const edit = el("button", { type: "button", class: "link edit-run", title: "edit tags and note", "aria-label": `edit run ${r.id}` }, "✎");
  edit.addEventListener("click", () => openEditor(r));
  const pick = el("td"); pick.append(box);
  const actions = el("td"); actions.append(edit);
  const pair = el("td", { class: "pair" });
  pair.append(el("span", {}, c.teacher), el("br"), el("span", {}, `→ ${c.student}`));
  tr.append(pick, el("td", {}, r.id), name, status, progress, pair,
            el("td", {}, fmt(c.temperature)), el("td", {}, fmt(c.alpha)), el("td", {}, c.divergence),
            spark,
            el("td", { class: "num" }, fmt(r.latest["train/hard_loss"])), actions);
  tr.addEventListener("click", (e) => {
    if (!["A", "INPUT", "BUTTON"].includes(e.target.tagName)) window.location.href = `/runs/${r.id}`;
  });
  return tr;
}

function sweepRow(sweep, members) {
  const counts = {};
  for (const r of members) counts[r.status] = (counts[r.status] || 0) + 1;
  const open = expanded.has(sweep.id);
  const tr = el("tr", { class: "sweep-row", dataset: { sweepId: sweep.id } });
  const box = el("input", { type: "checkbox", class: "select-sweep", "aria-label": `select sweep ${sweep.id}` });
  box.checked = sweep.runs.every((id) => selected.has(id));
  box.addEventListener("change", () => {  // every run of the sweep, shown or filtered out
    for (const id of sweep.runs) box.checked ? selected.add(id) : selected.delete(id);
    updateCompare(); render();
  });
  const toggle = el("button", { type: "button", class: "link sweep-toggle", "aria-expanded": open ? "true" : "false" },
                    `${open ? "▾" : "▸"} sweep #${sweep.id}`);
  toggle.addEventListener("click", () => { open ? expanded.delete(sweep.id) : expanded.add(sweep.id); render(); });
  const cell = el("td", { colspan: 10 });
  const grid = Object.entries(sweep.grid).map(([k, v]) => `${k} ∈ {${v.join(", ")}}`).join(" × ");
  const summary = Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ");
  const compare = el("a", { class: "button-link", href: `/compare?runs=${[...sweep.runs].join(",")}` }, "compare");
  cell.append(toggle, " ", el("b", {}, sweep.name), el("span", { class: "hint" }, ` · ${sweep.runs.length} runs (${summary}) · ${grid} `), compare);
  const pick = el("td"); pick.append(box);
  tr.append(pick, cell, el("td"));
  return tr;
}

function render() {
  if (!lastList || editing !== null) return;
  const body = lastList;
  const tbody = document.querySelector("#runs-table tbody");
  tbody.replaceChildren();
  const seen = new Set();
  for (const r of body.data) {
    if (!r.sweep_id) { tbody.append(runRow(r)); continue; }
    if (seen.has(r.sweep_id)) continue;  // a sweep's rows go together, where its first one sorts
    seen.add(r.sweep_id);
    const members = body.data.filter((x) => x.sweep_id === r.sweep_id);
    tbody.append(sweepRow(body.sweeps[r.sweep_id], members));
    if (expanded.has(r.sweep_id)) for (const m of members) tbody.append(runRow(m));
  }
  for (const th of document.querySelectorAll("#runs-table th[data-sort]")) {
    const key = th.dataset.sort;
    th.classList.toggle("sorted", view.sort.replace("-", "") === key);
    th.dataset.dir = view.sort === key ? "asc" : view.sort === `-${key}` ? "desc" : "";
  }
  const filtered = view.status || view.tag || view.q || view.sweep;
  const chip = document.getElementById("sweep-filter");
  chip.hidden = !view.sweep;
  chip.firstChild.textContent = `sweep #${view.sweep} only `;
  document.getElementById("runs-count").textContent = `${body.count} run${body.count === 1 ? "" : "s"}${filtered ? " match" : ""}`;
  document.getElementById("no-runs").hidden = body.count > 0 || filtered;
}

function fillTags(tags) {
  // A tag from the URL that no run carries any more stays selectable, so it can be cleared.
  if (view.tag && !tags.includes(view.tag)) tags = [...tags, view.tag];
  const select = document.getElementById("filter-tag");
  const have = [...select.options].map((o) => o.value).slice(1);
  if (have.join("\n") === tags.join("\n")) return;
  select.replaceChildren(el("option", { value: "" }, "any"), ...tags.map((t) => el("option", { value: t }, t)));
  select.value = tags.includes(view.tag) ? view.tag : "";
}

let refreshSeq = 0;     // answers to older requests (before a filter changed) are dropped
let refreshing = false; // the 2-second tick skips while a refresh is on its way

async function refreshRuns() {
  const mine = ++refreshSeq;
  refreshing = true;
  try { await refreshOnce(mine); } finally { if (mine === refreshSeq) refreshing = false; }
}

async function refreshOnce(mine) {
  const q = new URLSearchParams({ limit: "500", sort: view.sort });
  if (view.status) q.set("status", view.status);
  if (view.tag) q.set("tag", view.tag);
  if (view.q) q.set("q", view.q);
  if (view.sweep) q.set("sweep", view.sweep);
  let res;
  try { res = await api(`/api/runs?${q}`); } catch (e) { res = { ok: false, body: { detail: String(e) } }; }
  if (mine !== refreshSeq) return;
  const error = document.getElementById("runs-error");
  if (!res.ok) {
    const d = res.body && res.body.detail;
    error.textContent = `Could not list the runs: ${Array.isArray(d) ? d.map((x) => x.msg).join("; ") : d || `HTTP ${res.status}`}`;
    return;
  }
  error.textContent = "";
  fillTags(res.body.tags);
  await loadSparks(res.body.data);
  if (mine !== refreshSeq) return;
  lastList = res.body;
  render();
}

function openEditor(r) {
  editing = r.id;
  const row = document.querySelector(`tr.run-row[data-run-id="${r.id}"]`);
  const tr = el("tr", { class: "editor-row" });
  const cell = el("td", { colspan: 12 });
  const tags = el("input", { id: "edit-tags", autocomplete: "off", "aria-label": "tags" });
  tags.value = r.tags.join(", ");
  const note = el("textarea", { id: "edit-note", rows: 2, "aria-label": "note" });
  note.value = r.note || "";
  const error = el("p", { class: "form-error", id: "edit-error", role: "alert" });
  const save = el("button", { type: "button", id: "edit-save" }, "Save");
  const cancel = el("button", { type: "button", class: "secondary" }, "Cancel");
  cell.append(el("label", { class: "edit-field" }, "tags (comma-separated) "), tags,
              el("label", { class: "edit-field" }, " note "), note, save, " ", cancel, error);
  tr.append(cell);
  row.after(tr);
  tags.focus();
  const close = () => { editing = null; refreshRuns(); };
  cancel.addEventListener("click", close);
  save.addEventListener("click", async () => {
    const body = {};  // only what changed: a note can be saved whatever the tags hold
    const newTags = tags.value.split(",").map((t) => t.trim()).filter(Boolean);
    if (newTags.join("\n") !== r.tags.join("\n")) body.tags = newTags;
    if (note.value !== (r.note || "")) body.note = note.value;
    if (!Object.keys(body).length) { close(); return; }
    const res = await api(`/api/runs/${r.id}`, { method: "PATCH", body: JSON.stringify(body) });
    if (res.ok) close();
    else error.textContent = (res.body && Array.isArray(res.body.detail))
      ? res.body.detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("\n") : `HTTP ${res.status}`;
  });
}

function bindFilters() {
  let typing = null;
  document.getElementById("clear-sweep").addEventListener("click", () => { view.sweep = ""; writeView(); refreshRuns(); });
  document.getElementById("filter-status").addEventListener("change", (e) => { view.status = e.target.value; writeView(); refreshRuns(); });
  document.getElementById("filter-tag").addEventListener("change", (e) => { view.tag = e.target.value; writeView(); refreshRuns(); });
  document.getElementById("filter-text").addEventListener("input", (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => { view.q = e.target.value.trim(); writeView(); refreshRuns(); }, 250);
  });
  for (const th of document.querySelectorAll("#runs-table th[data-sort]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      // Numbers and dates start descending (newest, highest) on the first click.
      const first = ["name", "status", "temperature", "alpha", "soft", "hard"].includes(key) ? key : `-${key}`;
      view.sort = view.sort === first ? (first.startsWith("-") ? key : `-${key}`) : first;
      writeView();
      refreshRuns();
    });
  }
}

// ---- The sweep builder: lists of T, α, divergence and seed over the form's config.
function listOf(id) {
  return document.getElementById(id).value.split(",").map((t) => t.trim()).filter(Boolean)
    .map((t) => (Number.isNaN(Number(t)) ? t : Number(t)));
}

function sweepBody() {
  const grid = {};
  for (const k of ["temperature", "alpha", "seed"]) { const v = listOf(`s-${k}`); if (v.length) grid[k] = v; }
  const divs = [...document.querySelectorAll(".s-divergence:checked")].map((b) => b.value);
  if (divs.length) grid.divergence = divs;
  return { base: readForm(), grid };
}

function updateSweepCount() {
  const { grid } = sweepBody();
  const n = Object.values(grid).reduce((a, v) => a * v.length, 1);
  document.getElementById("sweep-button").textContent = `Launch sweep (${n} run${n === 1 ? "" : "s"})`;
}

async function launchSweep() {
  clearErrors();
  document.querySelectorAll("[id^=serr-]").forEach((n) => (n.textContent = ""));
  document.getElementById("sweep-error").textContent = "";
  const general = [];
  const button = document.getElementById("sweep-button");
  button.disabled = true;  // one click, one sweep
  let res;
  try {
    res = await api("/api/sweeps", { method: "POST", body: JSON.stringify(sweepBody()) });
  } catch (e) {
    res = { ok: false, status: 0, body: { detail: `could not reach the api: ${e}` } };
  } finally {
    button.disabled = false;
  }
  if (res.status === 201) { window.location.href = res.body.compare_url; return; }
  const detail = res.body && res.body.detail;
  for (const err of Array.isArray(detail) ? detail : [{ loc: [], msg: String(detail || `HTTP ${res.status}`) }]) {
    const [, part, field] = err.loc || [];
    if (part === "base" && field !== undefined) {
      // The base is the form above: the message goes next to its field there.
      if (document.getElementById(`err-${field}`)) { showErrors([{ loc: ["body", field], msg: err.msg }]); continue; }
    }
    const slot = part === "grid" && field !== undefined && document.getElementById(`serr-${field}`);
    if (slot) slot.textContent = err.msg;
    else general.push(`${(err.loc || []).slice(1).join(".")}: ${err.msg}`);
  }
  document.getElementById("sweep-error").textContent = general.join("\n");
}

document.getElementById("compare-button").addEventListener("click", () => {
  window.location.href = `/compare?runs=${[...selected].sort((a, b) => a - b).join(",")}`;
});
document.getElementById("experiment-button").addEventListener("click", async () => {
  const res = await api("/api/experiments/temperature", { method: "POST" });
  if (res.status === 201) window.location.href = res.body.compare_url;
  else document.getElementById("experiment-error").textContent =
    res.body && res.body.detail ? JSON.stringify(res.body.detail) : `HTTP ${res.status}`;
});
buildForm();
document.getElementById("launch-form").addEventListener("submit", launch);
document.getElementById("sweep-button").addEventListener("click", launchSweep);
for (const node of document.querySelectorAll("#sweep-builder input")) node.addEventListener("input", updateSweepCount);
updateSweepCount();
readView();
bindFilters();
loadCatalog();
refreshRuns();
setInterval(() => { if (!document.hidden && !refreshing) refreshRuns(); }, 2000);
