// Inspect page: next-token distributions of teacher and students at several temperatures.
// Tokens are data: they go into the page as text (textContent) and into Plotly escaped.
"use strict";

const DEMO_PROMPTS = ["the lazy", "a tiny", "the big dog runs to the", "that sleepy kitten naps on a"];
let lastRequest = null;

function visible(token) {
  return token.replace(/ /g, "␣").replace(/\n/g, "⏎").replace(/\t/g, "⇥");
}

function plotlyText(token) {
  // Plotly reads a few HTML-like tags in labels; entities make it draw the characters instead.
  return visible(token).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function params() {
  const q = new URLSearchParams(window.location.search);
  return {
    models: q.get("models") || "demo-teacher,demo-student-s",
    prompt: q.get("prompt") || DEMO_PROMPTS[0],
    temperatures: q.get("temperatures") || "0.5, 1, 2, 4, 8",
    k: q.get("k") || "8",
  };
}

function readForm(position) {
  const temps = document.getElementById("i-temperatures").value.split(",").map((t) => t.trim()).filter(Boolean);
  const body = {
    models: document.getElementById("i-models").value.split(",").map((m) => m.trim()).filter(Boolean),
    prompt: document.getElementById("i-prompt").value,
    temperatures: temps.map((t) => (Number.isNaN(Number(t)) ? t : Number(t))),
    k: Number.isNaN(Number(document.getElementById("i-k").value)) ? document.getElementById("i-k").value : Number(document.getElementById("i-k").value),
  };
  if (position !== undefined && position !== null) body.position = position;
  return body;
}

function showErrors(detail) {
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
  const body = readForm(position);
  lastRequest = body;
  showErrors([]);
  const button = document.getElementById("inspect-button");
  button.disabled = true;
  button.textContent = "Inspecting…";
  try {
    const res = await api("/api/inspect", { method: "POST", body: JSON.stringify(body) });
    if (!res.ok) { showErrors(res.body ? res.body.detail : `HTTP ${res.status}`); return; }
    const q = new URLSearchParams({ models: body.models.join(","), prompt: body.prompt,
      temperatures: document.getElementById("i-temperatures").value, k: String(body.k) });
    history.replaceState(null, "", `/inspect?${q}`);
    render(res.body);
  } finally {
    button.disabled = false;
    button.textContent = "Inspect";
  }
}

function render(out) {
  document.getElementById("result").hidden = false;
  const tokens = document.getElementById("tokens");
  tokens.replaceChildren();
  out.tokens.forEach((tok, i) => {
    const b = el("button", { type: "button", class: i === out.position ? "token current" : "token",
                             title: `position ${i}` }, visible(tok));
    b.addEventListener("click", () => run(i));
    tokens.append(b);
  });
  const ref = out.models[0];
  document.getElementById("inspect-explainer").textContent =
    `Next token after “${visible(out.tokens[out.position])}” (position ${out.position}). Every bar comes from the softmax ` +
    `over all ${out.vocab_size} tokens at that temperature; a temperature above 1 flattens the distribution and shows ` +
    `which wrong tokens the model thinks are nearly right. Divergences compare each model with ${ref}.`;
  renderStats(out);
  renderBars(out);
  renderKlVsT(out);
  renderHeatmap(out);
}

function renderStats(out) {
  const table = document.getElementById("stats-table");
  const head = el("tr");
  for (const h of ["T", "model", "entropy", "mass outside top k", `KL(${out.models[0]} ‖ m)`, `KL(m ‖ ${out.models[0]})`, "JS", "TV"]) head.append(el("th", {}, h));
  table.tHead.replaceChildren(head);
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const block of out.temperatures) {
    for (const m of block.models) {
      const d = block.vs_first[m.model];
      const row = el("tr");
      const cells = [block.temperature, m.model, fmt(m.entropy), fmt(m.mass_outside_top_k),
        d ? fmt(d.kl_ab[out.position]) : "–", d ? fmt(d.kl_ba[out.position]) : "–",
        d ? fmt(d.js[out.position]) : "–", d ? fmt(d.tv[out.position]) : "–"];
      for (const c of cells) row.append(el("td", { class: "num" }, c));
      body.append(row);
    }
  }
}

function renderBars(out) {
  const box = document.getElementById("bars");
  box.replaceChildren();
  // Lay out every card first: drawing one before the grid settles would size it wrongly.
  const divs = out.temperatures.map((_, bi) => {
    const card = el("div", { class: "card chart-card" });
    const div = el("div", { class: "chart", id: `bars-${bi}` });
    card.append(div);
    box.append(card);
    return div;
  });
  out.temperatures.forEach((block, bi) => {
    const div = divs[bi];
    // Categories: the union of every model's top k, in the reference model's order first.
    const order = [];
    for (const m of block.models) for (const t of m.top) if (!order.includes(t.token)) order.push(t.token);
    const traces = block.models.map((m) => {
      const probs = Object.fromEntries(m.top.map((t) => [t.token, t.prob]));
      return { type: "bar", name: m.model, x: order.map(plotlyText), y: order.map((t) => probs[t] ?? 0),
               hovertemplate: "%{x}: %{y:.3f}<extra>" + plotlyText(m.model) + "</extra>" };
    });
    if (out.truth) {
      const truth = Object.fromEntries(out.truth.map((t) => [t.token, t.prob]));
      // The truth is a T = 1 distribution; softened like the models for comparison.
      const w = order.map((t) => Math.pow(truth[t] ?? 0, 1 / block.temperature));
      const z = out.truth.reduce((s, t) => s + Math.pow(t.prob, 1 / block.temperature), 0);
      traces.push({ type: "bar", name: "truth (demo language)", x: order.map(plotlyText), y: w.map((v) => v / z),
                    marker: { color: "rgba(0,0,0,0.25)" } });
    }
    Plotly.newPlot(div, traces, {
      title: { text: `T = ${block.temperature}`, font: { size: 14 } }, barmode: "group", height: 300,
      margin: { l: 45, r: 10, t: 35, b: 80 }, yaxis: { title: { text: "probability" }, rangemode: "tozero" },
      legend: { orientation: "h", y: -0.45 },
    }, { responsive: true, displaylogo: false });
  });
}

function renderKlVsT(out) {
  const temps = out.temperatures.map((b) => b.temperature);
  const traces = out.models.slice(1).map((m) => ({
    x: temps, y: out.temperatures.map((b) => b.vs_first[m].kl_ab[out.position]),
    name: `KL(${out.models[0]} ‖ ${m})`, mode: "lines+markers",
  }));
  Plotly.newPlot("chart-kl-t", traces, {
    title: { text: "KL against temperature (this position)", font: { size: 14 } }, height: 320,
    xaxis: { title: { text: "T" }, type: "log" }, yaxis: { title: { text: "nats" } },
    margin: { l: 55, r: 10, t: 40, b: 60 },
  }, { responsive: true, displaylogo: false });
}

function renderHeatmap(out) {
  if (out.models.length < 2) return;
  const m = out.models[1];
  Plotly.newPlot("chart-heatmap", [{
    type: "heatmap", z: out.temperatures.map((b) => b.vs_first[m].kl_ab),
    x: out.tokens.map((t, i) => `${i}:${plotlyText(t)}`), y: out.temperatures.map((b) => `T=${b.temperature}`),
    colorscale: "Viridis", colorbar: { title: { text: "nats" } },
  }], {
    title: { text: `KL(${out.models[0]} ‖ ${m}) per prompt position`, font: { size: 14 } }, height: 320,
    margin: { l: 60, r: 10, t: 40, b: 80 },
  }, { responsive: true, displaylogo: false });
}

async function init() {
  const p = params();
  document.getElementById("i-models").value = p.models;
  document.getElementById("i-prompt").value = p.prompt;
  document.getElementById("i-temperatures").value = p.temperatures;
  document.getElementById("i-k").value = p.k;
  const hints = document.getElementById("demo-prompts");
  for (const prompt of DEMO_PROMPTS) {
    const b = el("button", { type: "button", class: "link" }, prompt);
    b.addEventListener("click", () => { document.getElementById("i-prompt").value = prompt; run(); });
    hints.append(b, " ");
  }
  const models = await api("/api/models");
  for (const m of models.body || []) document.getElementById("list-models").append(el("option", { value: m.name }));
  document.getElementById("inspect-form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
  run();
}

init();
