// Inspect page: next-token distributions of teacher and students at several temperatures.
// Tokens are data: they go into the page as text (textContent) and into Plotly escaped.
import { api, el, errorText, fmt, plotlyLabel } from "./common.js";
import { renderWhy } from "./inspect-why.js";
import { isRealKit, labelOf, markerLegend, pct, plotlyText, visible } from "./inspect-text.js";

const DEMO_PROMPTS = ["the lazy", "a tiny", "the big dog runs to the", "that sleepy kitten naps on a"];
// The real kit (SmolLM2, byte-level BPE with a chat template): real language, plain and chat.
const REAL_PROMPTS = ["The capital of France is", "def add(a, b):\n    return", "Once upon a time, there was a"];
const REAL_CHAT_PROMPTS = ["What is the capital of France?", "Name three primary colours."];
// The default view: the fine-tuned (peaked) teacher beside the calibrated one it came from and
// the truth, at T = 1, 2, 4, the slider at T = 3 (where a peaked teacher's runner-ups return).
const DEFAULT_MODELS = "demo-teacher-finetuned, demo-teacher";
const DEFAULT_TEMPERATURES = "1, 2, 4";
const DEFAULT_T = 3;  // the slider's T when the URL has none
const MAX_TEMPERATURES = 16;  // InspectRequest.temperatures
const PLOT_CONFIG = { responsive: true, displaylogo: false };
// The last request sent and the answer drawn (redrawn as it is when only the view changes:
// the y-axis switch).
export const last = { request: null, answer: null };
let sliderT = DEFAULT_T;
let sent = 0;  // requests sent; an answer to an older one arrives stale and is dropped
let debounce = null;

function firstModel() {
  return document.getElementById("i-models").value.split(",")[0].trim();
}

function params() {
  const q = new URLSearchParams(window.location.search);
  const t = Number(q.get("t"));
  const models = q.get("models") || DEFAULT_MODELS;
  const chat = q.get("chat") === "1";
  const real = isRealKit(models.split(",")[0].trim());
  return {
    models,
    chat,
    prompt: q.get("prompt") || (real ? (chat ? REAL_CHAT_PROMPTS : REAL_PROMPTS)[0] : DEMO_PROMPTS[0]),
    temperatures: q.get("temperatures") || DEFAULT_TEMPERATURES,
    sameY: q.get("y") !== "free",
    k: q.get("k") || "8",
    t: q.get("t") && Number.isFinite(t) && t > 0 ? t : DEFAULT_T,
    pos: /^[0-9]+$/.test(q.get("pos") || "") ? Number(q.get("pos")) : undefined,
  };
}

function tLabel(t) {
  return `T = ${Number.isInteger(t) && t < 10 ? t.toFixed(1) : t}`;
}

function setSlider(t, moveThumb = true) {
  sliderT = t;
  // The range holds log2(T): equal steps along it multiply T by equal factors.
  if (moveThumb) document.getElementById("i-t").value = String(Math.log2(t));
  document.getElementById("i-t-value").textContent = tLabel(t);
}

function onSlider() {
  // Two significant digits: T = 2.8, not 2.828427.
  setSlider(Number((2 ** Number(document.getElementById("i-t").value)).toPrecision(2)), false);
  clearTimeout(debounce);
  debounce = setTimeout(() => {
    const samePrompt = last.request && last.request.prompt === document.getElementById("i-prompt").value &&
      last.request.chat === document.getElementById("i-chat").checked;
    run(samePrompt ? last.request.position : undefined);
  }, 250);
}

export function readInspectForm(position) {
  const temps = document.getElementById("i-temperatures").value.split(",").map((t) => t.trim()).filter(Boolean);
  const body = {
    models: document.getElementById("i-models").value.split(",").map((m) => m.trim()).filter(Boolean),
    prompt: document.getElementById("i-prompt").value,
    temperatures: temps.map((t) => (Number.isNaN(Number(t)) ? t : Number(t))),
    k: Number.isNaN(Number(document.getElementById("i-k").value)) ? document.getElementById("i-k").value : Number(document.getElementById("i-k").value),
    chat: document.getElementById("i-chat").checked,
  };
  if (position !== undefined && position !== null) body.position = position;
  return body;
}

function withSlider(body) {
  // The list's temperatures, then the slider's T unless the list already has it (or is full).
  const listCount = body.temperatures.length;
  let sliderIndex = body.temperatures.findIndex((t) => typeof t === "number" && Math.abs(t - sliderT) < 1e-9);
  if (sliderIndex < 0 && listCount < MAX_TEMPERATURES) {
    sliderIndex = listCount;
    body.temperatures = [...body.temperatures, sliderT];
  }
  return { listCount, sliderIndex };
}

function showInspectErrors(detail) {
  document.querySelectorAll("[id^=ierr-]").forEach((n) => (n.textContent = ""));
  const general = [];
  for (const err of Array.isArray(detail) ? detail : [{ msg: String(detail) }]) {
    const field = err.loc && err.loc[0] === "body" ? err.loc[1] : undefined;
    const slot = field !== undefined && document.getElementById(`ierr-${field}`);
    if (slot) slot.textContent = err.msg;
    else general.push(err.msg);
  }
  document.getElementById("inspect-error").textContent = general.join("\n");
}

async function run(position) {
  clearTimeout(debounce);
  const body = readInspectForm(position);
  const view = withSlider(body);
  last.request = body;
  const mine = ++sent;
  showInspectErrors([]);
  const button = document.getElementById("inspect-button");
  button.disabled = true;
  button.textContent = "Inspecting…";
  try {
    const res = await api("/api/inspect", { method: "POST", body: JSON.stringify(body) });
    if (mine !== sent) return;  // a newer request is on its way: this answer is out of date
    if (!res.ok) {
      showInspectErrors(Array.isArray(res.body && res.body.detail) ? res.body.detail : errorText(res));
      showChat(null);
      return;
    }
    const q = new URLSearchParams({ models: body.models.join(","), prompt: body.prompt,
      temperatures: document.getElementById("i-temperatures").value, k: String(body.k), t: String(sliderT) });
    if (!document.getElementById("same-y").checked) q.set("y", "free");
    if (body.chat) q.set("chat", "1");
    if (body.position !== undefined) q.set("pos", String(res.body.position));  // a clicked token
    history.replaceState(null, "", `/inspect?${q}`);
    last.answer = { out: res.body, view };
    showChat(res.body);
    renderPrompts(res.body);
    renderAnswer(res.body, view);
  } finally {
    if (mine === sent) {
      button.disabled = false;
      button.textContent = "Inspect";
    }
  }
}

function renderAnswer(out, view) {
  document.getElementById("result").hidden = false;
  const tokens = document.getElementById("tokens");
  tokens.replaceChildren();
  out.tokens.forEach((tok, i) => {
    const b = el("button", { type: "button", class: i === out.position ? "token current" : "token",
                             title: `position ${i}, token id ${out.ids ? out.ids[i] : "?"}` }, visible(tok));
    b.addEventListener("click", () => run(i));
    tokens.append(b);
  });
  const legend = markerLegend([...out.tokens, ...out.shown.map((s) => s.token)]);
  document.getElementById("token-legend").textContent = legend;
  document.getElementById("token-legend").hidden = !legend;
  const ref = out.models[0];
  const last = out.position === out.tokens.length - 1;
  const where = out.chat
    ? (last ? " — the assistant's first answer token: the prompt is the user's message in " +
      `${labelOf(out, ref)}'s chat template, and the tokens above are the template's` : " — inside the chat template")
    : "";
  document.getElementById("inspect-explainer").textContent =
    `Next token after “${visible(out.tokens[out.position])}” (position ${out.position})${where}. Every bar comes from the softmax ` +
    `over all ${out.vocab_size.toLocaleString("en-US")} tokens at that temperature. A temperature above 1 flattens every distribution toward ` +
    `uniform (1/${out.vocab_size.toLocaleString("en-US")} each); the tokens that stand out above that flattening are the ones a model ranks next ` +
    `(the panel says which). Divergences compare each model with ${labelOf(out, ref)}.`;
  if (out.truncated_to) document.getElementById("inspect-explainer").textContent +=
    ` The prompt was cut to its first ${out.truncated_to} tokens (the models' context).`;
  const list = out.temperatures.slice(0, view.listCount);
  const atSlider = view.sliderIndex >= 0 ? out.temperatures[view.sliderIndex] : null;
  renderWhy(out, list, atSlider);  // text first: the charts then size into a settled grid
  renderStats(out, list);
  // One y-axis for every temperature's chart (unless switched off): flattening shows as bars
  // that shrink, not as an axis that rescales.
  const ymax = document.getElementById("same-y").checked
    ? sharedYMax(out, [...list, ...(atSlider ? [atSlider] : [])]) : null;
  renderSliderBars(out, atSlider, ymax);
  renderBars(out, list, ymax);
  renderKlVsT(out, atSlider);
  renderHeatmap(out, list);
}

function renderStats(out, blocks) {
  const table = document.getElementById("stats-table");
  const head = el("tr");
  const ref = labelOf(out, out.models[0]);
  const k = out.temperatures[0].models[0].top.length;
  const heads = [["T"], ["model"], ["entropy"], ["mass outside top k", `the probability the model puts outside its own top ${k} tokens`],
    [`KL(${ref} ‖ m)`], [`its share outside top k`, `the part of KL(${ref} ‖ m) at this T that comes from the tokens outside ${ref}'s top ${k} (its tail), each token's part counted as p log(p/q) − p + q, which is never negative and sums to the KL`],
    [`KL(m ‖ ${ref})`], ["JS"], ["TV"]];
  for (const [h, title] of heads) head.append(el("th", { title }, h));
  table.tHead.replaceChildren(head);
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const block of blocks) {
    for (const m of block.models) {
      const d = block.vs_first[m.model];
      const row = el("tr");
      const cells = [block.temperature, labelOf(out, m.model), fmt(m.entropy), fmt(m.mass_outside_top_k),
        d ? fmt(d.kl_ab[out.position]) : "–", d ? pct(d.kl_ab_outside_share) : "–", d ? fmt(d.kl_ba[out.position]) : "–",
        d ? fmt(d.js[out.position]) : "–", d ? fmt(d.tv[out.position]) : "–"];
      for (const c of cells) row.append(el("td", { class: "num" }, c));
      body.append(row);
    }
  }
}

const TRUTH_LABEL = "truth (demo language, at T = 1: never softened)";

// The bars' categories: each shown token's visible text, its id added when two read the same.
function categories(out) {
  const seen = new Map();
  return out.shown.map((s) => {
    const t = plotlyText(s.token);
    seen.set(t, (seen.get(t) || 0) + 1);
    return seen.get(t) > 1 ? `${t} (id ${s.id})` : t;
  });
}

function barTraces(out, block) {
  // Categories: the union of every model's top k and the truth's (the worker's `shown`), each
  // bar a model's real probability at this T, also for tokens outside its own top k.
  const x = categories(out);
  const traces = block.models.map((m) => ({
    type: "bar", name: plotlyLabel(labelOf(out, m.model)), x, y: m.shown_probs,
    hovertemplate: "%{x}: %{y:.4f}<extra>" + plotlyLabel(labelOf(out, m.model)) + "</extra>",
  }));
  if (out.truth) {
    // The language's distribution as it is (T = 1), labelled so: a model at T > 1 is compared
    // with the truth it should have learnt, not with a softened truth.
    const truth = Object.fromEntries(out.truth.map((t) => [t.token, t.prob]));
    traces.push({ type: "bar", name: TRUTH_LABEL, x, y: out.shown.map((s) => truth[s.token] ?? 0),
                  marker: { color: "rgba(0,0,0,0.25)" }, hovertemplate: "%{x}: %{y:.4f}<extra>truth, T = 1</extra>" });
  }
  return traces;
}

function sharedYMax(out, blocks) {
  let top = 0;
  for (const b of blocks) for (const m of b.models) for (const p of m.shown_probs) top = Math.max(top, p);
  for (const t of out.truth || []) top = Math.max(top, t.prob);
  return Math.min(1, top * 1.05) || 1;
}

// A chart title's note: how much of the first model's mass its top k hold at this T (at a real
// vocabulary's high T the bars are nearly empty: the mass is in the tail, not lost).
function topShare(out, block) {
  const m = block.models[0];
  if (m.mass_outside_top_k === undefined) return "";
  return ` · ${plotlyLabel(labelOf(out, out.models[0]))}'s top ${m.top.length} hold ${pct(Math.max(0, 1 - m.mass_outside_top_k))}`;
}

function barLayout(title, height, ymax) {
  return {
    title: { text: title, font: { size: 14 } }, barmode: "group", height,
    margin: { l: 45, r: 10, t: 35, b: 80 },
    yaxis: ymax ? { title: { text: "probability" }, range: [0, ymax] } : { title: { text: "probability" }, rangemode: "tozero" },
    legend: { orientation: "h", y: -0.45 },
  };
}

function renderSliderBars(out, block, ymax) {
  const div = document.getElementById("bars-slider");
  document.getElementById("slider-note").textContent = block ? "" :
    `The temperature list is full (${MAX_TEMPERATURES}): remove one to see the slider's T.`;
  div.dataset.t = block ? String(block.temperature) : "";
  if (!block) { Plotly.purge(div); return; }
  Plotly.react(div, barTraces(out, block), barLayout(`at the slider's ${tLabel(block.temperature)}${topShare(out, block)}`, 340, ymax), PLOT_CONFIG);
}

function renderBars(out, blocks, ymax) {
  const box = document.getElementById("bars");
  box.replaceChildren();
  // Lay out every card first: drawing one before the grid settles would size it wrongly.
  const divs = blocks.map((_, bi) => {
    const card = el("div", { class: "card chart-card" });
    const div = el("div", { class: "chart", id: `bars-${bi}` });
    card.append(div);
    box.append(card);
    return div;
  });
  blocks.forEach((block, bi) => {
    Plotly.newPlot(divs[bi], barTraces(out, block), barLayout(`T = ${block.temperature}${topShare(out, block)}`, 300, ymax), PLOT_CONFIG);
  });
}

function renderKlVsT(out, atSlider) {
  // Every temperature answered (the slider's too), in order along the axis.
  const blocks = [...out.temperatures].sort((a, b) => a.temperature - b.temperature);
  const temps = blocks.map((b) => b.temperature);
  const traces = out.models.slice(1).map((m) => ({
    x: temps, y: blocks.map((b) => b.vs_first[m].kl_ab[out.position]),
    name: plotlyLabel(`KL(${labelOf(out, out.models[0])} ‖ ${labelOf(out, m)})`), mode: "lines+markers",
  }));
  if (atSlider && out.models.length > 1) {
    traces.push({ x: out.models.slice(1).map(() => atSlider.temperature),
                  y: out.models.slice(1).map((m) => atSlider.vs_first[m].kl_ab[out.position]),
                  name: "the slider's T", mode: "markers", marker: { size: 13, symbol: "circle-open", color: "#3b5bdb" } });
  }
  Plotly.newPlot("chart-kl-t", traces, {
    title: { text: "KL against temperature (this position)", font: { size: 14 } }, height: 320,
    xaxis: { title: { text: "T" }, type: "log" }, yaxis: { title: { text: "nats" } },
    margin: { l: 55, r: 10, t: 40, b: 60 },
  }, PLOT_CONFIG);
}

function renderHeatmap(out, blocks) {
  if (out.models.length < 2) { Plotly.purge("chart-heatmap"); return; }
  const m = out.models[1];
  Plotly.newPlot("chart-heatmap", [{
    type: "heatmap", z: blocks.map((b) => b.vs_first[m].kl_ab),
    x: out.tokens.map((t, i) => `${i}:${plotlyText(t)}`), y: blocks.map((b) => `T=${b.temperature}`),
    colorscale: "Viridis", colorbar: { title: { text: "nats" } },
  }], {
    title: { text: plotlyLabel(`KL(${labelOf(out, out.models[0])} ‖ ${labelOf(out, m)}) per prompt position`), font: { size: 14 } }, height: 320,
    margin: { l: 60, r: 10, t: 40, b: 80 },
  }, PLOT_CONFIG);
}

// The chat switch shows when the first model's tokenizer has a chat template (the answer says),
// before any answer for a model of the real kit, and whenever it is on (so it can be turned off).
function showChat(out) {
  const on = document.getElementById("i-chat").checked;
  const known = out ? out.chat_template : isRealKit(firstModel());
  document.getElementById("chat-field").hidden = !(on || known);
}

function renderPrompts(out) {
  // The demo language's prompts, or real-language ones (plain and chat) for the real kit.
  const real = isRealKit(out && out.models ? out.models[0] : firstModel(), out);
  const box = document.getElementById("demo-prompts");
  if (box.dataset.kind === (real ? "real" : "demo")) return;
  box.dataset.kind = real ? "real" : "demo";
  const button = (prompt, chat) => {
    const b = el("button", { type: "button", class: "link", title: chat ? "in the chat template" : "plain text" },
      prompt.replace(/\n/g, "↵"));
    b.addEventListener("click", () => {
      document.getElementById("i-prompt").value = prompt;
      document.getElementById("i-chat").checked = chat;
      showChat(null);
      run();
    });
    return b;
  };
  box.replaceChildren(real ? "prompts: " : "demo prompts: ");
  for (const prompt of real ? REAL_PROMPTS : DEMO_PROMPTS) box.append(button(prompt, false), " ");
  if (real) {
    box.append(" chat: ");
    for (const prompt of REAL_CHAT_PROMPTS) box.append(button(prompt, true), " ");
  }
}

async function initInspect() {
  const p = params();
  document.getElementById("i-models").value = p.models;
  document.getElementById("i-prompt").value = p.prompt;
  document.getElementById("i-temperatures").value = p.temperatures;
  document.getElementById("i-k").value = p.k;
  document.getElementById("i-chat").checked = p.chat;
  showChat(null);
  setSlider(p.t);
  const sameY = document.getElementById("same-y");
  sameY.checked = p.sameY;
  sameY.addEventListener("change", () => {
    const q = new URLSearchParams(window.location.search);
    if (sameY.checked) q.delete("y"); else q.set("y", "free");
    history.replaceState(null, "", `/inspect?${q}`);
    if (last.answer) renderAnswer(last.answer.out, last.answer.view);
  });
  const slider = document.getElementById("i-t");
  slider.addEventListener("input", onSlider);
  slider.addEventListener("change", onSlider);
  renderPrompts(null);
  document.getElementById("i-models").addEventListener("change", () => { renderPrompts(null); showChat(null); });
  document.getElementById("i-chat").addEventListener("change", () => run());
  const models = await api("/api/models");
  for (const m of models.body || []) document.getElementById("list-models").append(el("option", { value: m.name }));
  document.getElementById("inspect-form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
  run(p.pos);  // a shared link keeps its token position
}

initInspect();
