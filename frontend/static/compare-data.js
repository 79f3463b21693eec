// The compare page's data: the runs compared and their series, and the requests that start from
// the page's head (an async module, evaluated before plotly.js, the largest fixed cost of
// opening the page), so the runs and their series download while that script is parsed.
// compare.js takes them over.
import { MAX_COMPARED, METRIC_KEYS, apiFetch } from "./common.js";

const MAX_POINTS = 1000;  // per series: each bucket's min, max and last, so spikes survive

// What the page shows: compare.js loads it, the panels and the export read it.
export const data = { runs: [], metrics: {} };

export function urlRunIds() {
  return (new URLSearchParams(window.location.search).get("runs") || "").split(",").map(Number).filter((x) => x > 0);
}

export function fetchRuns(ids) {
  return Promise.all(ids.map((id) => apiFetch(`/api/runs/${id}`).then((r) => (r.ok ? r.json() : null))));
}

export function fetchMetrics(ids) {
  // Columns (parallel lists) are a third of the JSON of point objects. More runs than the api
  // takes in one request are not asked for: the page says so.
  if (!ids.length || ids.length > MAX_COMPARED) return Promise.resolve(null);
  const keys = encodeURIComponent(METRIC_KEYS.map((k) => k[0]).join(","));
  return apiFetch(`/api/metrics?runs=${ids.join(",")}&keys=${keys}&max_points=${MAX_POINTS}&format=columns`)
    .then((r) => (r.ok ? r.json() : null));
}

// Started now, used once by the first load(); later loads fetch afresh.
let prefetched = (() => {
  const ids = urlRunIds();
  return ids.length ? { ids, runs: fetchRuns(ids), metrics: fetchMetrics(ids) } : null;
})();

// The early requests, if they were for these runs (once: later calls get null).
export function takePrefetched(ids) {
  const early = prefetched && prefetched.ids.join(",") === ids.join(",") ? prefetched : null;
  prefetched = null;
  return early;
}
