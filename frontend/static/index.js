// Runs page: the launch form (presets, inline validation errors) and the live runs table.
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
];

let presets = [];
const selected = new Set();

function updateCompare() {
  const b = document.getElementById("compare-button");
  b.disabled = selected.size < 2;
  b.textContent = selected.size >= 2 ? `Compare ${selected.size} runs` : "Compare selected";
}

function buildForm() {
  const box = document.getElementById("fields");
  for (const f of FIELDS) {
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

async function refreshRuns() {
  const res = await api("/api/runs?limit=200");
  if (!res.ok) return;
  const tbody = document.querySelector("#runs-table tbody");
  tbody.replaceChildren();
  for (const r of res.body.data) {
    const c = r.config;
    const tr = el("tr", { class: "run-row", dataset: { runId: r.id } });
    const link = el("a", { href: `/runs/${r.id}` }, r.name);
    const progress = el("progress", { max: r.total_steps, value: r.step });
    const box = el("input", { type: "checkbox", class: "select-run", value: r.id,
                              "aria-label": `select run ${r.id}` });
    box.checked = selected.has(r.id);
    box.addEventListener("change", () => { box.checked ? selected.add(r.id) : selected.delete(r.id); updateCompare(); });
    const pick = el("td");
    pick.append(box);
    tr.append(pick, el("td", {}, r.id), el("td"), el("td"), el("td"), el("td", {}, `${c.teacher} → ${c.student}`),
              el("td", {}, fmt(c.temperature)), el("td", {}, fmt(c.alpha)),
              el("td", { class: "num" }, fmt(r.latest["train/soft_loss"])),
              el("td", { class: "num" }, fmt(r.latest["train/hard_loss"])));
    tr.children[2].append(link);
    tr.children[3].append(statusBadge(r.status));
    tr.children[4].append(progress, el("span", { class: "steps" }, ` ${r.step}/${r.total_steps}`));
    tr.addEventListener("click", (e) => { if (!["A", "INPUT"].includes(e.target.tagName)) window.location.href = `/runs/${r.id}`; });
    tbody.append(tr);
  }
  document.getElementById("no-runs").hidden = res.body.count > 0;
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
loadCatalog();
refreshRuns();
setInterval(refreshRuns, 2000);
