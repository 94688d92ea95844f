// The gridedge status page: polls the JSON API and renders it. No build step, no network
// beyond the gateway itself.
"use strict";

const STATUS_EVERY_MS = 2000;
const METER_EVERY_MS = 5000;
const state = { selected: null, plots: new Map(), skew: null, firstView: false };

const $ = (sel) => document.querySelector(sel);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({
  "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));

function num(v, digits) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  const d = digits !== undefined ? digits : a >= 1000 ? 1 : a >= 10 ? 2 : 3;
  return v.toFixed(d);
}

function age(s) {
  if (s === null || s === undefined) return "never";
  if (s < 60) return s.toFixed(1) + " s";
  if (s < 3600) return (s / 60).toFixed(1) + " min";
  if (s < 86400) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(1) + " d";
}

function clockTime(ts) {
  return new Date(ts * 1000).toISOString().replace("T", " ").slice(0, 19) + "Z";
}

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

function renderHeader(s) {
  $("#gateway").textContent = s.gateway;
  $("#version").textContent = s.version;
  $("#uptime").textContent = age(s.uptime_s);
  const h = $("#health");
  h.textContent = s.health.status;
  h.className = "badge " + s.health.status;
  $("#problems").textContent = s.health.problems.join("; ");
  state.skew = Date.now() / 1000 - s.now;
  const off = Math.abs(state.skew);
  $("#clock").textContent = clockTime(s.now) +
    (off < 2 ? " (matches this browser)" : " (this browser differs by " + age(off) + ")");
  $("#window").textContent = age(s.history.window_s);
}

function renderMeters(meters) {
  const rows = meters.map((m) => {
    const values = Object.entries(m.headline)
      .map(([ch, v]) => `<span title="${esc(ch)}">${num(v.value)} ${esc(v.unit)}</span>`)
      .join(" · ");
    const sel = m.id === state.selected ? " selected" : "";
    const errs = m.errors ? `${m.errors} (${Object.entries(m.errors_by_kind)
      .map(([k, n]) => esc(k) + " " + n).join(", ")})` : "0";
    return `<tr data-meter="${esc(m.id)}" class="${sel}">` +
      `<td>${esc(m.id)}</td><td>${esc(m.driver)}</td>` +
      `<td class="${m.online ? "on" : "off"}">${m.online ? "online" : "offline"}</td>` +
      `<td class="num">${age(m.last_reading_age_s)}</td>` +
      `<td class="num">${m.poll_latency_ms === null ? "–" : num(m.poll_latency_ms, 1) + " ms"}</td>` +
      `<td class="num">${errs}</td><td class="values num">${values}</td></tr>`;
  });
  $("#meters tbody").innerHTML = rows.join("");
}

function alertRow(a, recent) {
  const head = recent ? `<td>${clockTime(a.ts)}</td>` : "";
  const tail = recent ? `<td>${esc(a.state)}</td><td class="num">${num(a.value)}</td>`
    : `<td>${esc(a.severity)}</td><td class="num">${num(a.value)}</td>` +
      `<td>${clockTime(a.since)}</td>`;
  return `<tr class="${esc(a.severity)}" data-device="${esc(a.device)}">${head}` +
    `<td>${esc(a.device)}</td><td>${esc(a.channel)}</td><td>${esc(a.rule)}</td>${tail}</tr>`;
}

function renderAlerts(active, recent) {
  $("#alerts-active tbody").innerHTML = active.length
    ? active.map((a) => alertRow(a, false)).join("")
    : '<tr><td colspan="6">no active alerts</td></tr>';
  if (recent) $("#alerts-recent tbody").innerHTML = recent.map((a) => alertRow(a, true)).join("");
}

function renderUpstreams(ups) {
  $("#upstreams tbody").innerHTML = ups.length ? ups.map((u) =>
    `<tr><td>${esc(u.name)}</td><td>${esc(u.broker)}</td>` +
    `<td class="${u.connected ? "on" : "off"}">${u.connected ? "yes" : "no"}</td>` +
    `<td class="num">${u.backlog}</td><td class="num">${age(u.oldest_unsent_age_s)}</td>` +
    `<td class="num">${u.dropped_unsent}</td><td>${esc(u.last_error || "")}</td></tr>`).join("")
    : '<tr><td colspan="7">no upstream configured</td></tr>';
}

function renderGroups(m) {
  $("#meter-id").textContent = m.id;
  $("#groups").innerHTML = m.groups.map((g) =>
    `<div class="group" data-group="${esc(g.key)}"><h4>${esc(g.title)}</h4>` +
    g.channels.map((c) => `<div data-channel="${esc(c.name)}"><span>${esc(c.name)}</span>` +
      `<span class="num">${num(c.value)} ${esc(c.unit)}</span></div>`).join("") +
    "</div>").join("");
}

function plotFor(channel, unit) {
  let p = state.plots.get(channel);
  if (p) return p;
  const box = document.createElement("div");
  box.className = "plot";
  box.dataset.channel = channel;
  box.innerHTML = `<h4>${esc(channel)}${unit ? " [" + esc(unit) + "]" : ""}</h4>`;
  $("#plots").appendChild(box);
  const opts = {
    width: 380, height: 150, legend: { show: false },
    scales: { x: { time: true }, score: { range: [0, 1] } },
    series: [{}, { label: channel, stroke: "#0969da", spanGaps: true },
      { label: "score", stroke: "#cf222e", scale: "score", spanGaps: true }],
    axes: [{}, { size: 55 }, { side: 1, scale: "score", size: 30, grid: { show: false } }],
  };
  p = { plot: new uPlot(opts, [[], [], []], box), box };
  state.plots.set(channel, p);
  return p;
}

async function refreshMeter() {
  const id = state.selected;
  if (id === null) return;
  const m = await getJSON("api/meters/" + encodeURIComponent(id));
  if (id !== state.selected) return;
  $("#meter").hidden = false;
  renderGroups(m);
  const channels = m.groups.flatMap((g) => g.channels);
  await Promise.all(channels.map(async (c) => {
    const q = "?channel=" + encodeURIComponent(c.name);
    const s = await getJSON("api/meters/" + encodeURIComponent(id) + "/series" + q);
    if (id !== state.selected) return;
    const p = plotFor(c.name, c.unit);
    p.plot.setData([s.ts, s.values, s.scores]);
    p.box.dataset.points = String(s.ts.length);
  }));
}

function select(id, fetchNow = true) {
  if (id === state.selected) return;
  state.selected = id;
  for (const p of state.plots.values()) p.plot.destroy();
  state.plots.clear();
  $("#plots").innerHTML = "";
  document.querySelectorAll("#meters tbody tr").forEach((tr) =>
    tr.classList.toggle("selected", tr.dataset.meter === id));
  if (fetchNow) refreshMeter().catch(showError);
}

function showError(e) {
  const el = $("#error");
  el.hidden = false;
  el.textContent = "cannot reach the gateway: " + e.message;
}

async function refreshStatus() {
  const s = await getJSON("api/status");
  $("#error").hidden = true;
  renderHeader(s);
  renderMeters(s.meters);
  renderAlerts(s.alerts, null);
  renderUpstreams(s.upstreams);
  if (state.selected === null && s.meters.length) {
    const fromHash = decodeURIComponent(location.hash.slice(1));
    select(s.meters.some((m) => m.id === fromHash) ? fromHash : s.meters[0].id, false);
  }
}

async function refreshAlerts() {
  const a = await getJSON("api/alerts");
  renderAlerts(a.active, a.recent);
}

function every(ms, fn) {
  const tick = () => fn().catch(showError).finally(() => setTimeout(tick, ms));
  return tick();
}

$("#meters tbody").addEventListener("click", (ev) => {
  const tr = ev.target.closest("tr[data-meter]");
  if (tr) { location.hash = encodeURIComponent(tr.dataset.meter); select(tr.dataset.meter); }
});

// The first view is on screen once status, alerts and the first meter's plots have drawn.
Promise.all([refreshStatus(), refreshAlerts()])
  .then(() => refreshMeter())
  .then(() => {
    document.body.dataset.firstViewMs = performance.now().toFixed(1);
    setTimeout(() => every(STATUS_EVERY_MS, refreshStatus), STATUS_EVERY_MS);
    setTimeout(() => every(STATUS_EVERY_MS, refreshAlerts), STATUS_EVERY_MS);
    setTimeout(() => every(METER_EVERY_MS, refreshMeter), METER_EVERY_MS);
  })
  .catch((e) => { showError(e); setTimeout(() => location.reload(), METER_EVERY_MS); });
