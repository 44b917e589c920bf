// meterline dashboard: each page reads the JSON API (/openapi.json) and draws with Chart.js.
// Text from the ledger is only ever set as textContent (never parsed as HTML).
"use strict";

const PALETTE = ["#2f5fd0", "#e07a1f", "#2e9d5b", "#c23b5a", "#7a4fd0", "#1f9bb0", "#b0961f",
  "#5d6778", "#d05fb0", "#4f8f2e", "#8f2e2e", "#2e4f8f", "#a0a0a0"];
const HIERARCHY = ["org", "user", "session", "thread", "agent", "tool"];
const page = document.body.dataset.page;
const REFRESH_MS = Number(document.body.dataset.refreshMs) || 3000;
const TABLE_ROWS = 500; // the explore table's rows at most: the costliest groups (a browser holds no 100,000-row table)

// ---------------------------------------------------------------------------------------------
// helpers

async function api(path, params) {
  const query = params ? "?" + params.toString() : "";
  const response = await fetch(path + query, { headers: { Accept: "application/json" } });
  const body = await response.json();
  if (!response.ok) {
    throw new Error(body.error || response.statusText);
  }
  return body;
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = String(error.message || error);
  box.hidden = false;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function link(text, href) {
  return el("a", text, { href });
}

/** An exact decimal string of USD, with thousands grouped: every digit the ledger holds. */
function usd(text) {
  const negative = text.startsWith("-");
  const [whole, fraction] = (negative ? text.slice(1) : text).split(".");
  const grouped = whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return (negative ? "-$" : "$") + grouped + (fraction ? "." + fraction : "");
}

function int(value) {
  return value === null || value === undefined ? "" : Number(value).toLocaleString("en-US");
}

function percent(value) {
  if (value === null || value === undefined) return "—";
  const sign = value > 0 ? "+" : "";
  return sign + (value * 100).toFixed(1) + " %";
}

function notInCost(unmeasured, unpriced) {
  const parts = [];
  if (unmeasured) parts.push(int(unmeasured) + " unmeasured");
  if (unpriced) parts.push(int(unpriced) + " unpriced");
  return parts.join(", ");
}

function time(text) {
  return text ? text.replace("T", " ").replace("Z", " UTC") : "";
}

function label(value) {
  return value === null || value === undefined ? "(none)" : value;
}

/** An event's cost, or why it has none: never a $0 it does not have. */
function eventCost(e) {
  if (e.cost !== null) return usd(e.cost);
  if (!modelCall(e)) return "—";
  return e.usage ? "unpriced" : "unmeasured";
}

/** The start of the last ``days`` UTC days, today included (whole days: the roll-ups' grain). */
function daysAgo(days) {
  const now = new Date();
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate() - (days - 1))).toISOString();
}

function whereParam(name, value) {
  return value === null || value === undefined ? name : name + "=" + value;
}

/**
 * Fill a table: columns are {label, value(row) -> text, num, href(row), csv}; the rows' text is
 * what the CSV download takes. Returns the table.
 */
function fillTable(table, columns, rows) {
  table.replaceChildren();
  const head = el("tr");
  for (const column of columns) {
    const th = el("th", column.label, column.num ? { class: "num" } : {});
    if (column.csv === false) th.classList.add("no-csv");
    head.append(th);
  }
  table.append(el("thead"));
  table.tHead.append(head);
  const body = el("tbody");
  for (const row of rows) {
    const tr = el("tr");
    for (const column of columns) {
      const text = column.value(row);
      const td = el("td", null, column.num ? { class: "num" } : {});
      if (column.csv === false) td.classList.add("no-csv");
      const href = column.href ? column.href(row) : null;
      if (href) td.append(link(text, href));
      else td.textContent = text;
      if (column.sort) td.dataset.sort = String(column.sort(row));
      tr.append(td);
    }
    body.append(tr);
  }
  table.append(body);
  if (!rows.length) {
    const tr = el("tr");
    tr.append(el("td", "none", { colspan: String(columns.length), class: "note" }));
    body.append(tr);
  }
  return table;
}

function makeSortable(table) {
  table.tHead.querySelectorAll("th").forEach((th, index) => {
    th.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      table.tHead.querySelectorAll("th").forEach((other) => other.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const rows = Array.from(table.tBodies[0].rows);
      const key = (row) => {
        const cell = row.cells[index];
        return cell.dataset.sort !== undefined ? Number(cell.dataset.sort) : cell.textContent;
      };
      rows.sort((a, b) => {
        const x = key(a);
        const y = key(b);
        const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      table.tBodies[0].append(...rows);
    });
  });
}

function tableCsv(table) {
  const quote = (text) => (/[",\n\r]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text);
  const line = (cells) => Array.from(cells).filter((cell) => !cell.classList.contains("no-csv"))
    .map((cell) => quote(cell.textContent)).join(",");
  const lines = [line(table.tHead.rows[0].cells)];
  for (const row of table.tBodies[0].rows) lines.push(line(row.cells));
  return lines.join("\r\n") + "\r\n";
}

function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  const anchor = el("a", null, { href: url, download: name });
  document.body.append(anchor);
  anchor.click();
  anchor.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function drawStacked(canvas, all) {
  const old = Chart.getChart(canvas);
  if (old) old.destroy();
  // A group that cost nothing draws nothing: left out (its calls not in the cost are noted).
  const series = { ...all, series: all.series.filter((one) => Number(one.total) !== 0) };
  return new Chart(canvas, {
    type: "bar",
    data: {
      labels: series.periods.map((period) => period.slice(0, series.granularity === "hour" ? 13 : 10)),
      datasets: series.series.map((one, index) => ({
        label: one.name,
        data: one.cost.map(Number),
        backgroundColor: PALETTE[index % PALETTE.length],
        stack: "cost",
      })),
    },
    options: {
      animation: false,
      responsive: true,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      scales: { x: { stacked: true }, y: { stacked: true, title: { display: true, text: "USD" } } },
      plugins: {
        tooltip: {
          callbacks: {
            label: (item) => item.dataset.label + ": " + usd(series.series[item.datasetIndex].cost[item.dataIndex]),
          },
        },
      },
    },
  });
}

function seriesNote(series) {
  const unmeasured = series.unmeasured.reduce((a, b) => a + b, 0);
  const unpriced = series.unpriced.reduce((a, b) => a + b, 0);
  const missing = notInCost(unmeasured, unpriced);
  return missing ? "Not in the cost shown: " + missing + " calls." : "";
}

// Columns shared by report tables.
const REPORT_COLUMNS = [
  { label: "events", value: (r) => int(r.events), sort: (r) => r.events, num: true },
  { label: "input", value: (r) => int(r.input_tokens), sort: (r) => r.input_tokens, num: true },
  { label: "cache read", value: (r) => int(r.cache_read_tokens), sort: (r) => r.cache_read_tokens, num: true },
  { label: "output", value: (r) => int(r.output_tokens), sort: (r) => r.output_tokens, num: true },
  { label: "cost", value: (r) => usd(r.cost), sort: (r) => Number(r.cost), num: true },
  { label: "not in cost", value: (r) => notInCost(r.unmeasured, r.unpriced) },
];

function membersHref(name, value, where) {
  const next = HIERARCHY[HIERARCHY.indexOf(name) + 1];
  if (!next || value === null) return null;
  const params = new URLSearchParams();
  params.set("by", next);
  for (const filter of where || []) params.append("where", filter);
  params.append("where", whereParam(name, value));
  return "/explore?" + params;
}

function eventsHref(filters, since, until) {
  const params = new URLSearchParams();
  for (const filter of filters) params.append("where", filter);
  if (since) params.set("since", since);
  if (until) params.set("until", until);
  return "/events?" + params;
}

const NOT_MODEL_CALLS = ["execute_tool", "cache"];
const modelCall = (e) => !NOT_MODEL_CALLS.includes(e.operation);

const EVENT_COLUMNS = [
  { label: "time", value: (e) => time(e.time), href: (e) => "/events/" + e.id + "?at=" + encodeURIComponent(e.time) },
  { label: "operation", value: (e) => e.operation },
  { label: "model", value: (e) => label(e.model) },
  { label: "status", value: (e) => e.status },
  { label: "input", value: (e) => (e.usage ? int(e.usage.input_tokens) : modelCall(e) ? "unmeasured" : "—"), num: true },
  { label: "output", value: (e) => (e.usage ? int(e.usage.output_tokens) : ""), num: true },
  { label: "cost", value: (e) => eventCost(e), num: true },
  { label: "dimensions", value: (e) => Object.entries(e.dimensions).map(([k, v]) => k + "=" + v).join(" ") },
];

// ---------------------------------------------------------------------------------------------
// overview

async function overview() {
  const select = document.getElementById("series-by");
  select.append(el("option", "model", { value: "model" }));
  let newest = null;

  async function fillGroupings() {
    const dims = await api("/api/dimensions");
    for (const name of dims.names) if (name !== "model") select.append(el("option", name, { value: name }));
  }

  async function drawSeries() {
    const params = new URLSearchParams({ by: select.value, since: daysAgo(30), granularity: "day" });
    const series = await api("/api/series", params);
    drawStacked(document.getElementById("cost-chart"), series);
    document.getElementById("series-note").textContent = seriesNote(series);
  }

  async function drawSummary() {
    const data = await api("/api/overview");
    const cards = document.getElementById("periods");
    cards.replaceChildren();
    const names = { today: "Today (UTC)", "7d": "Last 7 days (UTC, today included)", "30d": "Last 30 days (UTC, today included)" };
    for (const period of data.periods) {
      const card = el("div", null, { class: "card", "data-period": period.name, "data-since": period.since, "data-until": period.until });
      card.append(el("div", names[period.name], { class: "label" }));
      card.append(el("div", usd(period.cost), { class: "cost" }));
      const change = period.change.cost;
      card.append(el("div", percent(change) + " against " + (period.name === "today" ? "yesterday" : "the " + period.name.replace("d", " days") + " before") + " up to this hour",
        { class: change > 0 ? "up" : change < 0 ? "down" : "" }));
      card.append(el("div", int(period.model_calls) + " model calls (" + percent(period.change.model_calls) + "), " +
        int(period.events) + " events"));
      const missing = notInCost(period.unmeasured, period.unpriced);
      if (missing) card.append(el("div", "not in cost: " + missing + " calls", { class: "not-in-cost" }));
      cards.append(card);
    }
    const t = data.tokens;
    const classes = [["input (uncached)", t.input_uncached], ["cache read", t.cache_read], ["cache write", t.cache_write],
      ["output", t.output_visible], ["reasoning", t.reasoning]];
    const tokensCanvas = document.getElementById("tokens-chart");
    const old = Chart.getChart(tokensCanvas);
    if (old) old.destroy();
    new Chart(tokensCanvas, {
      type: "bar",
      data: { labels: ["tokens"], datasets: classes.map(([name, value], i) => ({ label: name, data: [value], backgroundColor: PALETTE[i] })) },
      options: { animation: false, indexAxis: "y", responsive: true, maintainAspectRatio: false, scales: { x: { stacked: true }, y: { stacked: true } } },
    });
    fillTable(document.getElementById("tokens-table"), classes.map(([name], i) => ({ label: name, value: () => int(classes[i][1]), num: true })), [{}]);
  }

  async function drawTop(name) {
    const days = Number(document.getElementById("top-span").value);
    const rows = await api("/api/report", new URLSearchParams({ by: name, since: daysAgo(days), limit: "10" }));
    fillTable(document.getElementById("top-" + name), [
      { label: name, value: (r) => label(r[name]), href: (r) => membersHref(name, r[name]) || eventsHref([whereParam(name, r[name])]) },
      { label: "events", value: (r) => int(r.events), num: true },
      { label: "cost", value: (r) => usd(r.cost), num: true },
    ], rows);
  }
  const drawTops = () => Promise.all(["session", "user", "agent"].map(drawTop));

  async function drawLatest() {
    const events = await api("/api/latest", new URLSearchParams({ limit: "20" }));
    fillTable(document.getElementById("latest"), EVENT_COLUMNS, events);
    const first = events.length ? events[0].id : null;
    const changed = newest !== null && first !== newest;
    newest = first;
    return changed;
  }

  select.addEventListener("change", () => drawSeries().catch(showError));
  document.getElementById("top-span").addEventListener("change", () => drawTops().catch(showError));
  await Promise.all([drawTops(), drawSummary(), drawSeries(), drawLatest(), fillGroupings()]);
  document.body.dataset.drawn = "1";
  window.meterlineDrawnAt = performance.now();
  setInterval(async () => {
    try {
      if (await drawLatest()) await Promise.all([drawSummary(), drawSeries(), drawTops()]);
    } catch (error) {
      showError(error);
    }
  }, REFRESH_MS);
}

// ---------------------------------------------------------------------------------------------
// explore

function splitFilters(text) {
  return text.split(/,\s*(?=[a-z_][a-z0-9_]*(?:=|,|$))/).map((part) => part.trim()).filter(Boolean);
}

async function explore() {
  const form = document.getElementById("explore-form");
  const dims = await api("/api/dimensions");
  const by1 = document.getElementById("by1");
  const by2 = document.getElementById("by2");
  by2.append(el("option", "—", { value: "" }));
  for (const name of dims.names) {
    by1.append(el("option", name, { value: name }));
    by2.append(el("option", name, { value: name }));
  }

  function fromUrl() {
    const params = new URLSearchParams(location.search);
    const by = (params.get("by") || "model").split(",");
    for (const [select, value] of [[by1, by[0]], [by2, by[1] || ""]]) {
      if (value && !Array.from(select.options).some((o) => o.value === value)) select.append(el("option", value, { value }));
      select.value = value;
    }
    document.getElementById("since").value = params.get("since") || "30d";
    document.getElementById("until").value = params.get("until") || "";
    document.getElementById("granularity").value = params.get("granularity") || "day";
    document.getElementById("where").value = params.getAll("where").join(", ");
  }

  function query() {
    const by = [by1.value, by2.value].filter(Boolean);
    const where = splitFilters(document.getElementById("where").value);
    const since = document.getElementById("since").value.trim();
    const until = document.getElementById("until").value.trim();
    return { by, where, since, until, granularity: document.getElementById("granularity").value };
  }

  async function draw() {
    const q = query();
    const params = new URLSearchParams({ by: q.by.join(",") });
    for (const filter of q.where) params.append("where", filter);
    if (q.since) params.set("since", q.since);
    if (q.until) params.set("until", q.until);
    const chartParams = new URLSearchParams(params);
    chartParams.set("granularity", q.granularity);
    const tableParams = new URLSearchParams(params);
    tableParams.set("limit", String(TABLE_ROWS));
    const [series, rows] = await Promise.all([api("/api/series", chartParams), api("/api/report", tableParams)]);
    drawStacked(document.getElementById("explore-chart"), series);
    document.getElementById("explore-note").textContent = seriesNote(series);
    document.getElementById("table-title").textContent = rows.length < TABLE_ROWS
      ? int(rows.length) + " groups by " + q.by.join(" × ")
      : "The " + int(TABLE_ROWS) + " costliest groups by " + q.by.join(" × ") + " (more exist: filter, or meterline report)";
    const keyColumns = q.by.map((name) => ({
      label: name,
      value: (r) => label(r[name]),
      href: (r) => membersHref(name, r[name], q.where),
    }));
    const eventsColumn = {
      label: "",
      csv: false,
      value: () => "events",
      href: (r) => eventsHref([...q.where, ...q.by.map((n) => whereParam(n, r[n]))], q.since, q.until),
    };
    const table = fillTable(document.getElementById("explore-table"), [...keyColumns, ...REPORT_COLUMNS, eventsColumn], rows);
    makeSortable(table);
    document.body.dataset.drawn = "1";
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const q = query();
    const params = new URLSearchParams({ by: q.by.join(","), granularity: q.granularity });
    for (const filter of q.where) params.append("where", filter);
    if (q.since) params.set("since", q.since);
    if (q.until) params.set("until", q.until);
    history.pushState(null, "", "/explore?" + params);
    document.body.dataset.drawn = "";
    draw().catch(showError);
  });
  for (const select of [by1, by2]) select.addEventListener("change", () => form.requestSubmit());
  document.getElementById("download-csv").addEventListener("click", () => {
    download("meterline-" + query().by.join("-") + ".csv", tableCsv(document.getElementById("explore-table")));
  });
  window.addEventListener("popstate", () => { fromUrl(); draw().catch(showError); });
  fromUrl();
  await draw();
}

// ---------------------------------------------------------------------------------------------
// events

async function eventsPage() {
  const params = new URLSearchParams(location.search);
  const query = new URLSearchParams();
  for (const name of ["where", "since", "until"]) for (const value of params.getAll(name)) query.append(name, value);
  query.set("limit", "100");
  const events = await api("/api/events", query);
  const filters = params.getAll("where");
  document.getElementById("events-note").textContent = "The newest " + events.length + " events" +
    (filters.length ? " where " + filters.join(", ") : "") + ", newest first.";
  fillTable(document.getElementById("events-table"), EVENT_COLUMNS, events);
  document.body.dataset.drawn = "1";
}

async function eventPage() {
  const id = location.pathname.split("/").pop();
  const at = new URLSearchParams(location.search).get("at");
  const data = await api("/api/events/" + encodeURIComponent(id), at ? new URLSearchParams({ at }) : undefined);
  const e = data.event;
  const fields = document.getElementById("event-fields");
  const cost = e.cost !== null || !modelCall(e) ? eventCost(e)
    : e.usage ? "unpriced (no price for this model)" : "unmeasured (usage never arrived)";
  const rows = [
    ["id", e.id], ["time", time(e.time)], ["operation", e.operation], ["provider", label(e.provider)],
    ["model", label(e.model)], ["requested model", label(e.request_model)], ["status", e.status],
    ["cost", cost], ["price version", label(e.price_version)], ["provider's stated cost", e.reported_cost === null ? "—" : usd(e.reported_cost)],
    ["service tier", label(e.service_tier)], ["batch", e.batch ? "yes" : "no"],
    ["latency", e.latency_ms === null ? "—" : e.latency_ms + " ms"], ["operation id", label(e.operation_id)],
    ["attempt", String(e.attempt)], ["response id", label(e.response_id)], ["tokens saved", int(e.tokens_saved)],
  ];
  for (const [name, value] of Object.entries(e.dimensions)) rows.push([name, value]);
  fields.replaceChildren();
  for (const [name, value] of rows) {
    fields.append(el("dt", name));
    fields.append(el("dd", value, { "data-field": name }));
  }
  const usage = e.usage || e.partial_usage;
  const usageRows = usage ? Object.entries(usage).map(([name, value]) => ({ name, value })) : [];
  fillTable(document.getElementById("event-usage"), [
    { label: e.usage ? "token class" : "partial usage (a lower bound)", value: (r) => r.name.replace(/_/g, " ") },
    { label: "count", value: (r) => int(r.value), num: true },
  ], usageRows);
  fillTable(document.getElementById("event-attempts"), EVENT_COLUMNS, data.attempts);
  fillTable(document.getElementById("event-linked"), EVENT_COLUMNS, data.linked);
  document.body.dataset.drawn = "1";
}

// ---------------------------------------------------------------------------------------------
// budgets

function amount(metric, text) {
  return metric === "cost" ? usd(text) : int(text);
}

async function budgetsPage() {
  const data = await api("/api/budgets");
  const list = document.getElementById("budgets-list");
  list.replaceChildren();
  if (!data.configured) {
    list.append(el("p", "No budget store: start meterline serve with --budgets URL.", { class: "note" }));
  }
  for (const b of data.budgets) {
    const panel = el("div", null, { class: "panel budget", "data-budget": b.budget });
    const key = Object.entries(b.key).map(([k, v]) => k + "=" + v).join(" ");
    panel.append(el("h2", b.budget + (key ? " · " + key : "") + " · " + b.metric));
    const bar = el("div", null, { class: "bar", role: "meter", "aria-valuemin": "0", "aria-valuemax": b.limit, "aria-valuenow": b.used });
    const used = Math.min(b.used_share || 0, 1);
    const reserved = Math.max(Math.min(b.reserved_share || 0, 1 - used), 0);
    bar.append(el("div", null, { class: (b.used_share || 0) >= 1 ? "over" : "used" }));
    bar.append(el("div", null, { class: "reserved" }));
    bar.children[0].style.width = (used * 100).toFixed(2) + "%";
    bar.children[1].style.width = (reserved * 100).toFixed(2) + "%";
    panel.append(bar);
    panel.append(el("div", "used " + amount(b.metric, b.used) + " of " + amount(b.metric, b.limit) +
      ", reserved " + amount(b.metric, b.reserved) + ", remaining " + amount(b.metric, b.remaining), { class: "usage" }));
    panel.append(el("div", (b.window ? "window: " + b.window : "no window (never resets)") +
      (b.resets_at ? " · resets " + time(b.resets_at) : ""), { class: "meta" }));
    const fired = b.alerts_fired.map((a) => Math.round(a * 100) + " %");
    panel.append(el("div", fired.length ? "alerts fired this window: " + fired.join(", ") : "no alert fired this window (at " +
      b.alert_at.map((a) => Math.round(a * 100) + " %").join(", ") + ")", { class: fired.length ? "fired" : "meta" }));
    list.append(panel);
  }
  document.body.dataset.drawn = "1";
}

// ---------------------------------------------------------------------------------------------
// tools and caches

async function toolsPage() {
  const data = await api("/api/tools", new URLSearchParams({ since: daysAgo(30) }));
  fillTable(document.getElementById("tools-table"), [
    { label: "tool", value: (t) => label(t.tool), href: (t) => eventsHref([whereParam("operation", "execute_tool"), whereParam("tool", t.tool)]) },
    { label: "calls", value: (t) => int(t.calls), num: true },
    { label: "failures", value: (t) => int(t.failures), num: true },
    { label: "mean duration", value: (t) => (t.mean_duration_ms === null ? "—" : t.mean_duration_ms.toFixed(1) + " ms"), num: true },
  ], data.tools);
  const cache = document.getElementById("cache-fields");
  cache.replaceChildren();
  for (const [name, value] of [["hits", int(data.cache.hits)], ["misses", int(data.cache.misses)],
    ["hit rate", data.cache.hit_rate === null ? "—" : (data.cache.hit_rate * 100).toFixed(1) + " %"],
    ["tokens saved", int(data.cache.tokens_saved)]]) {
    cache.append(el("dt", name));
    cache.append(el("dd", value, { "data-field": name }));
  }
  fillTable(document.getElementById("prompt-cache-table"), [
    { label: "model", value: (r) => label(r.model) },
    { label: "cache reads", value: (r) => int(r.cache_read_tokens), num: true },
    { label: "cache writes", value: (r) => int(r.cache_write_tokens), num: true },
    { label: "share of input read from cache", value: (r) => (r.read_share === null ? "—" : (r.read_share * 100).toFixed(1) + " %"), num: true },
  ], data.prompt_cache);
  document.body.dataset.drawn = "1";
}

const PAGES = { overview, explore, events: eventsPage, event: eventPage, budgets: budgetsPage, tools: toolsPage };
document.addEventListener("DOMContentLoaded", () => {
  PAGES[page]().catch(showError);
});
