// Compare page, *Export as HTML*: one self-contained file built here in the browser from what
// the page shows (each chart's own data and layout, the summary and config tables as rendered)
// with plotly.js and the stylesheet inlined. Nothing is recomputed, so the file draws exactly
// the page's charts, and opens offline. Every text a run brings (its name, tags, config) goes in
// as text or escaped: nothing in the file is markup made from it. compare.js wires the button.
import { apiFetch, el } from "./common.js";

const EXPORT_PLOTLY = "/static/vendor/plotly-cartesian-4.1.1.min.js";

async function fetchText(url) {
  const res = await apiFetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.text();
}

// JSON inside <script>: "<" escaped (\u003c is the same string to JSON.parse), so a run named
// "</script><img …>" cannot end the script and become markup.
function scriptJson(value) {
  return JSON.stringify(value).replace(/</g, "\\u003c");
}

// plotly.js inlined: it holds no "</script" today; were one to appear, "<\/" is the same text.
function scriptCode(js) {
  return js.replace(/<\/script/gi, "<\\/script");
}

// Plotly draws a few tags (<a href>, <b>) in names and titles: the page's own are escaped
// (plotlyLabel), and a "<" that is left is escaped here too, so the file shows it as text.
function noTags(v) {
  return typeof v === "string" ? v.replace(/</g, "&lt;").replace(/>/g, "&gt;") : v;
}

function safeFigure(div) {
  const data = div.data.map((t) => ({ ...t, name: noTags(t.name), text: noTags(t.text),
                                      hovertext: noTags(t.hovertext) }));
  const layout = JSON.parse(JSON.stringify(div.layout));
  for (const part of [layout, layout.xaxis, layout.yaxis]) {
    if (part && part.title && typeof part.title === "object") part.title.text = noTags(part.title.text);
  }
  return { id: div.id, data, layout };
}

// The file's name: its runs' ids, or for many the first, the last and how many (a hundred ids
// in a row pass the file system's 255-byte limit on a name, and the download fails).
function exportName(runIds) {
  if (runIds.join("-").length <= 60) return `distillscope-compare-${runIds.join("-")}.html`;
  return `distillscope-compare-${runIds.length}-runs-${runIds[0]}-to-${runIds[runIds.length - 1]}.html`;
}

function exportDocument(plotlyJs, css, settings) {
  const title = document.getElementById("compare-title").textContent;
  const doc = document.implementation.createHTMLDocument(`distillscope — ${title}`);
  doc.documentElement.lang = "en";
  const charset = doc.createElement("meta");
  charset.setAttribute("charset", "utf-8");
  doc.head.prepend(charset);
  const style = doc.createElement("style");
  style.textContent = css;
  doc.head.append(style);

  const main = el("main");
  const intro = el("section", { class: "card" });
  intro.append(el("h2", {}, `distillscope: ${title}`), el("p", { class: "hint" }, settings));
  const hint = document.getElementById("group-hint").textContent;
  if (hint) intro.append(el("p", { class: "hint" }, hint));
  intro.append(el("p", { class: "hint" }, `Exported ${new Date().toLocaleString()} from ${window.location.href}`));
  const charts = el("section", { class: "charts" });
  const figures = [...document.querySelectorAll("#compare-charts .js-plotly-plot")].map((div) => {
    const card = el("div", { class: "card chart-card" });
    card.append(el("div", { class: "chart", id: div.id }));
    charts.append(card);
    return safeFigure(div);
  });
  main.append(intro, charts);
  for (const [heading, id] of [["Summary (final and best values)", "summary-table"], ["Config", "config-compare"]]) {
    const card = el("section", { class: "card" });
    card.append(el("h3", {}, heading), doc.importNode(document.getElementById(id), true));
    main.append(card);
  }
  doc.body.append(main);

  const plotly = doc.createElement("script");
  plotly.textContent = scriptCode(plotlyJs);
  const data = doc.createElement("script");
  data.type = "application/json";
  data.id = "figures";
  data.textContent = scriptJson(figures);
  const draw = doc.createElement("script");
  draw.textContent = `for (const f of JSON.parse(document.getElementById("figures").textContent)) {
  Plotly.newPlot(document.getElementById(f.id), f.data, f.layout, { responsive: true, displaylogo: false });
}`;
  doc.body.append(plotly, data, draw);
  return `<!doctype html>\n${doc.documentElement.outerHTML}\n`;
}

function downloadText(text, filename) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/html" }));
  const a = el("a", { href: url, download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

export async function exportHtml(settings, runIds) {
  const button = document.getElementById("export");
  button.disabled = true;
  try {
    const [plotlyJs, css] = await Promise.all([fetchText(EXPORT_PLOTLY), fetchText("/static/style.css")]);
    downloadText(exportDocument(plotlyJs, css, settings), exportName(runIds));
  } catch (err) {
    document.getElementById("compare-error").textContent = `Export failed: ${err.message}`;
  } finally {
    button.disabled = false;
  }
}
