// ibsight dashboard: polls the API every 5 s and redraws in place (no page reload).
"use strict";

const POLL_MS = 5000;
const TYPES = [
  "performance_degradation", "anomaly_detected", "resource_saturation", "connection_instability",
  "packet_loss_detected", "latency_spike", "bandwidth_throttling", "qp_error_rate_high",
  "memory_registration_failure", "rdma_timeout",
];
const MAX_SWITCH_TILES = 200;

const state = {
  limit: 50,
  seenInsights: new Set(),
  firstRender: true,
  stream: null,
  metric: null,
  chart: null,
  lastOk: null,
  polls: 0,
  verdicts: {},
};
// Tests read this to tell polls from reloads.
window.ibsight = { loadedAt: Date.now(), polls: 0, lastError: null };

const $ = (id) => document.getElementById(id);
const el = (tag, attrs = {}, ...children) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
};

function riskClass(risk) {
  if (risk >= 80) return "risk-critical";
  if (risk >= 60) return "risk-high";
  if (risk >= 40) return "risk-medium";
  return "risk-low";
}
const badge = (risk) => el("span", { class: `badge ${riskClass(risk)}` }, risk);
const fmtTime = (iso) => (iso ? new Date(iso).toLocaleTimeString() : "");
const switchOf = (stream) => (stream.includes("/") ? stream.slice(0, stream.lastIndexOf("/")) : stream);

// ---- API access, with a read token asked for once and kept for the browser session ----
async function api(path, retried = false) {
  const headers = {};
  const token = sessionStorage.getItem("ibsight-token");
  if (token) headers.Authorization = `Bearer ${token}`;
  const resp = await fetch(path, { headers, cache: "no-store" });
  if (resp.status === 401 && !retried) {
    // Parallel requests all get 401: the first asks, the others retry with its answer.
    if (sessionStorage.getItem("ibsight-token") !== token) return api(path, true);
    const entered = window.prompt("This ibsight needs a read token:");
    if (entered) {
      sessionStorage.setItem("ibsight-token", entered.trim());
      return api(path, true);
    }
  }
  if (!resp.ok) throw new Error(`${path}: HTTP ${resp.status}`);
  return resp.json();
}

// ---- panels ----
function renderHealth(h) {
  const over = h.daily_budget_usd > 0 && h.cost_today_usd >= h.daily_budget_usd;
  const figures = [
    ["calls / min", h.calls.calls_per_min.toFixed(1)],
    ["p95 latency", h.calls.p95_latency_ms == null ? "–" : `${h.calls.p95_latency_ms} ms`],
    ["fallback rate", `${(h.fallback_rate * 100).toFixed(1)} %`],
    ["cost today", `$${h.cost_today_usd.toFixed(2)} / $${h.daily_budget_usd.toFixed(0)}`, over],
    ["backend", `${h.backend}${h.breaker_open ? " (breaker open)" : ""}`],
    ["queue", h.queue_depth],
  ];
  $("health").replaceChildren(
    ...figures.map(([label, value, bad]) =>
      el("div", { class: `figure${bad ? " over" : ""}` }, el("b", {}, value), el("span", {}, label))),
  );
}

// The last period's digest: what opened and resolved, what paged, what the model cost.
function renderDigest(r) {
  const d = (r.digests || [])[0];
  $("digest-panel").hidden = !d;
  if (!d) return;
  $("digest-period").textContent =
    `${new Date(d.period_start).toLocaleTimeString()}–${new Date(d.period_end).toLocaleTimeString()}`;
  const figures = [
    ["incidents opened", d.incidents_opened],
    ["resolved", d.incidents_resolved],
    ["alerts raised", d.alerts_raised],
    ["held back", d.alerts_suppressed],
    ["model calls", d.model_calls],
    ["model cost", `$${d.cost_usd.toFixed(4)}`],
  ];
  $("digest").replaceChildren(...figures.map(([label, value]) =>
    el("div", { class: "figure" }, el("b", {}, String(value)), el("span", {}, label))));
  $("digest-kinds").replaceChildren(...d.opened.map((c) =>
    el("li", {}, `${c.count} × ${c.scope} ${c.prediction_type || "not analysed yet"}`)));
  $("digest-ports").replaceChildren(...d.top_ports.slice(0, 5).map((p) =>
    el("li", { "data-stream": p.stream_id },
      el("a", { class: "stream", onclick: () => openStream(p.stream_id) }, p.stream_id),
      ` risk ${p.worst_risk} · ${p.anomalies} anomalies`)));
}

function renderFabric(f) {
  $("fabric-summary").textContent =
    `${f.streams} streams on ${f.switches_total} switches, ${f.ports_with_open_anomalies} ports with open anomalies`;
  const tiles = f.switches.slice(0, MAX_SWITCH_TILES).map((s) => {
    const cls = s.worst_risk > 0 ? riskClass(s.worst_risk) : "";
    const ports = s.at_risk.map((p) =>
      el("span", {
        class: `port ${riskClass(p.worst_risk)}`,
        title: `${p.stream_id}: risk ${p.worst_risk}, ${p.open_anomalies} open ${p.prediction_types.join(", ")}`,
        "data-stream": p.stream_id,
        onclick: (ev) => { ev.stopPropagation(); openStream(p.stream_id); },
      }));
    const healthy = s.ports - s.ports_with_open_anomalies;
    return el("div", {
      class: `switch ${cls}`,
      "data-switch": s.switch,
      "data-risk": s.worst_risk,
      title: "filter insights by this switch",
      onclick: () => { $("f-switch").value = s.switch; refreshInsights(); },
    },
    el("div", { class: "name" }, s.switch),
    el("div", { class: "meta" },
      s.worst_risk > 0 ? `worst risk ${s.worst_risk} · ` : "", `${s.ports_with_open_anomalies}/${s.ports} ports at risk`),
    el("div", { class: "ports" }, ...ports),
    healthy > 0 ? el("div", { class: "meta" }, `${healthy} healthy`) : "");
  });
  const hidden = f.switches_total - Math.min(f.switches.length, MAX_SWITCH_TILES);
  if (hidden > 0) {
    tiles.push(el("div", { class: "switch more" }, `… ${hidden} more switches, healthiest last`));
  }
  $("fabric").replaceChildren(...tiles);
}

function insightsQuery() {
  const q = new URLSearchParams({ limit: String(state.limit) });
  const risk = Number($("f-risk").value);
  if (risk > 0) q.set("min_risk", String(Math.min(100, risk)));
  if ($("f-type").value) q.set("prediction_type", $("f-type").value);
  const sw = $("f-switch").value.trim();
  if (sw) q.set("switch", sw);
  return `/v1/insights/recent?${q}`;
}

// A model answer below the confidence floor: shown, but alerting follows the rules' risk.
function lowConfidence(i) {
  return i.low_confidence
    ? el("span", { class: "lowconf", title: `confidence ${i.confidence}: alerting follows the rules' risk` },
      ` low confidence · rules risk ${i.rules_risk ?? "?"}`)
    : "";
}

function renderInsights(items) {
  const rows = items.map((i) => {
    const isNew = !state.firstRender && !state.seenInsights.has(i.entity_id);
    state.seenInsights.add(i.entity_id);
    const recs = el("ul", {}, ...(i.recommendations || []).map((r) => el("li", {}, r)));
    return el("tr", { class: isNew ? "new" : "", "data-entity": i.entity_id, "data-stream": i.related_entity },
      el("td", {}, badge(i.risk_score)),
      el("td", {}, i.prediction_type),
      el("td", {}, el("a", { class: "stream", onclick: () => openStream(i.related_entity) }, i.related_entity)),
      el("td", { title: i.timestamp }, fmtTime(i.timestamp)),
      el("td", {}, i.source === "ai" ? "AI" : i.source, lowConfidence(i)),
      el("td", {}, i.explanation, recs));
  });
  state.firstRender = false;
  $("insights").tBodies[0].replaceChildren(...rows);
  $("more").hidden = items.length < state.limit || state.limit >= 500;
}

// Incidents first: what an operator acts on. A link shows both ends, a switch its node and
// its ports.
function renderIncidents(items) {
  const open = items.filter((i) => i.state === "open").length;
  $("incidents-summary").textContent = `${open} open`;
  $("incidents").tBodies[0].replaceChildren(...items.map((i) => {
    const ports = el("ul", { class: "ports" }, ...(i.ports || []).map((p) =>
      el("li", { class: p.cleared ? "cleared" : "" },
        el("a", { class: "stream", onclick: () => openStream(p.stream_id) }, p.stream_id))));
    const where = i.node
      ? el("div", {}, `${i.scope} ${i.node.node_desc || ""} (${i.node.node_guid})`, ports)
      : el("div", {}, i.scope === "link" ? "link: both ends" : i.scope, ports);
    const recs = el("ul", {}, ...(i.recommendations || []).map((r) => el("li", {}, r)));
    return el("tr", { "data-incident": i.id, "data-scope": i.scope },
      el("td", {}, i.risk_score == null ? "…" : badge(i.risk_score), lowConfidence(i)),
      el("td", {}, i.scope),
      el("td", {}, i.prediction_type || "analysing…"),
      el("td", {}, where),
      el("td", { title: i.opened_at }, fmtTime(i.opened_at)),
      el("td", {}, i.state + (i.alerted ? " · alerted" : "")
        + ((i.maintenance || []).length ? ` · maintenance ${i.maintenance.join(", ")}` : "")
        + ((i.opened_in_maintenance || []).length && !(i.maintenance || []).length ? " · opened in maintenance" : "")),
      el("td", {}, i.explanation || "", recs));
  }));
}

// Planned work: active and upcoming windows (their ports alert no one and ask no model).
function renderMaintenance(windows) {
  const active = windows.filter((w) => w.status === "active").length;
  $("maintenance-panel").hidden = windows.length === 0;
  $("maintenance-summary").textContent = `${active} active, ${windows.length - active} upcoming`;
  $("maintenance").tBodies[0].replaceChildren(...windows.map((w) =>
    el("tr", { "data-window": w.window_id, "data-status": w.status },
      el("td", {}, w.window_id),
      el("td", {}, w.status),
      el("td", {}, [...w.nodes, ...w.ports].join(", ")),
      el("td", { title: w.from }, new Date(w.from_ms).toLocaleString()),
      el("td", { title: w.until }, new Date(w.ends_ms).toLocaleString()),
      el("td", {}, w.reason))));
}

function renderAlerts(items) {
  $("alerts").tBodies[0].replaceChildren(...items.map((a) =>
    el("tr", { "data-stream": a.related_entity },
      el("td", {}, badge(a.risk_score)),
      el("td", {}, a.prediction_type),
      el("td", {}, el("a", { class: "stream", onclick: () => openStream(a.related_entity) }, a.related_entity)),
      el("td", { title: a.timestamp }, fmtTime(a.timestamp)),
      el("td", {}, a.suppressed),
      el("td", { class: "verdict" }, ...(state.verdicts[a.alert_id] ? [state.verdicts[a.alert_id]] : [
        el("button", { type: "button", title: "confirmed", onclick: () => triage(a.alert_id, "confirmed") }, "✓"),
        " ",
        el("button", { type: "button", title: "false positive", onclick: () => triage(a.alert_id, "false_positive") }, "✗"),
      ])))));
}

async function triage(alertId, verdict) {
  // Verdicts write to the log: they need a triage token when the node has tokens. The read
  // token is tried first; on 401/403 the page asks once for a triage token and keeps it.
  const send = (token) => {
    const headers = { "content-type": "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    return fetch(`/v1/alerts/${encodeURIComponent(alertId)}/triage`, {
      method: "POST", headers, body: JSON.stringify({ verdict }),
    });
  };
  let resp = await send(sessionStorage.getItem("ibsight-triage-token") || sessionStorage.getItem("ibsight-token"));
  if (resp.status === 401 || resp.status === 403) {
    const token = window.prompt("Recording a verdict needs a triage token (auth.triage_tokens):");
    if (!token) return;
    resp = await send(token);
    if (resp.ok) sessionStorage.setItem("ibsight-triage-token", token);
  }
  if (resp.ok) {
    state.verdicts[alertId] = verdict === "confirmed" ? "confirmed" : "false positive";
    poll().catch(() => {});
  } else {
    const body = await resp.json().catch(() => ({}));
    window.alert(`verdict not recorded: ${body.message || resp.status}`);
  }
}

// ---- stream drill-down ----
function openStream(id) {
  if (state.stream !== id) state.metric = null;
  state.stream = id;
  $("stream-panel").hidden = false;
  $("stream-id").textContent = id;
  refreshStream().then(() => $("stream-panel").scrollIntoView({ behavior: "smooth" }));
}

function markerPlugin(markers) {
  return {
    hooks: {
      draw: (u) => {
        const ctx = u.ctx;
        ctx.save();
        for (const m of markers) {
          const x = u.valToPos(m.t / 1000, "x", true);
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          const y = m.kind === "detected" ? u.bbox.top + 10 : u.bbox.top + u.bbox.height - 10;
          ctx.fillStyle = m.kind === "detected" ? "#e5484d" : "#3fb950";
          ctx.beginPath();
          const d = m.kind === "detected" ? -7 : 7;
          ctx.moveTo(x, y + d); ctx.lineTo(x - 6, y - d); ctx.lineTo(x + 6, y - d); ctx.closePath();
          ctx.fill();
          ctx.strokeStyle = ctx.fillStyle; ctx.setLineDash([3, 3]);
          ctx.beginPath(); ctx.moveTo(x, u.bbox.top); ctx.lineTo(x, u.bbox.top + u.bbox.height); ctx.stroke();
        }
        ctx.restore();
      },
    },
  };
}

function renderChart(series) {
  const metrics = Object.keys(series.metrics);
  const select = $("stream-metric");
  if (!metrics.includes(state.metric)) {
    // Open on the metric of the latest anomaly when it is charted, else latency, else the first.
    const latest = [...series.anomalies].reverse().find((a) => metrics.includes(a.metric));
    state.metric = latest ? latest.metric
      : metrics.includes("latency_p99") ? "latency_p99" : (metrics[0] || null);
  }
  select.replaceChildren(...metrics.map((m) => el("option", { value: m }, m)));
  select.value = state.metric || "";
  $("band-k").textContent = series.band_k;
  const box = $("chart");
  if (state.chart) { state.chart.destroy(); state.chart = null; }
  if (!state.metric) { box.replaceChildren(el("p", {}, "no samples")); return; }
  const m = series.metrics[state.metric];
  const k = series.band_k;
  const lo = m.mean.map((v, i) => (v == null || m.stddev[i] == null ? null : v - k * m.stddev[i]));
  const hi = m.mean.map((v, i) => (v == null || m.stddev[i] == null ? null : v + k * m.stddev[i]));
  const data = [series.t.map((t) => t / 1000), m.value, m.mean, lo, hi];
  const markers = series.anomalies.filter((a) => a.metric === state.metric || !series.metrics[a.metric]);
  box.replaceChildren();
  state.chart = new uPlot({
    width: Math.max(280, box.clientWidth || 600),
    height: 260,
    series: [
      {},
      { label: state.metric, stroke: "#6cb6ff", width: 2 },
      { label: "baseline", stroke: "#8a96a3", dash: [6, 4] },
      { label: `−${k}σ`, stroke: "#f5a52488" },
      { label: `+${k}σ`, stroke: "#f5a52488" },
    ],
    bands: [{ series: [4, 3], fill: "#f5a5241f" }],
    axes: [{ stroke: "#8a96a3", grid: { stroke: "#2a323c" } }, { stroke: "#8a96a3", grid: { stroke: "#2a323c" } }],
    plugins: [markerPlugin(markers)],
  }, data, box);
}

async function refreshStream() {
  const id = state.stream;
  if (!id) return;
  const [series, head] = await Promise.all([
    api(`/v1/streams/${id}/series?points=300`),
    api(`/v1/streams/${id}/events?limit=1`),
  ]);
  const from = Math.max(1, head.head_seq - 19);
  const events = await api(`/v1/streams/${id}/events?from_seq=${from}&limit=20`);
  if (state.stream !== id) return;
  renderChart(series);
  $("stream-events").tBodies[0].replaceChildren(...events.events.reverse().map((e) => {
    const p = e.payload || {};
    const detail = e.event_type === "MetricObserved"
      ? Object.entries(p.sample || p).filter(([k]) => !["stream_id", "timestamp", "labels", "counters"].includes(k))
        .map(([k, v]) => `${k}=${v}`).join(" ")
      : e.event_type === "InsightGenerated" ? `risk ${p.risk_score} ${p.prediction_type} (${p.source}): ${p.explanation}`
      : e.event_type === "AnomalyDetected" ? `${p.rule} on ${p.metric}: ${p.value} (threshold ${p.threshold}, ${p.severity})`
      : JSON.stringify(p).slice(0, 160);
    return el("tr", {}, el("td", {}, e.seq), el("td", {}, fmtTime(e.recorded_at)), el("td", {}, e.event_type), el("td", {}, detail));
  }));
}

// ---- polling ----
async function refreshInsights() {
  renderInsights((await api(insightsQuery())).insights);
}

async function poll() {
  const jobs = [
    api(`/v1/incidents?limit=50&state=${$("f-incident-state").value}`).then((r) => renderIncidents(r.incidents)),
    refreshInsights(),
    api("/v1/alerts/recent?limit=20").then((r) => renderAlerts(r.alerts)),
    api("/v1/maintenance?state=open").then((r) => renderMaintenance(r.windows)),
    api(`/v1/fabric?max_switches=${MAX_SWITCH_TILES}`).then(renderFabric),
    api("/v1/ai/health").then(renderHealth),
    api("/v1/digest?limit=1").then(renderDigest),
    refreshStream(),
  ];
  const results = await Promise.allSettled(jobs);
  const failed = results.filter((r) => r.status === "rejected");
  state.polls += 1;
  window.ibsight.polls = state.polls;
  if (failed.length === 0) {
    state.lastOk = new Date();
    window.ibsight.lastError = null;
  } else {
    window.ibsight.lastError = String(failed[0].reason);
  }
  const stale = failed.length > 0;
  $("stale").hidden = !stale;
  const status = $("status");
  status.className = `status ${stale ? "bad" : "ok"}`;
  status.textContent = stale
    ? `cannot reach server (${failed[0].reason.message || failed[0].reason})${state.lastOk ? `; last update ${state.lastOk.toLocaleTimeString()}` : ""}`
    : `updated ${state.lastOk.toLocaleTimeString()} · every ${POLL_MS / 1000} s`;
}

async function loop() {
  try { await poll(); } finally { setTimeout(loop, POLL_MS); }
}

function init() {
  $("f-type").append(...TYPES.map((t) => el("option", { value: t }, t)));
  $("f-incident-state").addEventListener("change", () => poll().catch(() => {}));
  for (const id of ["f-risk", "f-type", "f-switch"]) $(id).addEventListener("change", () => refreshInsights().catch(() => {}));
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); refreshInsights().catch(() => {}); });
  $("more").addEventListener("click", () => { state.limit = Math.min(500, state.limit * 2); refreshInsights().catch(() => {}); });
  $("stream-metric").addEventListener("change", (e) => { state.metric = e.target.value; refreshStream().catch(() => {}); });
  // The chart follows its box (a rotated phone, a resized window).
  new ResizeObserver(() => {
    const box = $("chart");
    if (state.chart && box.clientWidth > 0) {
      state.chart.setSize({ width: Math.max(280, box.clientWidth), height: 260 });
    }
  }).observe($("chart"));
  $("stream-close").addEventListener("click", () => {
    state.stream = null; $("stream-panel").hidden = true;
    if (state.chart) { state.chart.destroy(); state.chart = null; }
  });
  loop();
}

init();
