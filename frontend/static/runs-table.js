// Runs page, right: the live runs table. Filters and sort (kept in the URL), sweeps as
// collapsible groups, soft-loss sparklines, an inline editor for tags and the note, and the
// selection of runs to compare. The columns fit a 1,280 px window: teacher → student and the
// divergence are a line under the name, shown on demand ("models & divergence").
import { ACTIVE, MAX_COMPARED, STATUSES, api, el, errorText, fmt, statusBadge } from "./common.js";

const COLUMNS = 10;  // as many as the header in index.html
// Runs per page: the table (and its 2-second poll) stays light however many runs there are.
export const PAGE_SIZE = 100;
const MAX_OFFSET = 2 ** 31 - 1;  // the api's largest offset (a database integer)

const selected = new Set();

function updateCompare() {
  const b = document.getElementById("compare-button");
  b.disabled = selected.size < 2;
  b.textContent = selected.size >= 2 ? `Compare ${selected.size} runs` : "Compare selected";
}

const view = { status: "", tag: "", q: "", sort: "-id", sweep: "", details: "", page: "" };
const expanded = new Set();   // sweep ids shown open
const sparks = {};            // run id -> { step, points }
let editing = null;           // run id whose editor is open (the table then pauses refreshing)
let lastList = null;

function fillStatuses() {
  // Any, the active ones, and each status: the shared list, so a new status shows here too.
  document.getElementById("filter-status").replaceChildren(el("option", { value: "" }, "any"),
    el("option", { value: ACTIVE.join(",") }, "active"), ...STATUSES.map((s) => el("option", { value: s }, s)));
}

function readView() {
  const q = new URLSearchParams(window.location.search);
  for (const k of Object.keys(view)) if (q.has(k)) view[k] = q.get(k);
  view.page = pageNumber() > 1 ? String(pageNumber()) : "";
  if (view.sweep) expanded.add(Number(view.sweep));  // opened from a run page: show its sweep
  document.getElementById("filter-status").value = view.status;
  document.getElementById("filter-text").value = view.q;
  document.getElementById("show-details").checked = Boolean(view.details);
}

function writeView() {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(view)) if (v && !(k === "sort" && v === "-id")) q.set(k, v);
  history.replaceState(null, "", q.toString() ? `/?${q}` : "/");
}

// The page shown, from 1 (anything else in the URL is the first page; a page past the api's
// offsets is the last one it can reach).
function pageNumber() {
  const n = Number(view.page);
  return Number.isInteger(n) && n > 1 ? Math.min(n, Math.floor(MAX_OFFSET / PAGE_SIZE) + 1) : 1;
}

function setPage(n) {
  view.page = n > 1 ? String(n) : "";
  writeView();
  refreshRuns();
}

// A new filter or sort: set it, and start again at the first page.
function changeView(changes) {
  Object.assign(view, changes, { page: "" });
  writeView();
  refreshRuns();
}

// The page shown, the number of pages, and the 1-based positions of its first and last runs.
function pageRange(count) {
  const page = pageNumber();
  return { page, pages: Math.max(1, Math.ceil(count / PAGE_SIZE)),
           first: (page - 1) * PAGE_SIZE + 1, last: Math.min(page * PAGE_SIZE, count) };
}

// Pages through the runs matching the filters.
function showPager(count) {
  const { page, pages, first, last } = pageRange(count);
  document.getElementById("runs-pager").hidden = pages <= 1 && page === 1;
  document.getElementById("page-info").textContent = first <= count
    ? `runs ${first.toLocaleString("en")}–${last.toLocaleString("en")} of ${count.toLocaleString("en")} · page ${page} of ${pages}`
    : `page ${page} is past the last page (${pages})`;
  document.getElementById("page-prev").disabled = page <= 1;
  document.getElementById("page-next").disabled = page >= pages;
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
  for (let i = 0; i < stale.length; i += MAX_COMPARED) {  // as many as one request takes
    const ids = stale.slice(i, i + MAX_COMPARED);
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
  if (view.details) name.append(el("div", { class: "pair" }, `${c.teacher} → ${c.student} · ${c.divergence}`));
  const progress = el("td");
  progress.append(el("progress", { max: r.total_steps, value: r.step }), el("span", { class: "steps" }, ` ${r.step}/${r.total_steps}`));
  const status = el("td");
  // A cancel asked for and not yet carried out by the worker (see the run page).
  const cancelling = r.cancel_requested && ACTIVE.includes(r.status);
  status.append(cancelling ? el("span", { class: "status status-cancelling" }, "cancelling…") : statusBadge(r.status));
  const spark = el("td", { class: "spark" });
  spark.append(sparkline(sparks[r.id] && sparks[r.id].points), " ", el("span", { class: "num soft" }, fmt(r.latest["train/soft_loss"])));
  const edit = el("button", { type: "button", class: "link edit-run", title: "edit tags and note", "aria-label": `edit run ${r.id}` }, "✎");
  edit.addEventListener("click", () => openEditor(r));
  const pick = el("td"); pick.append(box);
  const actions = el("td"); actions.append(edit);
  tr.append(pick, el("td", {}, r.id), name, status, progress,
            el("td", {}, fmt(c.temperature)), el("td", {}, fmt(c.alpha)),
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
    updateCompare(); renderTable();
  });
  const toggle = el("button", { type: "button", class: "link sweep-toggle", "aria-expanded": open ? "true" : "false" },
                    `${open ? "▾" : "▸"} sweep #${sweep.id}`);
  toggle.addEventListener("click", () => { open ? expanded.delete(sweep.id) : expanded.add(sweep.id); renderTable(); });
  const cell = el("td", { colspan: COLUMNS - 2, class: "sweep-cell" });
  const grid = Object.entries(sweep.grid).map(([k, v]) => `${k} ∈ {${v.join(", ")}}`).join(" × ");
  // The states counted are those of the runs listed here (a page or a filter may hold only some).
  const summary = (members.length < sweep.runs.length ? `${members.length} listed here: ` : "") +
    Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(", ");
  const compare = el("a", { class: "button-link", href: `/compare?runs=${[...sweep.runs].join(",")}` }, "compare");
  cell.append(toggle, " ", el("b", {}, sweep.name), el("span", { class: "hint" }, ` · ${sweep.runs.length} runs (${summary}) · ${grid} `), compare);
  const pick = el("td"); pick.append(box);
  tr.append(pick, cell, el("td"));
  return tr;
}

function renderTable() {
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
  // More than a page: which of them the table lists (the pager under it moves on).
  const { first, last } = pageRange(body.count);
  const shown = body.count > PAGE_SIZE && first <= last ? ` · ${first.toLocaleString("en")}–${last.toLocaleString("en")} listed` : "";
  document.getElementById("runs-count").textContent = `${body.count.toLocaleString("en")} run${body.count === 1 ? "" : "s"}${filtered ? " match" : ""}${shown}`;
  document.getElementById("no-runs").hidden = body.count > 0 || filtered;
  showPager(body.count);
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
  const q = new URLSearchParams({ limit: String(PAGE_SIZE), offset: String((pageNumber() - 1) * PAGE_SIZE), sort: view.sort });
  if (view.status) q.set("status", view.status);
  if (view.tag) q.set("tag", view.tag);
  if (view.q) q.set("q", view.q);
  if (view.sweep) q.set("sweep", view.sweep);
  let res;
  try { res = await api(`/api/runs?${q}`); } catch (e) { res = { ok: false, status: 0, body: { detail: String(e) } }; }
  if (mine !== refreshSeq) return;
  const error = document.getElementById("runs-error");
  if (!res.ok) {
    error.textContent = `Could not list the runs: ${errorText(res)}`;
    return;
  }
  error.textContent = "";
  fillTags(res.body.tags);
  await loadSparks(res.body.data);
  if (mine !== refreshSeq) return;
  lastList = res.body;
  renderTable();
}

function openEditor(r) {
  editing = r.id;
  const row = document.querySelector(`tr.run-row[data-run-id="${r.id}"]`);
  const tr = el("tr", { class: "editor-row" });
  const cell = el("td", { colspan: COLUMNS });
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
    else error.textContent = errorText(res);
  });
}

function bindFilters() {
  let typing = null;
  document.getElementById("show-details").addEventListener("change", (e) => {
    view.details = e.target.checked ? "1" : "";
    writeView();
    renderTable();
  });
  document.getElementById("clear-sweep").addEventListener("click", () => changeView({ sweep: "" }));
  document.getElementById("filter-status").addEventListener("change", (e) => changeView({ status: e.target.value }));
  document.getElementById("filter-tag").addEventListener("change", (e) => changeView({ tag: e.target.value }));
  document.getElementById("page-prev").addEventListener("click", () => setPage(pageNumber() - 1));
  document.getElementById("page-next").addEventListener("click", () => setPage(pageNumber() + 1));
  document.getElementById("filter-text").addEventListener("input", (e) => {
    clearTimeout(typing);
    typing = setTimeout(() => changeView({ q: e.target.value.trim() }), 250);
  });
  for (const th of document.querySelectorAll("#runs-table th[data-sort]")) {
    th.addEventListener("click", () => {
      const key = th.dataset.sort;
      // Numbers and dates start descending (newest, highest) on the first click.
      const first = ["name", "status", "temperature", "alpha", "soft", "hard"].includes(key) ? key : `-${key}`;
      changeView({ sort: view.sort === first ? (first.startsWith("-") ? key : `-${key}`) : first });
    });
  }
}

export function bindTable() {
  document.getElementById("compare-button").addEventListener("click", () => {
    window.location.href = `/compare?runs=${[...selected].sort((a, b) => a - b).join(",")}`;
  });
  fillStatuses();
  readView();
  bindFilters();
  refreshRuns();
  setInterval(() => { if (!document.hidden && !refreshing) refreshRuns(); }, 2000);
}
