// Inspect page, its text helpers (no DOM, no page state): tokens as readable text, the models'
// labels and roles as an answer gives them, shares as percentages. inspect.js and the panel
// beside its charts (inspect-why.js) share them.
import { plotlyLabel } from "./common.js";

// A token is shown as the text it stands for (the worker decodes byte-level pieces: " Paris",
// never "ĠParis"), its whitespace as markers, other control characters as their byte.
const MARKERS = [[" ", "␣", "a space"], ["\n", "↵", "a newline"], ["\t", "⇥", "a tab"], ["\r", "␍", "a carriage return"]];

export function visible(token) {
  let out = token;
  for (const [c, mark] of MARKERS) out = out.split(c).join(mark);
  out = out.replace(/[\u0000-\u001f\u007f]/g, (c) => `<0x${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}>`);
  return out === "" ? "∅" : out;
}

// What the markers in these tokens mean, or "" when none is used.
export function markerLegend(tokens) {
  const parts = MARKERS.filter(([c]) => tokens.some((t) => t.includes(c))).map(([, mark, what]) => `${mark} ${what}`);
  if (tokens.some((t) => /<0x[0-9A-F]{2}>/.test(t))) parts.push("<0xE2> one byte of a character split across tokens");
  return parts.length ? `In the tokens: ${parts.join(" · ")}.` : "";
}

// The real kit's models: named smollm2-…, or recorded so by the answer (`about`).
export function isRealKit(name, out) {
  const a = out && (out.about || []).find((x) => x.model === name);
  return (a && a.kit === "smollm2") || /^smollm2/i.test(name || "");
}

// A token for Plotly, which reads a few HTML-like tags in labels.
export function plotlyText(token) {
  return plotlyLabel(visible(token));
}

export function readable(name) {
  // `run:3` is run 3's student, `run:3@200` its checkpoint at step 200; other names as they are.
  const m = /^run:(\d+)(?:@(\d+))?$/.exec(name);
  if (!m) return name;
  return m[2] === undefined ? `student of run ${m[1]}` : `student of run ${m[1]} @ step ${m[2]}`;
}

// The answer's own label for a model (a run's student is named after its run), else readable().
export function labelOf(out, name) {
  const a = (out.about || []).find((x) => x.model === name);
  return a && a.label ? a.label : readable(name);
}

export function roleOf(out, name) {
  const a = (out.about || []).find((x) => x.model === name);
  return a ? a.role : (name.startsWith("run:") ? "student" : null);
}

// A share as a percentage ("0.62 %", "99 %"), "–" when there is none.
export function pct(v) {
  if (v === null || v === undefined || !Number.isFinite(v)) return "–";
  const x = v * 100;
  return `${Math.abs(x) >= 10 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(1) : x.toPrecision(2)} %`;
}
