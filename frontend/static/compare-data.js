// The compare page's data: the metrics it charts, and requests that start from the page's head,
// before plotly.js is evaluated (the largest fixed cost of opening the page), so the runs and
// their series download while the script is parsed. compare.js takes them over.
"use strict";

const KEYS = [
  ["train/soft_loss", "soft loss (T²·KL)", "min"], ["train/hard_loss", "hard loss (CE)", "min"],
  ["train/loss", "total loss", "min"], ["eval/kl_true", "held-out KL(truth ‖ student)", "min"],
  ["eval/kl_teacher", "held-out KL(teacher ‖ student)", "min"],
  ["eval/top1_agreement", "top-1 agreement with the teacher", "max"],
  ["eval/hard_loss", "held-out cross-entropy", "min"], ["train/grad_norm", "grad norm", "min"],
];
const MAX_POINTS = 1000;  // per series: each bucket's min, max and last, so spikes survive
const MAX_RUNS = 100;  // the api's limit per /api/metrics request

function urlRunIds() {
  return (new URLSearchParams(window.location.search).get("runs") || "").split(",").map(Number).filter((x) => x > 0);
}

function fetchRuns(ids) {
  return Promise.all(ids.map((id) => fetch(`/api/runs/${id}`).then((r) => (r.ok ? r.json() : null))));
}

function fetchMetrics(ids) {
  // Columns (parallel lists) are a third of the JSON of point objects.
  const keys = encodeURIComponent(KEYS.map((k) => k[0]).join(","));
  return fetch(`/api/metrics?runs=${ids.join(",")}&keys=${keys}&max_points=${MAX_POINTS}&format=columns`)
    .then((r) => (r.ok ? r.json() : null));
}

// Started now, used once by the first load(); later loads fetch afresh.
let prefetched = (() => {
  const ids = urlRunIds();
  return ids.length ? { ids, runs: fetchRuns(ids), metrics: fetchMetrics(ids) } : null;
})();
