// Inspect page: next-token distributions of teacher and students at several temperatures.
// Tokens are data: they go into the page as text (textContent) and into Plotly escaped.
"use strict";

const DEMO_PROMPTS = ["the lazy", "a tiny", "the big dog runs to the", "that sleepy kitten naps on a"];
const DEFAULT_T = 2;  // the slider's T when the URL has none: the demo preset's temperature
const MAX_TEMPERATURES = 16;  // InspectRequest.temperatures
const PLOT_CONFIG = { responsive: true, displaylogo: false };
let lastRequest = null;
let sliderT = DEFAULT_T;
let sent = 0;  // requests sent; an answer to an older one arrives stale and is dropped
let debounce = null;

function visible(token) {
  return token.replace(/ /g, "␣").replace(/\n/g, "⏎").replace(/\t/g, "⇥");
}

function plotlyText(token) {
  // Plotly reads a few HTML-like tags in labels; entities make it draw the characters instead.
  return visible(token).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

function readable(name) {
  // `run:3` is run 3's student, `run:3@200` its checkpoint at step 200; other names as they are.
  const m = /^run:(\d+)(?:@(\d+))?$/.exec(name);
  if (!m) return name;
  return m[2] === undefined ? `student of run ${m[1]}` : `student of run ${m[1]} @ step ${m[2]}`;
}

function params() {
  const q = new URLSearchParams(window.location.search);
  const t = Number(q.get("t"));
  return {
    models: q.get("models") || "demo-teacher,demo-student-s",
    prompt: q.get("prompt") || DEMO_PROMPTS[0],
    temperatures: q.get("temperatures") || "0.5, 1, 2, 4, 8",
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
    const samePrompt = lastRequest && lastRequest.prompt === document.getElementById("i-prompt").value;
    run(samePrompt ? lastRequest.position : undefined);
  }, 250);
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
  clearTimeout(debounce);
  const body = readForm(position);
  const view = withSlider(body);
  lastRequest = body;
  const mine = ++sent;
  showErrors([]);
  const button = document.getElementById("inspect-button");
  button.disabled = true;
  button.textContent = "Inspecting…";
  try {
    const res = await api("/api/inspect", { method: "POST", body: JSON.stringify(body) });
    if (mine !== sent) return;  // a newer request is on its way: this answer is out of date
    if (!res.ok) { showErrors(res.body ? res.body.detail : `HTTP ${res.status}`); return; }
    const q = new URLSearchParams({ models: body.models.join(","), prompt: body.prompt,
      temperatures: document.getElementById("i-temperatures").value, k: String(body.k), t: String(sliderT) });
    if (body.position !== undefined) q.set("pos", String(res.body.position));  // a clicked token
    history.replaceState(null, "", `/inspect?${q}`);
    render(res.body, view);
  } finally {
    if (mine === sent) {
      button.disabled = false;
      button.textContent = "Inspect";
    }
  }
}

function render(out, view) {
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
  if (out.truncated_to) document.getElementById("inspect-explainer").textContent +=
    ` The prompt was cut to its first ${out.truncated_to} tokens (the models' context).`;
  const list = out.temperatures.slice(0, view.listCount);
  const atSlider = view.sliderIndex >= 0 ? out.temperatures[view.sliderIndex] : null;
  renderWhy(out, list, atSlider);  // text first: the charts then size into a settled grid
  renderStats(out, list);
  renderSliderBars(out, atSlider);
  renderBars(out, list);
  renderKlVsT(out, atSlider);
  renderHeatmap(out, list);
}

function renderStats(out, blocks) {
  const table = document.getElementById("stats-table");
  const head = el("tr");
  for (const h of ["T", "model", "entropy", "mass outside top k", `KL(${out.models[0]} ‖ m)`, `KL(m ‖ ${out.models[0]})`, "JS", "TV"]) head.append(el("th", {}, h));
  table.tHead.replaceChildren(head);
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const block of blocks) {
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

function barTraces(out, block) {
  // Categories: the union of every model's top k, in the reference model's order first.
  const order = [];
  for (const m of block.models) for (const t of m.top) if (!order.includes(t.token)) order.push(t.token);
  const traces = block.models.map((m) => {
    const probs = Object.fromEntries(m.top.map((t) => [t.token, t.prob]));
    return { type: "bar", name: plotlyLabel(m.model), x: order.map(plotlyText), y: order.map((t) => probs[t] ?? 0),
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
  return traces;
}

function barLayout(title, height) {
  return {
    title: { text: title, font: { size: 14 } }, barmode: "group", height,
    margin: { l: 45, r: 10, t: 35, b: 80 }, yaxis: { title: { text: "probability" }, rangemode: "tozero" },
    legend: { orientation: "h", y: -0.45 },
  };
}

function renderSliderBars(out, block) {
  const div = document.getElementById("bars-slider");
  document.getElementById("slider-note").textContent = block ? "" :
    `The temperature list is full (${MAX_TEMPERATURES}): remove one to see the slider's T.`;
  div.dataset.t = block ? String(block.temperature) : "";
  if (!block) { Plotly.purge(div); return; }
  Plotly.react(div, barTraces(out, block), barLayout(`at the slider's ${tLabel(block.temperature)}`, 340), PLOT_CONFIG);
}

function renderBars(out, blocks) {
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
    Plotly.newPlot(divs[bi], barTraces(out, block), barLayout(`T = ${block.temperature}`, 300), PLOT_CONFIG);
  });
}

function renderKlVsT(out, atSlider) {
  // Every temperature answered (the slider's too), in order along the axis.
  const blocks = [...out.temperatures].sort((a, b) => a.temperature - b.temperature);
  const temps = blocks.map((b) => b.temperature);
  const traces = out.models.slice(1).map((m) => ({
    x: temps, y: blocks.map((b) => b.vs_first[m].kl_ab[out.position]),
    name: plotlyLabel(`KL(${out.models[0]} ‖ ${m})`), mode: "lines+markers",
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
    title: { text: plotlyLabel(`KL(${out.models[0]} ‖ ${m}) per prompt position`), font: { size: 14 } }, height: 320,
    margin: { l: 60, r: 10, t: 40, b: 80 },
  }, PLOT_CONFIG);
}

// The explainer: every sentence is built from this answer's numbers, tokens as text.
function tok(token, id) { return el("span", { class: "tok", id }, `“${visible(token)}”`); }
function num(v, id) { return el("span", { class: "num", id, "data-value": v }, fmt(v)); }
function para(id, ...parts) { const p = el("p", { id }); p.append(...parts); return p; }
function change(a, b) { return b > a ? "up from" : b < a ? "down from" : "the same as"; }

function renderWhy(out, list, atSlider) {
  const box = document.getElementById("why-body");
  const blocks = [...list, ...(atSlider && !list.includes(atSlider) ? [atSlider] : [])]
    .sort((a, b) => a.temperature - b.temperature);
  const name = out.models[0];
  const who = `${name.startsWith("run:") ? "the reference model" : "the teacher"} (${readable(name)})`;
  // The plain distribution: T = 1, else the lowest T above 1, else the highest T shown.
  const base = blocks.find((b) => b.temperature >= 1) || blocks[blocks.length - 1];
  // The soft end: the slider's T when it is above that, else the highest T shown.
  const hot = atSlider && atSlider.temperature > base.temperature ? atSlider : blocks[blocks.length - 1];
  const top = base.models[0].top[0];
  const rest = Math.max(0, 1 - top.prob);
  const baseT = `T = ${base.temperature}`;
  const parts = [para("why-plain", `At ${baseT}${base.temperature === 1 ? "" : " (the nearest to T = 1 shown)"}, ${who} puts `,
    num(top.prob, "why-top1-p"), " on ", tok(top.token, "why-top1"), "; all other tokens together get ", num(rest), ". ",
    top.prob >= 0.9
      ? `That is a confident distribution: beyond naming its top token — all a one-hot label says — it gives the runner-ups only ${fmt(rest)} in all, so at ${baseT} a student learns little more from it than from the label.`
      : `That is not a confident distribution (top-1 below 0.9), so ${baseT} already shows runner-ups here; a well-trained teacher is usually peaked at T = 1, and then its distribution carries little beyond the label.`)];
  parts.push(hot.temperature > base.temperature ? reveals(out, base, hot, hot === atSlider, who)
    : para("why-reveals", "Add a temperature above 1 to the list, or move the slider above it, to see what T > 1 reveals."));
  const atT = atSlider || hot;
  const tText = `T = ${atT.temperature}`;
  const kls = out.models.slice(1).flatMap((m, i) => [i ? "; " : "", `KL(${readable(name)} ‖ ${readable(m)}) = `,
    num(atT.vs_first[m].kl_ab[out.position]), " nats"]);
  parts.push(para("why-same-t", "The soft loss is KL(teacher at T ‖ student at T): both models' logits are divided by the same T ",
    "before the softmax, so it compares the student at T with the teacher at T — not the student at T with itself at T = 1. ",
    "(The hard loss compares the student at T = 1 with the labels.) ",
    ...(kls.length ? [`At ${atSlider ? "the slider's " : ""}${tText}: `, ...kls, "."] : ["Add a student to the models to see that KL here."])));
  const t2 = atT.temperature ** 2;
  const student = out.models[1];
  parts.push(para("why-t2", "Why T²: the soft loss's gradient with respect to the student's logits is (q_T − p_T)/T, and for ",
    "large T the gap q_T − p_T itself shrinks about as 1/T, so the soft targets' gradients shrink as 1/T². Multiplying the ",
    "soft loss by T² keeps its weight against the hard loss comparable whichever T is chosen (Hinton et al. 2015)",
    ...(student ? [`: at ${tText} the factor is ${fmt(t2)}, so the KL above for ${readable(student)} counts as `,
      `${fmt(t2)} × ${fmt(atT.vs_first[student].kl_ab[out.position])} = `, num(t2 * atT.vs_first[student].kl_ab[out.position]), "."] : ["."])));
  box.replaceChildren(...parts);
}

function reveals(out, base, hot, bySlider, who) {
  // What the higher T shows of the reference model, said only as far as the numbers go.
  const [b, h] = [base.models[0], hot.models[0]];
  const top = b.top[0];
  const hotTop = h.top.find((t) => t.id === top.id) || { prob: 0 };
  const [rest, restHot] = [Math.max(0, 1 - top.prob), Math.max(0, 1 - hotTop.prob)];
  const baseProbs = new Map(b.top.map((t) => [t.id, t.prob]));
  const floor = Math.min(...b.top.map((t) => t.prob));  // a token outside the top k has at most this
  const ups = h.top.filter((t) => t.id !== top.id).slice(0, 3).map((t) => ({ t, before: baseProbs.get(t.id) }));
  const rose = (u) => u.t.prob > (u.before ?? floor);
  const named = (list) => list.flatMap((u, i) => [i ? ", " : "", tok(u.t.token),
    ` ${u.before === undefined ? `≤ ${fmt(floor)}` : fmt(u.before)} → ${fmt(u.t.prob)}`]);
  const [baseT, hotT] = [`T = ${base.temperature}`, `T = ${hot.temperature}`];
  const rising = ups.filter(rose);
  const tail = !ups.length ? [] : rising.length
    ? [`From ${baseT} to ${hotT} it lifts the runner-ups: `, ...named(rising),
       ` — the tokens ${who} finds nearly right, which a student can learn from but a label never shows.`]
    : [`Its top runner-ups do not gain here (`, ...named(ups), `): the mass outside the top ${b.top.length} goes from `,
       `${fmt(b.mass_outside_top_k)} to ${fmt(h.mass_outside_top_k)}, spread over the rest of the ${out.vocab_size} tokens. `,
       "With a peaked teacher, T > 1 is what lifts the runner-ups into view."];
  return para("why-reveals", `At ${hotT}${bySlider ? " (the slider's)" : ""} the same logits give `,
    tok(top.token), ` ${fmt(hotTop.prob)}, and the other tokens ${fmt(restHot)} (${change(rest, restHot)} ${fmt(rest)}); `,
    `the entropy is ${fmt(h.entropy)} nats (${change(b.entropy, h.entropy)} ${fmt(b.entropy)}, at most ln ${out.vocab_size} = `,
    `${fmt(Math.log(out.vocab_size))}). `, ...tail);
}

async function init() {
  const p = params();
  document.getElementById("i-models").value = p.models;
  document.getElementById("i-prompt").value = p.prompt;
  document.getElementById("i-temperatures").value = p.temperatures;
  document.getElementById("i-k").value = p.k;
  setSlider(p.t);
  const slider = document.getElementById("i-t");
  slider.addEventListener("input", onSlider);
  slider.addEventListener("change", onSlider);
  const hints = document.getElementById("demo-prompts");
  for (const prompt of DEMO_PROMPTS) {
    const b = el("button", { type: "button", class: "link" }, prompt);
    b.addEventListener("click", () => { document.getElementById("i-prompt").value = prompt; run(); });
    hints.append(b, " ");
  }
  const models = await api("/api/models");
  for (const m of models.body || []) document.getElementById("list-models").append(el("option", { value: m.name }));
  document.getElementById("inspect-form").addEventListener("submit", (e) => { e.preventDefault(); run(); });
  run(p.pos);  // a shared link keeps its token position
}

init();
