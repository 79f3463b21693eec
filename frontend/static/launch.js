// Runs page, left: the launch form (presets, every config field, the API's validation message
// next to its field), the sweep builder and the built-in experiment's button. Every field is
// required but the few marked optional, whose help says what empty means; an empty required
// field is an error next to it and nothing is sent.
import { api, el, errorField, errorText } from "./common.js";

const FIELDS = [
  { name: "name", type: "text", label: "name", optional: true, placeholder: "automatic if empty",
    help: "empty: named from its config" },
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
  { name: "warmup_steps", type: "number", label: "warm-up steps", help: "empty: 10 % of the steps", optional: true },
  { name: "eval_interval", type: "number", label: "eval every" },
  { name: "seed", type: "number", label: "seed" },
  { name: "tags", type: "text", label: "tags", help: "comma-separated; may be empty", optional: true },
  // Under "More settings".
  { name: "weight_decay", type: "number", label: "weight decay", more: true },
  { name: "max_grad_norm", type: "number", label: "max grad norm", help: "clip the gradient's norm to this", more: true },
  { name: "eval_batches", type: "number", label: "eval batches", more: true },
  { name: "checkpoint_interval", type: "number", label: "checkpoint every", help: "empty: every eval", more: true,
    optional: true },
  { name: "keep_checkpoints", type: "number", label: "resumable checkpoints kept", help: "0 = all", more: true },
  { name: "keep_checkpoint_weights", type: "number", label: "older checkpoints' weights kept",
    help: "spread over the run, for the inspector; 0 = none", more: true },
  { name: "teacher_cache_k", type: "number", label: "teacher-logit cache k",
    help: "empty: no cache; reuse the teacher's top-k logits across runs (forward_kl)", more: true, optional: true },
  // At LLM shape (a config without them, e.g. an older preset, gets the first option: the api's default).
  { name: "dtype", type: "select", options: ["auto", "bfloat16", "float32"], label: "compute dtype",
    help: "auto: bfloat16 on a GPU that has it, float32 otherwise; the loss is always float32", more: true },
  { name: "loss_impl", type: "select", options: ["auto", "hidden", "logits"], label: "loss computed from",
    help: "hidden: final hidden states and heads, chunk by chunk, never the full logits (same values); "
      + "auto: hidden from 16,384 tokens of vocabulary", more: true },
  { name: "gradient_checkpointing", type: "select", options: ["false", "true"], bool: true, label: "gradient checkpointing",
    help: "recompute the student's activations in backward: less memory, about a third more time", more: true },
];

let presets = [];

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
                            inputmode: f.type === "number" ? "decimal" : null, autocomplete: "off",
                            placeholder: f.placeholder || null, "aria-required": f.optional ? null : "true" });
    }
    row.append(input);
    input.addEventListener("input", () => {  // an error goes as its field is edited
      row.classList.remove("invalid");
      document.getElementById(`err-${f.name}`).textContent = "";
    });
    if (f.help) row.append(el("small", { class: "help" }, f.help));
    row.append(el("small", { class: "field-error", id: `err-${f.name}`, role: "alert" }));
    box.append(row);
  }
  for (const list of ["models", "datasets"]) document.body.append(el("datalist", { id: `list-${list}` }));
}

function fillForm(config) {
  for (const f of FIELDS) {
    const input = document.getElementById(`f-${f.name}`);
    const v = config[f.name] ?? (f.type === "select" ? f.options[0] : undefined);
    input.value = v === undefined || v === null ? "" : (Array.isArray(v) ? v.join(", ") : String(v));
  }
  clearErrors();
}

function readLaunchForm() {
  // The form's config, or null when a required field is empty: each such field then shows
  // the error (the api's default must never stand in for a value the user erased).
  const body = {};
  const missing = [];
  for (const f of FIELDS) {
    const raw = document.getElementById(`f-${f.name}`).value.trim();
    if (raw === "") {
      if (!f.optional) missing.push(f);
      continue;  // an optional field: the api's default (its help says which)
    }
    if (f.name === "tags") body.tags = raw.split(",").map((t) => t.trim()).filter(Boolean);
    else if (f.type === "number" && !Number.isNaN(Number(raw))) body[f.name] = Number(raw);
    else if (f.bool) body[f.name] = raw === "true";
    else body[f.name] = raw;  // the api says what is wrong with it
  }
  if (!missing.length) return body;
  showLaunchErrors(missing.map((f) => ({ loc: ["body", f.name], msg: "required: enter a value" })));
  document.getElementById(`f-${missing[0].name}`).focus();
  return null;
}

function missingLabels() {
  // For beside the button pressed: the fields marked empty above.
  return FIELDS.filter((f) => document.getElementById(`err-${f.name}`).textContent).map((f) => f.label).join(", ");
}

function clearErrors() {
  document.querySelectorAll(".field-error").forEach((n) => (n.textContent = ""));
  document.querySelectorAll(".field.invalid").forEach((n) => n.classList.remove("invalid"));
  document.getElementById("form-error").textContent = "";
}

function showLaunchErrors(detail) {
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
  const body = readLaunchForm();
  if (!body) { document.getElementById("form-error").textContent = `Required, left empty: ${missingLabels()}.`; return; }
  const button = document.getElementById("launch-button");
  button.disabled = true;
  try {
    const res = await api("/api/runs", { method: "POST", body: JSON.stringify(body) });
    if (res.status === 201) window.location.href = `/runs/${res.body.id}`;
    else showLaunchErrors(Array.isArray(res.body && res.body.detail) ? res.body.detail : errorText(res));
  } catch (e) {
    showLaunchErrors(`could not reach the api: ${e}`);
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
  // A preset whose models are not on this machine (the real kit before `make real`) is still
  // listed, marked, and says what to run when chosen.
  for (const p of presets) select.append(el("option", { value: p.id }, p.available === false ? `${p.label} (not prepared)` : p.label));
  select.addEventListener("change", () => applyPreset(select.value));
  if (presets.length) applyPreset(presets[0].id);
}

function applyPreset(id) {
  const p = presets.find((x) => x.id === id);
  if (!p) return;
  fillForm(p.config);
  const note = document.getElementById("preset-description");
  note.textContent = p.available === false && p.hint ? `${p.description} ${p.hint}` : p.description;
  note.classList.toggle("warning", p.available === false);
}

// ---- The sweep builder: lists of T, α, divergence and seed over the form's config.
function listOf(id) {
  return document.getElementById(id).value.split(",").map((t) => t.trim()).filter(Boolean)
    .map((t) => (Number.isNaN(Number(t)) ? t : Number(t)));
}

function sweepGrid() {
  const grid = {};
  for (const k of ["temperature", "alpha", "seed"]) { const v = listOf(`s-${k}`); if (v.length) grid[k] = v; }
  const divs = [...document.querySelectorAll(".s-divergence:checked")].map((b) => b.value);
  if (divs.length) grid.divergence = divs;
  return grid;
}

function updateSweepCount() {
  const grid = sweepGrid();
  const n = Object.values(grid).reduce((a, v) => a * v.length, 1);
  document.getElementById("sweep-button").textContent = `Launch sweep (${n} run${n === 1 ? "" : "s"})`;
}

async function launchSweep() {
  clearErrors();
  document.querySelectorAll("[id^=serr-]").forEach((n) => (n.textContent = ""));
  document.getElementById("sweep-error").textContent = "";
  const base = readLaunchForm();  // the same required fields as a single run
  if (!base) { document.getElementById("sweep-error").textContent = `Required in the form above, left empty: ${missingLabels()}.`; return; }
  const general = [];
  const button = document.getElementById("sweep-button");
  button.disabled = true;  // one click, one sweep
  let res;
  try {
    res = await api("/api/sweeps", { method: "POST", body: JSON.stringify({ base, grid: sweepGrid() }) });
  } catch (e) {
    res = { ok: false, status: 0, body: { detail: `could not reach the api: ${e}` } };
  } finally {
    button.disabled = false;
  }
  if (res.status === 201) { window.location.href = res.body.compare_url; return; }
  const detail = res.body && res.body.detail;
  for (const err of Array.isArray(detail) ? detail : [{ loc: [], msg: errorText(res) }]) {
    const [, part, field] = err.loc || [];
    if (part === "base" && field !== undefined) {
      // The base is the form above: the message goes next to its field there.
      if (document.getElementById(`err-${field}`)) { showLaunchErrors([{ loc: ["body", field], msg: err.msg }]); continue; }
    }
    const slot = part === "grid" && field !== undefined && document.getElementById(`serr-${field}`);
    if (slot) slot.textContent = err.msg;
    else general.push(errorField(err) ? `${errorField(err)}: ${err.msg}` : err.msg);
  }
  document.getElementById("sweep-error").textContent = general.join("\n");
}

export function bindLaunch() {
  buildForm();
  document.getElementById("launch-form").addEventListener("submit", launch);
  document.getElementById("sweep-button").addEventListener("click", launchSweep);
  for (const node of document.querySelectorAll("#sweep-builder input")) node.addEventListener("input", updateSweepCount);
  updateSweepCount();
  document.getElementById("experiment-button").addEventListener("click", async () => {
    const res = await api("/api/experiments/temperature", { method: "POST" });
    if (res.status === 201) window.location.href = res.body.compare_url;
    else document.getElementById("experiment-error").textContent = errorText(res);
  });
  loadCatalog();
}
