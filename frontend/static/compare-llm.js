// Compare page, the real kit's experiment panel ("SmolLM2 at T = 1 / 2 / 4", shown when the
// URL's experiment tag starts with "smollm2-"): how close each student came to the teacher
// (held-out KL(teacher ‖ student) at T = 1, top-1 agreement), and at each T how much of the
// teacher's mass and of the soft loss lies outside the teacher's top 8 of its vocabulary.
// Every sentence is computed from the runs' own final numbers; its direction is whatever was
// measured.
import { ENDED, api, el, plotlyLabel } from "./common.js";
import { data } from "./compare-data.js";
import { loadFinals, versus } from "./compare-experiment.js";

const LLM_KEYS = ["eval/kl_teacher", "eval/top1_agreement", "eval/hard_loss", "eval/teacher_top1_prob",
  "eval/teacher_tail_mass", "eval/soft_tail_share"];
const LLM_HARD = "SmolLM2, hard labels only";
const llmFinal = {};  // run id -> { key: final value }

export function isLlmExperiment() {
  return (new URLSearchParams(window.location.search).get("experiment") || "").startsWith("smollm2-");
}

async function loadLlmFinals() { await loadFinals(LLM_KEYS, llmFinal); }

// One row per run: its T (null for hard labels), status and final numbers (or null).
function llmRows() {
  return data.runs.map((r) => ({
    name: r.name, id: r.id, status: r.status,
    hard: r.name === LLM_HARD || (r.config && r.config.alpha === 0),
    t: r.config ? r.config.temperature : null,
    v: llmFinal[r.id] || null,
  })).sort((a, b) => (a.hard === b.hard ? a.t - b.t : a.hard ? -1 : 1));
}

const sharePct = (x) => (x === null || x === undefined ? "–" : x < 0.001 ? "< 0.1 %" : `${(100 * x).toFixed(x < 0.1 ? 1 : 0)} %`);
const fixed = (x, d = 3) => (x === null || x === undefined ? "–" : x.toFixed(d));

// Paragraphs (lists of sentences) from the rows' numbers.
export function llmText(rows) {
  const done = rows.filter((r) => r.v && r.v["eval/kl_teacher"] !== null);
  if (!done.length) return [];
  const hard = done.find((r) => r.hard);
  const soft = done.filter((r) => !r.hard);
  const first = [];
  const kl = (r) => r.v["eval/kl_teacher"];
  if (soft.length) {
    const best = soft.reduce((a, b) => (kl(b) < kl(a) ? b : a));
    const worst = soft.reduce((a, b) => (kl(b) > kl(a) ? b : a));
    first.push(`Measured here: distilled at ${soft.map((r) => `T = ${r.t}`).join(", ")}, the student ends ${soft.map((r) => fixed(kl(r))).join(", ")} nats/token from the teacher (held-out KL(teacher ‖ student) at T = 1); the closest is T = ${best.t}` +
      (soft.length > 1 && kl(worst) > 1.1 * kl(best) ? `, ${(kl(worst) / kl(best)).toFixed(1)}× closer than T = ${worst.t}.` : soft.length > 1 ? ", though T barely changed it." : "."));
    if (hard) {
      const h = kl(hard);
      first.push(`Trained on the teacher's answers alone (hard labels: sequence-level KD) it ends ${fixed(h)}; ` +
        `the closest soft run is ${versus(h, kl(best))}` +
        (kl(best) > 1.1 * h ? ": on this budget the labels alone got closer." : "."));
    }
    const agree = soft.filter((r) => r.v["eval/top1_agreement"] !== null);
    if (agree.length) first.push(`Its top token matches the teacher's at ${agree.map((r) => `${sharePct(r.v["eval/top1_agreement"])} (T = ${r.t})`).join(", ")} of held-out positions${hard && hard.v["eval/top1_agreement"] !== null ? `, ${sharePct(hard.v["eval/top1_agreement"])} with hard labels` : ""}.`);
  } else if (hard) {
    first.push(`Trained on the teacher's answers alone (hard labels), the student ends ${fixed(kl(hard))} nats/token from the teacher (held-out KL at T = 1).`);
  }
  const paragraphs = [first];
  const peak = done.map((r) => r.v["eval/teacher_top1_prob"]).find((x) => x !== null && x !== undefined);
  const tails = soft.filter((r) => r.v["eval/teacher_tail_mass"] !== null && r.v["eval/soft_tail_share"] !== null);
  const second = [];
  if (peak !== undefined) {
    second.push(`On these held-out answers the teacher's top token holds ${fixed(peak, 2)} of its probability on average at T = 1` +
      (peak >= 0.9 ? ": an instruction-tuned teacher is peaked." : peak >= 0.6 ? ": confident, but not one-hot." : ": less peaked than one might expect."));
  }
  if (tails.length) {
    const hot = tails.reduce((a, b) => (b.t > a.t ? b : a));
    const cold = tails.reduce((a, b) => (b.t < a.t ? b : a));
    const m = hot.v["eval/teacher_tail_mass"], s = hot.v["eval/soft_tail_share"];
    second.push(`Outside its top 8 tokens the teacher keeps ${tails.map((r) => `${sharePct(r.v["eval/teacher_tail_mass"])} of its mass at T = ${r.t}`).join(", ")}; ` +
      `that tail makes ${tails.map((r) => `${sharePct(r.v["eval/soft_tail_share"])}`).join(", ")} of the soft loss.`);
    if (hot !== cold) {
      second.push(s >= 0.5
        ? `At T = ${hot.t} most of what the student is taught (${sharePct(s)} of the soft loss) is about the tail, not the teacher's few runner-ups: on a real vocabulary, a high T mostly describes the tail.`
        : m > cold.v["eval/teacher_tail_mass"] + 0.05
          ? `Even at T = ${hot.t} the top 8 still carry most of the soft loss (${sharePct(1 - s)}), though the tail's mass grew from ${sharePct(cold.v["eval/teacher_tail_mass"])} to ${sharePct(m)}.`
          : `Raising T to ${hot.t} moved little mass to the tail (${sharePct(cold.v["eval/teacher_tail_mass"])} → ${sharePct(m)}).`);
    }
  }
  if (second.length) paragraphs.push(second);
  return paragraphs;
}

export async function drawLlmExperiment() {
  const panel = document.getElementById("llm-panel");
  panel.hidden = false;
  await loadLlmFinals();
  const runs = data.runs;
  const finished = runs.filter((r) => ENDED.includes(r.status)).length;
  document.getElementById("llm-status").textContent = finished < runs.length
    ? `${finished} of ${runs.length} runs finished; the table fills in as they do.`
    : `All ${runs.length} runs finished.`;
  const rows = llmRows();
  const body = document.querySelector("#llm-table tbody");
  body.replaceChildren();
  for (const r of rows) {
    const v = r.v || {};
    const tr = el("tr", { dataset: { run: String(r.id) } });
    tr.append(el("th", {}, r.hard ? "hard labels only (the teacher's answers)" : `T = ${r.t}, α = 0.9`),
      el("td", { class: "num" }, r.v ? fixed(v["eval/kl_teacher"]) : r.status),
      el("td", { class: "num" }, sharePct(v["eval/top1_agreement"])),
      el("td", { class: "num" }, fixed(v["eval/hard_loss"])),
      el("td", { class: "num" }, r.hard ? "–" : sharePct(v["eval/teacher_tail_mass"])),
      el("td", { class: "num" }, r.hard ? "–" : sharePct(v["eval/soft_tail_share"])));
    body.append(tr);
  }
  document.getElementById("llm-explainer").replaceChildren(
    ...llmText(rows).map((sentences) => el("p", {}, sentences.join(" "))));
  const teacher = runs.length && runs[0].config ? runs[0].config.teacher : "smollm2-135m-instruct";
  await drawTeacherHistogram(teacher);
  const student = rows.filter((r) => !r.hard && r.status === "succeeded").sort((a, b) => b.t - a.t)[0];
  const link = document.getElementById("llm-inspect");
  link.hidden = !student;
  if (student) {
    link.href = `/inspect?models=${encodeURIComponent(`${teacher},run:${student.id}`)}&prompt=${encodeURIComponent("What is the capital of France?")}&chat=1&temperatures=1,4&k=8&t=4`;
  }
}

// How peaked is an instruction-tuned teacher, really? The kit measured its top-1 probability at
// every held-out answer token (teacher forced) and kept the histogram in its profile.
let teacherHistogramDrawn = false;
async function drawTeacherHistogram(teacher) {
  if (teacherHistogramDrawn) return;
  const res = await api("/api/models");
  const info = (res.body || []).find((m) => m.name === teacher);
  teacherHistogramDrawn = await drawHistogram(teacher, info && info.profile && info.profile.top1_histogram);
}

// The histogram {edges, counts} of the teacher's top-1 probability; false when there is none.
export async function drawHistogram(teacher, h) {
  if (!h || !h.counts || !h.edges) return false;
  const total = h.counts.reduce((a, b) => a + b, 0) || 1;
  const labels = h.counts.map((_, i) => `${h.edges[i].toFixed(1)}–${h.edges[i + 1].toFixed(1)}`);
  const node = document.getElementById("llm-histogram");
  node.hidden = false;
  await Plotly.newPlot(node, [{
    type: "bar", x: labels, y: h.counts.map((c) => c / total), marker: { color: "#1f77b4" },
    hovertemplate: "top-1 probability %{x}: %{y:.1%} of positions<extra></extra>",
  }], {
    title: { text: plotlyLabel(`${teacher}: its top token's probability at each of ${total.toLocaleString("en-US")} held-out answer tokens (T = 1)`), font: { size: 14 } },
    height: 300, margin: { l: 55, r: 10, t: 40, b: 50 },
    xaxis: { title: { text: "probability of the teacher's top token" } },
    yaxis: { title: { text: "share of positions" }, tickformat: ".0%" },
  }, { responsive: true, displaylogo: false });
  return true;
}
