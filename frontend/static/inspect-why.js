// Inspect page, the panel beside the charts: why distil at a temperature, written with the
// answer's own numbers (the teacher's top token at T = 1, what the slider's T reveals, the soft
// loss at that T and its T² factor). Tokens go in as text, never as HTML.
"use strict";

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
