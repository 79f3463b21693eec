// Compare page, pure helpers (no DOM, no page state; the tests call them in Chromium with
// known values): smoothing, config values as text, which runs form a group, a group's band.
// Exponential moving average with TensorBoard's debiasing (no pull towards 0 at the start).
export function smoothEma(ys, weight) {
  const out = [];
  let last = 0, n = 0;
  for (const y of ys) {
    if (y === null || !Number.isFinite(y)) { out.push(null); continue; }
    last = last * weight + (1 - weight) * y;
    n += 1;
    out.push(weight > 0 ? last / (1 - Math.pow(weight, n)) : y);
  }
  return out;
}

// A config value as a reader wants it: null → "–", lists joined, never "None" or "[]".
export function configText(v) {
  if (v === null || v === undefined) return "–";
  if (Array.isArray(v)) return v.length ? v.map(configText).join(", ") : "–";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

// Grouping: a group is the runs that agree on the chosen field and on every other field that
// varies among the compared runs, except those a group spans: the seeds it averages over and
// the run's own name and tags. "Group by T" never averages α = 0 with α = 0.5.
const GROUP_SPANS = ["seed", "name", "tags"];
export const FIELD_NAMES = { temperature: "T", alpha: "α" };

function varyingFields(list) {
  const fields = [...new Set(list.flatMap((r) => Object.keys(r.config)))];
  return fields.filter((f) => new Set(list.map((r) => JSON.stringify(r.config[f] ?? null))).size > 1);
}

export function groupFields(field, list) {
  // Only the fields that split a group of the chosen field count: one fixed within each such
  // group (the teacher and T when grouping the built-in experiment by run name) changes no
  // group, and would only lengthen the legend.
  const byField = groupRuns(list, [field]);
  const splits = (f) => byField.some((g) => new Set(g.map((r) => JSON.stringify(r.config[f] ?? null))).size > 1);
  return [field, ...varyingFields(list).filter((f) => f !== field && !GROUP_SPANS.includes(f) && splits(f))];
}

export function groupLabel(fields, config) {
  return fields.map((f) => (f === "name" ? configText(config[f]) : `${FIELD_NAMES[f] || f} = ${configText(config[f])}`)).join(" · ");
}

export function groupRuns(list, fields) {
  const groups = new Map();
  for (const run of list) {
    const k = JSON.stringify(fields.map((f) => run.config[f] ?? null));
    if (!groups.has(k)) groups.set(k, []);
    groups.get(k).push(run);
  }
  return [...groups.values()];
}

export const hasValue = (v) => v !== null && Number.isFinite(v);

export function runCount(n) { return n === 1 ? "1 run" : `${n} runs`; }

// A group's band over its members' common x range. Each member is read at every x any member
// holds in that range, linearly between its own neighbouring points, so every point of the
// mean averages the same runs: a shorter (still running) member ends the line instead of the
// mean jumping to the others alone, and runs on different x grids (wall time) still combine.
// A null next to x is a gap: the band has a gap there, never a mean of fewer runs.
export function bandStats(seriesList) {
  const members = seriesList.map(({ x, y }) => x.map((xv, j) => [xv, y[j]]).sort((a, b) => a[0] - b[0]));
  const known = members.map((pts) => pts.filter(([, v]) => hasValue(v)));
  if (!members.length || known.some((k) => !k.length)) return { x: [], mean: [], min: [], max: [] };
  const lo = Math.max(...known.map((k) => k[0][0]));
  const hi = Math.min(...known.map((k) => k[k.length - 1][0]));
  const grid = [...new Set(members.flatMap((pts) => pts.map((p) => p[0])))]
    .filter((x) => x >= lo && x <= hi).sort((a, b) => a - b);
  const at = members.map((pts) => valuesAt(pts, grid));
  const column = (j) => at.map((vals) => vals[j]);
  const stat = (f) => grid.map((_, j) => { const c = column(j); return c.every((v) => v !== null) ? f(c) : null; });
  return { x: grid, mean: stat((c) => c.reduce((a, b) => a + b, 0) / c.length),
           min: stat((c) => Math.min(...c)), max: stat((c) => Math.max(...c)) };
}

// One member's values at the sorted grid: its own value, or linear between its neighbours;
// null outside its points or beside a gap.
function valuesAt(pts, grid) {
  let j = 0;
  return grid.map((gx) => {
    while (j < pts.length && pts[j][0] < gx) j += 1;
    if (j < pts.length && pts[j][0] === gx) return hasValue(pts[j][1]) ? pts[j][1] : null;
    if (j === 0 || j === pts.length) return null;
    const [x0, y0] = pts[j - 1], [x1, y1] = pts[j];
    return hasValue(y0) && hasValue(y1) ? y0 + (y1 - y0) * (gx - x0) / (x1 - x0) : null;
  });
}
