// The pages' shared module (native ES modules, no build step): HTML escaping, the api fetch
// wrapper (with the api token, asked for on a 401), error messages from the api's answers, run
// statuses, metric keys and limits. Every helper used by more than one page lives here, once.
// Everything that comes from the server is inserted as text, never as HTML.

// ---- Constants.

export const STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "lost"];
// `lost` (its worker died) is not an end: the api queues the run again and it resumes.
export const ACTIVE = ["queued", "running", "lost"];  // a worker has it, or will
export const ENDED = ["succeeded", "failed", "cancelled"];  // the pages stop polling
// Runs in one /api/metrics request, and so on one compare page or export: the api's
// MAX_COMPARED (backend; a test holds the two equal).
export const MAX_COMPARED = 100;
// The metrics compared, summarised and exported: [key, title, which end is better].
export const METRIC_KEYS = [
  ["train/soft_loss", "soft loss (T²·KL)", "min"], ["train/hard_loss", "hard loss (CE)", "min"],
  ["train/loss", "total loss", "min"], ["eval/kl_true", "held-out KL(truth ‖ student)", "min"],
  ["eval/kl_teacher", "held-out KL(teacher ‖ student)", "min"],
  ["eval/top1_agreement", "top-1 agreement with the teacher", "max"],
  ["eval/hard_loss", "held-out cross-entropy", "min"], ["train/grad_norm", "grad norm", "min"],
];

// ---- Text and elements.

export function el(tag, attrs = {}, text = null) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  if (text !== null) node.textContent = String(text);
  return node;
}

// For the rare text that must go into HTML source (prefer el() and textContent).
export function escapeHtml(text) {
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;").replace(/'/g, "&#39;");
}

export function plotlyLabel(text) {
  // Plotly reads a few HTML-like tags (<a href>, <b>, style=) in names and titles; entities make
  // it draw the characters instead. For server data: run names, model names, tokens. (Plotly
  // knows &amp; &lt; &gt; but not &quot;, so quotes stay as they are.)
  return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export function fmt(v, digits = 4) {
  if (v === null || v === undefined) return "–";
  if (typeof v !== "number") return String(v);
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

export function statusBadge(status) {
  return el("span", { class: `status status-${status}` }, status);
}

// ---- Errors from the api's answers.

// Where an error is: its loc without the part of the request ("body", "query", "path").
export function errorField(err) {
  const loc = (err && err.loc) || [];
  return (["body", "query", "path", "header"].includes(loc[0]) ? loc.slice(1) : loc).join(".");
}

// The api's reason as one readable text: a string detail as it is, a 422's list as
// "field: message" lines, else the HTTP status. `res` is what api() returns.
export function errorText(res) {
  const detail = res && res.body ? res.body.detail : undefined;
  if (typeof detail === "string" && detail) return detail;
  if (Array.isArray(detail) && detail.length) {
    return detail.map((d) => (errorField(d) ? `${errorField(d)}: ${d.msg}` : String(d.msg))).join("\n");
  }
  if (detail) return JSON.stringify(detail);
  return res && res.status ? `HTTP ${res.status}` : "could not reach the api";
}

// ---- The api token and the fetch wrapper.

// With DISTILLSCOPE_API_TOKEN set, the api wants `Authorization: Bearer <token>` on every
// change. The browser keeps the token in localStorage and sends it with each request; a 401
// asks for it in a small form and retries the request with what is entered.
const TOKEN_KEY = "distillscope.apiToken";

let memoryToken = "";  // where the browser keeps no storage: for as long as the page

function storedToken() {
  try { return localStorage.getItem(TOKEN_KEY) || ""; } catch (_) { return memoryToken; }
}

function storeToken(token) {
  try {
    if (token) localStorage.setItem(TOKEN_KEY, token);
    else localStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    memoryToken = token;
  }
}

let asking = null;  // the open token form's answer: requests refused meanwhile wait for it

function tokenDialog() {
  let dialog = document.getElementById("token-dialog");
  if (dialog) return dialog;
  dialog = el("dialog", { id: "token-dialog", class: "token-dialog", "aria-labelledby": "token-title" });
  const form = el("form", { method: "dialog" });
  const input = el("input", { id: "token-input", type: "password", autocomplete: "off", spellcheck: "false",
                              "aria-describedby": "token-help" });
  const label = el("label", { for: "token-input" }, "api token");
  const help = el("p", { id: "token-help", class: "hint" });
  help.append("This server was started with ", el("code", {}, "DISTILLSCOPE_API_TOKEN"),
    " set, so launching, editing, cancelling and inspecting need that token. It is set where the api runs (its " +
    "environment or .env); ask whoever runs it. This browser keeps it (localStorage) and sends it as ",
    el("code", {}, "Authorization: Bearer …"), ".");
  form.append(el("h3", { id: "token-title" }, "API token needed"), help,
    el("p", { id: "token-note", class: "form-error", role: "alert" }), label, input,
    el("div", { class: "token-actions" }));
  form.lastChild.append(el("button", { type: "submit", id: "token-save", value: "save" }, "Save and retry"), " ",
    el("button", { type: "button", id: "token-cancel", class: "secondary" }, "Cancel"));
  dialog.append(form);
  document.body.append(dialog);
  return dialog;
}

// The token entered, or null when the form is cancelled.
function askToken(refused, reason) {
  if (asking) return asking;
  const dialog = tokenDialog();
  const input = dialog.querySelector("#token-input");
  dialog.querySelector("#token-note").textContent = refused
    ? `The token this browser sent was refused (${reason}). Enter the api's token.` : "";
  input.value = "";
  asking = new Promise((resolve) => {
    const done = (token) => {
      dialog.removeEventListener("close", onClose);
      if (dialog.open) dialog.close();
      asking = null;
      resolve(token);
    };
    const onClose = () => done(dialog.returnValue === "save" && input.value.trim() ? input.value.trim() : null);
    dialog.addEventListener("close", onClose);
    dialog.querySelector("#token-cancel").onclick = () => { dialog.returnValue = ""; dialog.close(); };
    dialog.returnValue = "";
    dialog.showModal();
    input.focus();
  });
  return asking;
}

// fetch() for the api: a JSON content type on every change (a body-less POST too: the api reads
// an empty JSON body, and a page on another site cannot send that header without asking), the
// kept token, and on a 401 the
// token form, then the same request again (until it passes or the form is cancelled, when the
// 401 is returned).
export async function apiFetch(path, options = {}) {
  for (;;) {
    const token = storedToken();
    const method = (options.method || "GET").toUpperCase();
    const headers = { ...(["GET", "HEAD"].includes(method) ? {} : { "Content-Type": "application/json" }),
                      ...(options.headers || {}) };
    if (token) headers.Authorization = `Bearer ${token}`;
    const res = await fetch(path, { ...options, headers });
    if (res.status !== 401) return res;
    let reason = "HTTP 401";
    try { reason = errorText({ status: 401, body: await res.clone().json() }); } catch (_) { /* not JSON */ }
    const entered = await askToken(Boolean(token), reason);
    if (entered === null) return res;
    storeToken(entered);
  }
}

// The api's answer as { ok, status, body } (body: parsed JSON, or null).
export async function api(path, options = {}) {
  const res = await apiFetch(path, options);
  let body = null;
  try { body = await res.json(); } catch (_) { body = null; }
  return { ok: res.ok, status: res.status, body };
}
