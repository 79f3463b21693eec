// Compare page, the built-in experiment's panel (shown when the URL has ?experiment=): the
// result computed from the runs' own final numbers, never a canned claim.
"use strict";

function finalKlTrue(run) {
  const pts = ((metrics[run.id] || {})["eval/kl_true"] || []).filter((p) => p.value !== null);
  return run.status === "succeeded" && pts.length ? pts[pts.length - 1].value : null;
}

function ratio(hard, other) {
  return other <= hard ? `${(hard / other).toFixed(1)}× lower than hard labels` : `${(other / hard).toFixed(1)}× higher than hard labels`;
}

// The experiment's result, computed from the runs' own final numbers (never a canned claim).
function drawExperiment() {
  document.getElementById("experiment-panel").hidden = false;
  const done = runs.filter((r) => ENDED.includes(r.status)).length;
  document.getElementById("experiment-status").textContent = done < runs.length
    ? `${done} of ${runs.length} runs finished; the table fills in as they do.`
    : `All ${runs.length} runs finished.`;
  const groups = new Map();
  for (const r of runs) {
    if (!groups.has(r.name)) groups.set(r.name, []);
    const v = finalKlTrue(r);
    if (v !== null) groups.get(r.name).push(v);
  }
  const stat = (vs) => vs.length ? { mean: vs.reduce((a, b) => a + b, 0) / vs.length, half: (Math.max(...vs) - Math.min(...vs)) / 2, n: vs.length } : null;
  const hard = stat(groups.get("hard labels only") || []);
  const body = document.querySelector("#experiment-table tbody");
  body.replaceChildren();
  const rows = [];
  for (const [name, vs] of groups) {
    const st = stat(vs);
    rows.push([name, st]);
    const tr = el("tr");
    tr.append(el("th", {}, name), el("td", { class: "num" }, st ? `${st.mean.toFixed(3)} ± ${st.half.toFixed(3)} (${st.n} seeds)` : "running…"),
              el("td", { class: "num" }, st && hard && name !== "hard labels only" ? ratio(hard.mean, st.mean) : ""));
    body.append(tr);
  }
  const cal = rows.filter(([n, st]) => n.startsWith("calibrated") && st);
  const mem = rows.filter(([n, st]) => n.startsWith("memorised") && st);
  const text = [];
  // Every sentence follows the numbers measured above; the direction is never assumed.
  if (hard && cal.length) {
    const best = cal.reduce((a, b) => (b[1].mean < a[1].mean ? b : a));
    const worst = cal.reduce((a, b) => (b[1].mean > a[1].mean ? b : a));
    text.push(`Measured here: trained on the hard labels alone, the student ends ${hard.mean.toFixed(3)} nats/token from the true distribution.`);
    if (best[1].mean < hard.mean) {
      text.push(`Distilled from the calibrated teacher it ends ${best[1].mean.toFixed(3)} at best (${best[0]}), ${ratio(hard.mean, best[1].mean)}: the teacher's softened distribution carries the near-synonyms' frequencies, which a small set of labels can only sample.`);
    } else {
      text.push(`Distilled from the calibrated teacher it ends no better: ${best[1].mean.toFixed(3)} at best (${best[0]}). Here the teacher added nothing over the labels; check how well the teacher itself matches the truth (inspect it).`);
    }
    text.push(`Across T the calibrated runs span ${best[1].mean.toFixed(3)}–${worst[1].mean.toFixed(3)}${worst[1].mean > 1.5 * best[1].mean ? ": T matters a lot on this budget" : worst[1].mean > 1.1 * best[1].mean ? ": T changes the result, modestly" : ": T barely mattered here"}.`);
  }
  if (hard && mem.length) {
    const m = mem.map(([, st]) => st.mean);
    const lo = Math.min(...m), hi = Math.max(...m);
    text.push(`From the memorised teacher the student ends ${lo.toFixed(3)}–${hi.toFixed(3)} across T, against ${hard.mean.toFixed(3)} for hard labels` +
      (lo > 0.8 * hard.mean ? ": no temperature recovered what that teacher never learned; softening rescales its logits, it does not undo memorisation." : "."));
  }
  document.getElementById("experiment-explainer").textContent = text.join(" ");
  const pick = (name) => runs.find((r) => r.name === name && r.status === "succeeded");
  const models = ["demo-teacher", "demo-teacher-memorised"];
  for (const name of ["hard labels only", "calibrated teacher, T=2"]) { const r = pick(name); if (r) models.push(`run:${r.id}`); }
  document.getElementById("experiment-inspect").href =
    `/inspect?models=${encodeURIComponent(models.join(","))}&prompt=${encodeURIComponent("the lazy")}&temperatures=1,2,4&k=8`;
}
