// Inspect page, the panel beside the charts: why distil at a temperature, written with the
// answer's own numbers (the teacher's top token at T = 1, what the slider's T reveals and what
// is only flattening toward uniform, the soft loss at that T and its T² factor). Tokens go in
// as text, never as HTML.
import { el, fmt } from "./common.js";
import { isRealKit, labelOf, pct, roleOf, visible } from "./inspect-text.js";

const CONFIDENT = 0.9;  // top-1 probability from which a distribution is called confident
const REVEAL_RANK = 5;  // a runner-up: among the model's top 5 at T = 1 (T keeps the order)
const REVEAL_LIFT = 2;  // ... that T lifts to at least twice the uniform share 1/V
// A runner-up *stands out* at the low T from this share up (or from twice 1/V, if that is more):
// at a 49,152-token vocabulary twice 1/V is 4e-5, which says nothing about standing out.
const STAND_MIN = 0.01;

function tok(token, id) { return el("span", { class: "tok", id }, `“${visible(token)}”`); }
function num(v, id) { return el("span", { class: "num", id, "data-value": v }, fmt(v)); }
function para(id, ...parts) { const p = el("p", { id }); p.append(...parts); return p; }
function change(a, b) { return b > a ? "up from" : b < a ? "down from" : "the same as"; }
function ordinal(n) { return `${n}${n % 100 >= 11 && n % 100 <= 13 ? "th" : ["th", "st", "nd", "rd"][n % 10] || "th"}`; }

// What a higher T does to each of the reference model's tokens, from the numbers alone.
// `tokens`: [{token, base, hot, rank}]: probabilities at the low and the high T, and the model's
// rank of the token in the whole vocabulary (T keeps the order; without ranks, the order among
// the tokens given). `vocab`: V. Among its runner-ups (ranks 2 to REVEAL_RANK): those at or above
// max(2/V, STAND_MIN) at the low T *stand out* without any softening; those below it that the
// higher T lifts, to at least twice the uniform share 1/V, are *revealed*; any other token that
// rises is only *flattening* toward the uniform share, which every token approaches as T grows,
// known or not.
export function classifyRunnerUps(tokens, vocab) {
  const uniform = 1 / vocab, line = REVEAL_LIFT * uniform, standLine = Math.max(line, STAND_MIN);
  const ranked = [...tokens].sort((a, b) => b.base - a.base)
    .map((t, i) => ({ ...t, rank: t.rank ?? i + 1, lift: t.hot * vocab }));
  const top = ranked.find((t) => t.rank === 1) || ranked[0];
  const rest = ranked.filter((t) => t !== top);
  const runners = rest.filter((t) => t.rank <= REVEAL_RANK);
  const standing = runners.filter((t) => t.base >= standLine);
  const revealed = runners.filter((t) => t.base < standLine && t.hot >= line && t.hot > t.base);
  const flattening = rest.filter((t) => t.hot > t.base && !standing.includes(t) && !revealed.includes(t));
  return { top, standing, revealed, flattening, uniform, standLine };
}

// The truth's rank of each token (1 = most likely; tied words share a rank), 0 when the
// language never says it.
export function truthRanks(truth, tokens) {
  const probs = new Map((truth || []).filter((t) => t.prob > 0).map((t) => [t.token, t.prob]));
  const all = [...probs.values()];
  return tokens.map((t) => (probs.has(t.token) ? 1 + all.filter((p) => p > probs.get(t.token)).length : 0));
}

export function renderWhy(out, list, atSlider) {
  const box = document.getElementById("why-body");
  const blocks = [...list, ...(atSlider && !list.includes(atSlider) ? [atSlider] : [])]
    .sort((a, b) => a.temperature - b.temperature);
  const name = out.models[0];
  const teacherLike = roleOf(out, name) !== "student";
  const who = `${teacherLike ? "the teacher" : "the reference model"} (${labelOf(out, name)})`;
  // The plain distribution: T = 1, else the lowest T above 1, else the highest T shown.
  const base = blocks.find((b) => b.temperature >= 1) || blocks[blocks.length - 1];
  // The soft end: the slider's T when it is above that, else the highest T shown.
  const hot = atSlider && atSlider.temperature > base.temperature ? atSlider : blocks[blocks.length - 1];
  const top = base.models[0].top[0];
  const rest = Math.max(0, 1 - top.prob);
  const baseT = `T = ${base.temperature}`;
  const parts = [para("why-plain", `At ${baseT}${base.temperature === 1 ? "" : " (the nearest to T = 1 shown)"}, ${who} puts `,
    num(top.prob, "why-top1-p"), " on ", tok(top.token, "why-top1"), "; all other tokens together get ", num(rest), ". ",
    top.prob >= CONFIDENT
      ? `That is a confident distribution: beyond naming its top token — all a one-hot label says — it gives the runner-ups only ${fmt(rest)} in all, so at ${baseT} a student learns little more from it than from the label.`
      : `That is not a confident distribution (top-1 below ${CONFIDENT}): at ${baseT} it already shows its runner-ups.` +
        (name === "demo-teacher-finetuned" ? ""
          : ` A teacher fine-tuned on one-hot labels${name.startsWith("demo-") ? ", such as demo-teacher-finetuned," : ""} can put nearly all its mass on one token instead, and then ${baseT} shows little beyond the label.`))];
  parts.push(hot.temperature > base.temperature ? reveals(out, base, hot, hot === atSlider, who)
    : para("why-reveals", "Add a temperature above 1 to the list, or move the slider above it, to see what T > 1 reveals."));
  const tail = tailSentence(out, base, hot, hot === atSlider, who);
  if (tail) parts.push(tail);
  const atT = atSlider || hot;
  const tText = `T = ${atT.temperature}`;
  const kls = out.models.slice(1).flatMap((m, i) => [i ? "; " : "", `KL(${labelOf(out, name)} ‖ ${labelOf(out, m)}) = `,
    num(atT.vs_first[m].kl_ab[out.position]), " nats"]);
  parts.push(para("why-same-t", "The soft loss is KL(teacher at T ‖ student at T): both models' logits are divided by the same T ",
    "before the softmax, so it compares the student at T with the teacher at T — not the student at T with itself at T = 1. ",
    "(The hard loss compares the student at T = 1 with the labels.) ",
    ...(kls.length ? [`At ${atSlider ? "the slider's " : ""}${tText}: `, ...kls, "."] : ["Add a student to the models to see that KL here."])));
  const t2 = atT.temperature ** 2;
  // The T² example needs a student; a second teacher (e.g. the calibrated one) is not one.
  const student = out.models.slice(1).find((m) => roleOf(out, m) === "student");
  parts.push(para("why-t2", "Why T²: the soft loss's gradient with respect to the student's logits is (q_T − p_T)/T, and for ",
    "large T the gap q_T − p_T itself shrinks about as 1/T, so the soft targets' gradients shrink as 1/T². Multiplying the ",
    "soft loss by T² keeps its weight against the hard loss comparable whichever T is chosen (Hinton et al. 2015)",
    ...(student ? [`: at ${tText} the factor is ${fmt(t2)}, so the KL above for ${labelOf(out, student)} counts as `,
      `${fmt(t2)} × ${fmt(atT.vs_first[student].kl_ab[out.position])} = `, num(t2 * atT.vs_first[student].kl_ab[out.position]), "."]
      : [`. Add a student (e.g. ${isRealKit(name, out) ? "smollm2-student-l10" : "demo-student-s"} or run:<id>) to the models to see it with numbers.`])));
  box.replaceChildren(...parts);
}

function reveals(out, base, hot, bySlider, who) {
  // What the higher T shows of the reference model, said only as far as the numbers go.
  const [b, h] = [base.models[0], hot.models[0]];
  const ranks = (out.shown_ranks || [])[0];
  const tokens = out.shown.map((s, i) => ({ token: s.token, base: b.shown_probs[i], hot: h.shown_probs[i], rank: ranks ? ranks[i] : undefined }));
  const { top, standing, revealed, flattening, uniform, standLine } = classifyRunnerUps(tokens, out.vocab_size);
  const [rest, restHot] = [Math.max(0, 1 - top.base), Math.max(0, 1 - top.hot)];
  const [baseT, hotT] = [`T = ${base.temperature}`, `T = ${hot.temperature}`];
  // Two significant digits: the lift, not the fourth decimal, is the point here.
  const named = (list) => list.slice(0, 3).flatMap((t, i) => [i ? ", " : "", tok(t.token), ` ${fmt(t.base, 2)} → ${fmt(t.hot, 2)}`]);
  const ordinals = (list) => list.slice(0, 3).map((t) => ordinal(t.rank)).join(", ");
  const uni = [`the uniform share 1/${out.vocab_size.toLocaleString("en-US")} = `, num(uniform, "why-uniform")];
  const tail = [];
  const span = (id, ...parts) => { const n = el("span", { id }); n.append(...parts); tail.push(n, " "); };
  if (standing.length) {
    const moves = standing.every((t) => t.hot < t.base) ? `${hotT} only pulls them toward uniform`
      : standing.every((t) => t.hot > t.base) ? `${hotT} lifts them further` : `${hotT} moves them toward uniform`;
    const above = standLine > REVEAL_LIFT * uniform ? [`above ${STAND_MIN} (far above twice `, ...uni, ")"] : ["above twice ", ...uni];
    span("why-standing", `Its runner-ups already stand out at ${baseT}, `, ...above, ": ", ...named(standing),
      ` (ranked ${ordinals(standing)}) — ${who} shows them without any softening, and ${moves}.`);
  }
  if (revealed.length) {
    span("why-revealed", `It ${standing.length ? "also " : ""}lifts runner-ups well above `, ...uni, ": ", ...named(revealed),
      ` — ranked ${ordinals(revealed)} by ${who} at ${baseT}, the tokens it finds nearly right, which a student can learn from but a label never shows.`);
  }
  if (out.truth && (standing.length || revealed.length)) {
    // Its first runner-ups that stand out, at either T, against the truth's.
    tail.push(truthSentence(out.truth, [...standing, ...revealed].sort((x, y) => x.rank - y.rank).slice(0, 3)), " ");
  }
  if (flattening.length) {
    span("why-flattening", ...(standing.length || revealed.length
      ? ["Others rise too, but stay under twice the uniform share or outside its top 5: "]
      : ["No runner-up stands out: the tokens below the top one rise only to near ", ...uni, " (under twice it): "]),
    ...named(flattening), " — that is flattening toward uniform, which every token undergoes as T grows, not a ranking the model knows.");
  }
  if (!standing.length && !revealed.length && !flattening.length) span("why-flat", `No token below its top one gains from ${baseT} to ${hotT}.`);
  return para("why-reveals", `At ${hotT}${bySlider ? " (the slider's)" : ""} the same logits give `,
    tok(top.token), ` ${fmt(top.hot)}, and the other tokens ${fmt(restHot)} (${change(rest, restHot)} ${fmt(rest)}); `,
    `the entropy is ${fmt(h.entropy)} nats (${change(b.entropy, h.entropy)} ${fmt(b.entropy)}, at most ln ${out.vocab_size.toLocaleString("en-US")} = `,
    `${fmt(Math.log(out.vocab_size))}). `, ...tail);
}

// Where the reference model's mass lies at the soft end (its top k against the tail), and how
// much of the soft loss against each other model comes from that tail: on a real vocabulary a
// high T can leave the top k with a sliver of the mass, and then the soft target mostly
// describes the tail.
function tailSentence(out, base, block, bySlider, who) {
  const m = block.models[0];
  if (m.mass_outside_top_k === undefined) return null;
  const k = m.top.length, inTop = Math.max(0, 1 - m.mass_outside_top_k);
  const rest = out.vocab_size - k, tText = `T = ${block.temperature}`;
  const atBase = block === base ? "" : ` (at T = ${base.temperature}: ${pct(Math.max(0, 1 - base.models[0].mass_outside_top_k))})`;
  const parts = [`At ${tText}${bySlider ? " (the slider's)" : ""} the top ${k} tokens of ${who} hold `, num(inTop, "why-tail-top"), ` — ${pct(inTop)} of its mass${atBase}`];
  if (inTop < 0.01) parts.push(` — under 1 %: the rest is spread over the tail of ${rest.toLocaleString("en-US")} other tokens, so a soft target at ${tText} mostly describes that tail.`);
  else if (inTop < 0.5) parts.push(` — under half: most of it is spread over the tail of ${rest.toLocaleString("en-US")} other tokens.`);
  else parts.push(`; the tail of ${rest.toLocaleString("en-US")} other tokens gets ${pct(1 - inTop)}.`);
  const pairs = out.models.slice(1).filter((n) => block.vs_first[n] && block.vs_first[n].kl_ab_outside_share !== undefined);
  pairs.forEach((n, i) => {
    const share = block.vs_first[n].kl_ab_outside_share;
    const kl = `KL(${labelOf(out, out.models[0])} ‖ ${labelOf(out, n)})`;
    if (share === null) parts.push(` ${kl} is 0 here.`);
    else if (share < 0) parts.push(` Of ${kl} at ${tText}, the tail's terms sum below zero (${pct(share)}): ${labelOf(out, n)} gives the tail more than ${who} does, and the top ${k} carry more than the whole KL.`);
    else parts.push(`${i ? "" : " Of the soft loss,"} ${kl} at ${tText}: `, el("span", { class: "num", id: i ? null : "why-tail-share", "data-value": share }, pct(share)), ` comes from the tokens outside ${i ? "that" : "the"} top ${k}.`);
  });
  return para("why-tail", ...parts);
}

function truthSentence(truth, shown) {
  // Does the model's order of its runner-ups match the truth's? Said as measured.
  const ranks = truthRanks(truth, shown);
  const absent = shown.filter((_, i) => ranks[i] === 0);
  const known = ranks.filter((r) => r > 0);
  const inOrder = known.every((r, i) => i === 0 || r >= known[i - 1]);  // tied words: either order
  // The truth's own runner-ups (its 2nd, 3rd, … word, ties included), in its order.
  const exact = inOrder && ranks.every((r) => r >= 2 && r <= shown.length + 1);
  const where = shown.map((t, i) => (ranks[i] ? `${visible(t.token)} ${ordinal(ranks[i])}` : `${visible(t.token)} never`)).join(", ");
  const truthTop = truth.slice(1, 1 + shown.length).map((t) => `“${visible(t.token)}”`).join(", ");
  let verdict;
  if (absent.length === shown.length) verdict = "none of them is a word the language would say here";
  else if (absent.length) verdict = `${absent.length} of them the language would never say here`;
  else if (exact) verdict = "exactly the truth's runner-ups, in its order";
  else if (inOrder) verdict = "in the truth's relative order, but not the truth's own runner-ups";
  else verdict = "not in the truth's order";
  return el("span", { id: "why-truth" },
    `In the true distribution they rank ${where} (its runner-ups are ${truthTop}): ${verdict}.`);
}
