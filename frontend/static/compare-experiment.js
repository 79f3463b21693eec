// Compare page, the built-in experiment's panel (shown when the URL has ?experiment=): the
// result computed from the runs' own final numbers, never a canned claim; its direction is
// whatever was measured.
import { ENDED, api, el } from "./common.js";
import { data } from "./compare-data.js";

const EXPERIMENT_KEYS = ["eval/kl_true", "eval/top5_true", "eval/top1_prob"];
const HARD = "hard labels only";
const TEACHER_ROWS = [  // [name prefix in the runs' names, the teacher's model name]
  ["calibrated teacher", "demo-teacher"],
  ["fine-tuned (peaked) teacher", "demo-teacher-finetuned"],
  ["memorised teacher", "demo-teacher-memorised"],
];
export const experimentFinal = {};  // run id -> { key: final value }

function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

// How a value compares with the hard-label baseline, in words that fit the size of the gap.
export function versus(hard, other) {
  const r = other / hard;
  if (r >= 0.9 && r <= 1.1) return `about the same as hard labels (${r >= 1 ? "+" : "−"}${Math.abs(Math.round((r - 1) * 100))} %)`;
  if (r < 1) return r <= 0.5 ? `${(1 / r).toFixed(1)}× lower than hard labels` : `${Math.round((1 - r) * 100)} % lower than hard labels`;
  return r >= 2 ? `${r.toFixed(1)}× higher than hard labels` : `${Math.round((r - 1) * 100)} % higher than hard labels`;
}

// Mean and half-range over the seeds that finished, or null.
function seedStats(values) {
  if (!values.length) return null;
  return { mean: values.reduce((a, b) => a + b, 0) / values.length,
           half: (Math.max(...values) - Math.min(...values)) / 2, n: values.length };
}

// The last value of each key for every succeeded run not yet in `finals` (run id -> values);
// an experiment panel's numbers. Shared with compare-llm.js.
export async function loadFinals(keys, finals) {
  const done = data.runs.filter((r) => r.status === "succeeded" && !(r.id in finals));
  if (!done.length) return;
  const res = await api(`/api/metrics?runs=${done.map((r) => r.id).join(",")}&keys=${encodeURIComponent(keys.join(","))}&format=columns`);
  if (!res.ok) return;
  const body = res.body;
  for (const r of done) {
    const byKey = (body.runs || {})[r.id] || {};
    finals[r.id] = Object.fromEntries(keys.map((k) => {
      const vs = ((byKey[k] || {}).value || []).filter((v) => v !== null);
      return [k, vs.length ? vs[vs.length - 1] : null];
    }));
  }
}

async function loadExperimentFinals() { await loadFinals(EXPERIMENT_KEYS, experimentFinal); }

// One row per run name (hard labels, then each teacher at each T), with its seeds' numbers.
function experimentRows() {
  const rows = new Map();
  for (const r of data.runs) {
    if (!rows.has(r.name)) rows.set(r.name, { name: r.name, runs: [] });
    rows.get(r.name).runs.push(r);
  }
  const order = (name) => {
    if (name === HARD) return 0;
    const i = TEACHER_ROWS.findIndex(([prefix]) => name.startsWith(prefix));
    const t = Number((/T=([0-9.]+)/.exec(name) || [])[1]);
    return 1 + (i < 0 ? 9 : i) * 100 + (Number.isFinite(t) ? t : 99);
  };
  return [...rows.values()].sort((a, b) => order(a.name) - order(b.name)).map((row) => {
    const finals = row.runs.map((r) => experimentFinal[r.id]).filter((f) => f && f["eval/kl_true"] !== null);
    const stat = (k) => seedStats(finals.map((f) => f[k]).filter((v) => v !== null));
    const counts = {};
    for (const r of row.runs) counts[r.status] = (counts[r.status] || 0) + 1;
    const t = Number((/T=([0-9.]+)/.exec(row.name) || [])[1]);
    return { ...row, kl: stat("eval/kl_true"), top5: stat("eval/top5_true"), top1: stat("eval/top1_prob"),
             counts, t: Number.isFinite(t) ? t : null };
  });
}

function progressText(row) {
  // What the seeds are doing, in their own words: never "running…" for a queued run.
  const parts = [];
  for (const s of ["running", "queued", "failed", "cancelled", "lost"]) if (row.counts[s]) parts.push(`${row.counts[s]} ${s}`);
  return parts.join(", ");
}

function klCell(row) {
  const pending = progressText(row);
  if (!row.kl) return pending || "–";
  const text = `${row.kl.mean.toFixed(3)} ± ${row.kl.half.toFixed(3)} (${plural(row.kl.n, "seed")})`;
  return pending ? `${text}; ${pending}` : text;
}

export async function drawExperiment() {
  document.getElementById("experiment-panel").hidden = false;
  await loadExperimentFinals();
  const counts = {};
  const runs = data.runs;
  for (const r of runs) counts[r.status] = (counts[r.status] || 0) + 1;
  const finished = runs.filter((r) => ENDED.includes(r.status)).length;
  document.getElementById("experiment-status").textContent = finished < runs.length
    ? `${finished} of ${runs.length} runs finished (${["running", "queued"].filter((s) => counts[s]).map((s) => `${counts[s]} ${s}`).join(", ")}); the table fills in as they do.`
    : `All ${runs.length} runs finished.`;
  const rows = experimentRows();
  const hardRow = rows.find((r) => r.name === HARD) || {};
  const hard = hardRow.kl;
  const body = document.querySelector("#experiment-table tbody");
  body.replaceChildren();
  for (const row of rows) {
    const tr = el("tr", { dataset: { row: row.name } });
    tr.append(el("th", {}, row.name), el("td", { class: "num" }, klCell(row)),
      el("td", {}, row.kl && hard && row.name !== HARD ? versus(hard.mean, row.kl.mean) : ""),
      el("td", { class: "num" }, row.top5 ? row.top5.mean.toFixed(2) : "–"),
      el("td", { class: "num" }, row.top1 ? row.top1.mean.toFixed(2) : "–"));
    body.append(tr);
  }
  // One paragraph per teacher, its sentences joined.
  document.getElementById("experiment-explainer").replaceChildren(
    ...experimentText(rows, hardRow).map((sentences) => el("p", {}, sentences.join(" "))));
  drawExperimentLinks(rows);
}

// Every sentence follows the numbers in the table; the direction is never assumed. Returns
// paragraphs (lists of sentences): labels and the calibrated teacher, the fine-tuned one, the
// memorised one.
function experimentText(rows, hardRow) {
  const text = [];
  const paragraphs = [text];
  const hard = hardRow.kl;
  if (!hard) return [];
  const of = (prefix) => rows.filter((r) => r.name.startsWith(prefix) && r.kl);
  const [cal, ft, mem] = TEACHER_ROWS.map(([prefix]) => of(prefix));
  const best = (list) => list.reduce((a, b) => (b.kl.mean < a.kl.mean ? b : a));
  const worst = (list) => list.reduce((a, b) => (b.kl.mean > a.kl.mean ? b : a));
  const f = (v) => v.toFixed(3);
  text.push(`Measured here: trained on the hard labels alone, the student ends ${f(hard.mean)} nats/token from the true distribution (held-out KL(truth ‖ student)).`);
  if (cal.length) {
    const b = best(cal), w = worst(cal);
    text.push(b.kl.mean < 0.9 * hard.mean
      ? `Distilled from the calibrated teacher it ends ${f(b.kl.mean)} at best (T = ${b.t}), ${versus(hard.mean, b.kl.mean)}: the teacher's distribution carries the near-synonyms' frequencies, which a small set of labels can only sample.`
      : `Distilled from the calibrated teacher it ends no better than with the labels: ${f(b.kl.mean)} at best (T = ${b.t}).`);
    if (cal.length > 1) text.push(`Across T the calibrated runs span ${f(b.kl.mean)}–${f(w.kl.mean)}${spread(b.kl.mean, w.kl.mean)}.`);
  }
  if (ft.length) paragraphs.push(peakedText(ft, cal.length ? best(cal) : null, hardRow));
  if (mem.length) {
    const m = mem.map((r) => r.kl.mean);
    const lo = Math.min(...m), hi = Math.max(...m);
    paragraphs.push([mem.length < 2
      ? `From the memorised teacher the student ends ${f(lo)} at T = ${mem[0].t} so far, against ${f(hard.mean)} for hard labels.`
      : `From the memorised teacher the student ends ${f(lo)}–${f(hi)} across T, against ${f(hard.mean)} for hard labels` +
        (lo > 0.8 * hard.mean ? ": no temperature recovered what that teacher never learned; softening rescales its logits, it does not undo memorisation." : ".")]);
  }
  return paragraphs;
}

function spread(lo, hi) {
  return hi > 1.5 * lo ? ": T matters a lot on this budget" : hi > 1.1 * lo ? ": T changes the result, modestly" : ": T barely mattered here";
}

// The question the fine-tuned teacher asks: does T > 1 recover from a peaked teacher what
// T = 1 cannot? Answered with its own rows: KL to the truth, the truth's top 5 kept, and how
// peaked the students came out.
function peakedText(ft, calBest, hardRow) {
  const hard = hardRow.kl;
  const f = (v) => v.toFixed(3);
  const at1 = ft.find((r) => r.t === 1);
  const hot = ft.filter((r) => r.t > 1);
  const text = [];
  if (!at1 || !hot.length) {
    const lo = Math.min(...ft.map((r) => r.kl.mean));
    text.push(`From the fine-tuned (peaked) teacher the student ends ${f(lo)} at best so far.`);
    return text;
  }
  const bestHot = hot.reduce((a, b) => (b.kl.mean < a.kl.mean ? b : a));
  const hotRange = hot.map((r) => `${f(r.kl.mean)} at T = ${r.t}`).join(", ");
  let verdict;
  if (bestHot.kl.mean < 0.9 * at1.kl.mean) {
    verdict = `a higher T helped: ${f(at1.kl.mean)} at T = 1, ${hotRange} — softening brought back runner-ups that its peaked softmax hides at T = 1.`;
  } else if (bestHot.kl.mean > 1.1 * at1.kl.mean) {
    verdict = `T > 1 did not recover what T = 1 could not: ${f(at1.kl.mean)} at T = 1, ${hotRange}.`;
  } else {
    verdict = `T barely changed the result: ${f(at1.kl.mean)} at T = 1, ${hotRange}.`;
  }
  text.push(`From the fine-tuned (peaked) teacher, ${verdict}`);
  const hot4 = hot.reduce((a, b) => (b.t > a.t ? b : a));
  if (at1.top1 && hot4.top1) {
    const [p1, p4] = [at1.top1.mean, hot4.top1.mean];
    const peaked = p4 > p1 + 0.01 ? `more peaked at T = ${hot4.t} (${p4.toFixed(2)} on their top token on average, ${p1.toFixed(2)} at T = 1): matching the teacher at a high T makes the student copy its logits, over-confidence included`
      : p4 < p1 - 0.01 ? `less peaked at T = ${hot4.t} (${p4.toFixed(2)} on their top token on average, ${p1.toFixed(2)} at T = 1)`
      : `as peaked at T = ${hot4.t} as at T = 1 (${p4.toFixed(2)} and ${p1.toFixed(2)} on their top token on average)`;
    text.push(`Its students came out ${peaked}.`);
  }
  if (at1.top5 && hot4.top5) {
    const [o1, o4] = [at1.top5.mean, hot4.top5.mean];
    text.push(Math.abs(o4 - o1) < 0.02
      ? `They keep as much of the truth's top-5 ranking at T = ${hot4.t} as at T = 1 (${o4.toFixed(2)} and ${o1.toFixed(2)})`
      : `They keep ${o4 > o1 ? "more" : "less"} of the truth's top-5 ranking at T = ${hot4.t} than at T = 1 (${o4.toFixed(2)} against ${o1.toFixed(2)})`);
    const all = [at1, ...hot];
    const lo = all.every((r) => r.top5) ? Math.min(...all.map((r) => r.top5.mean)) : null;
    const h5 = hardRow.top5 ? hardRow.top5.mean : null;
    text[text.length - 1] += h5 === null || lo === null ? "."
      : lo > h5 + 0.02 ? `, and at every T more than the hard-label student (${h5.toFixed(2)}): its runner-ups' order reaches them even from a peaked teacher.`
      : `; the hard-label student keeps ${h5.toFixed(2)}.`;
  }
  const bestFt = [at1, ...hot].reduce((a, b) => (b.kl.mean < a.kl.mean ? b : a));
  if (calBest) {
    text.push(bestFt.kl.mean > 1.1 * calBest.kl.mean
      ? `Either way the calibrated teacher it was fine-tuned from did better (${f(calBest.kl.mean)} at best): a peaked softmax is information lost, and T only rescales what is left.`
      : bestFt.kl.mean < 0.9 * calBest.kl.mean
        ? `That is better than the calibrated teacher it was fine-tuned from (${f(calBest.kl.mean)} at best).`
        : `That is about as good as the calibrated teacher it was fine-tuned from (${f(calBest.kl.mean)} at best).`);
  } else {
    text.push(`Hard labels: ${f(hard.mean)}.`);
  }
  return text;
}

function drawExperimentLinks(rows) {
  // Students are runs; each link's first model is the teacher they were distilled from.
  const student = (name) => {
    const row = rows.find((r) => r.name === name);
    const r = row && row.runs.find((x) => x.status === "succeeded");
    return r ? `run:${r.id}` : null;
  };
  const link = (id, models) => {
    const a = document.getElementById(id);
    const have = models.filter(Boolean);
    a.hidden = have.length < 2;
    a.href = `/inspect?models=${encodeURIComponent(have.join(","))}&prompt=${encodeURIComponent("the lazy")}&temperatures=1,2,4&k=8&t=4`;
  };
  link("experiment-inspect-peaked", ["demo-teacher-finetuned", student("fine-tuned (peaked) teacher, T=1"), student("fine-tuned (peaked) teacher, T=4")]);
  link("experiment-inspect", ["demo-teacher", student("calibrated teacher, T=4"), student(HARD)]);
}
