// nutgate admin: a thin page over /admin/api. No framework, no build step, no outside resource.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
let csrf = "";

// --- plumbing -----------------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v != null) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c ?? ""));
  return node;
}

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.param = e.param;
  }
}

async function api(method, path, body, extra = {}) {
  const headers = { "Content-Type": "application/json", ...extra };
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const resp = await fetch("/admin/api" + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = resp.headers.get("content-type")?.includes("json") ? await resp.json() : null;
  if (resp.status === 401 && path !== "/login") showLogin();
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

const sat = (msat) => (msat / 1000).toLocaleString(undefined, { maximumFractionDigits: 3 });
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "—");
// A table's rows, or when there is none, one row saying so (an empty state, not a blank).
const fill = (tbody, rows, empty) => tbody.replaceChildren(...(rows.length || !empty ? rows
  : [el("tr", { class: "empty" }, el("td", { colspan: tbody.closest("table").tHead.rows[0].cells.length }, empty))]));

const formData = (form) => Object.fromEntries(new FormData(form).entries());

// --- login ----------------------------------------------------------------------------------

function showLogin() {
  $("#app").hidden = true;
  $("#login").hidden = false;
  $("#password").focus();
}

async function start() {
  try {
    csrf = (await api("GET", "/session")).csrf_token;
  } catch {
    return showLogin();
  }
  $("#login").hidden = true;
  $("#app").hidden = false;
  showTab("dashboard");
}

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    csrf = (await api("POST", "/login", { password: $("#password").value })).csrf_token;
    $("#password").value = "";
    $("#login-error").textContent = "";
    start();
  } catch (err) {
    $("#login-error").textContent = err.message;
  }
});

$("#logout").addEventListener("click", () => api("POST", "/logout").catch(() => {}).then(showLogin));

// --- tabs -----------------------------------------------------------------------------------

const loaders = { dashboard: loadDashboard, settings: () => loadSettings(), upstreams: loadUpstreams,
  accounts: loadAccounts, requests: () => loadRequests(), earnings: loadEarnings };

function showTab(name) {
  for (const b of $$("nav button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of $$(".tab")) s.hidden = s.id !== "tab-" + name;
  loaders[name]().catch((err) => console.error(err));
}
for (const b of $$("nav button")) b.addEventListener("click", () => showTab(b.dataset.tab));

// --- dashboard ------------------------------------------------------------------------------

const PERIODS = { 24: ["Last 24 hours", 3600], 168: ["Last 7 days", 6 * 3600], 720: ["Last 30 days", 86400] };
let period = 24;

async function loadDashboard() {
  const [title, bucket] = PERIODS[period];
  const [money, settings, series] = await Promise.all([
    api("GET", "/money"), api("GET", "/settings"), api("GET", `/stats?hours=${period}&bucket_s=${bucket}`),
  ]);
  $("#node-name").textContent = settings.node.name;
  $("#chart-title").textContent = title;
  for (const b of $$("#periods button")) b.classList.toggle("active", Number(b.dataset.hours) === period);
  const card = (label, value, bad) =>
    el("div", { class: "card" }, el("div", { class: "label" }, label),
      el("div", { class: bad ? "value bad" : "value" }, value));
  const requests = series.points.reduce((n, p) => n + p.requests, 0);
  $("#cards").replaceChildren(
    card("Assets (proofs held)", sat(money.assets_total_msat) + " sat"),
    card("Liabilities (ecash-backed balances)", sat(money.liabilities_msat) + " sat"),
    card("Operator credit (spend-only)", sat(money.credit_msat) + " sat"),
    card("Remainders (below what ecash pays out)", sat(money.remainders_msat) + " sat"),
    card("Earnings", sat(money.earnings_msat) + " sat", money.earnings_msat < 0),
    card(`Requests, ${title.replace("Last ", "")}`, requests),
    card("Solvent", money.solvent ? "yes" : "NO", !money.solvent),
  );
  $("#cards").append(rateCard(series.btc_rate, card));
  drawChart($("#chart"), series.points, period);
  $("#chart-empty").hidden = requests > 0;
  drawModels(series, title);
}

// The BTC rate prices are charged at, and where it comes from.
function rateCard(rate, card) {
  const src = rate.source;
  const from = src.kind === "fixed" ? `fixed by ${src.setting}`
    : `median of ${src.median_of} of ${src.exchanges.length} exchanges (${src.exchanges.join(", ")})` +
      (src.age_s == null ? "" : `, ${src.age_s} s old`);
  const shown = card("BTC rate in use", rate.usd ? "$" + Number(rate.usd).toLocaleString() : "none", !rate.usd);
  shown.id = "btc-rate";
  shown.append(el("div", { class: "help" }, rate.usd ? from : `${rate.error} (${from})`));
  return shown;
}

function drawModels(series, title) {
  $("#models-title").textContent = `By model, ${title.replace("Last ", "last ")}`;
  fill($("#dashboard-models tbody"), series.models.map((m) => el("tr", { "data-model": m.model },
    el("td", {}, m.model || "—"), el("td", {}, m.requests.toLocaleString()),
    el("td", { class: m.errors ? "bad" : "" }, m.errors.toLocaleString()),
    el("td", {}, sat(m.revenue_msat)), el("td", {}, sat(m.upstream_cost_msat)),
    el("td", { class: m.revenue_msat < m.upstream_cost_msat ? "bad" : "" }, sat(m.revenue_msat - m.upstream_cost_msat)))),
    "No request in this period yet.");
  $("#models-kept").textContent = series.history_days > 0
    ? `From the request records, kept ${series.history_days} days ([accounts] history_days).`
    : "Request records are off ([accounts] history_days = 0): no per-model figures.";
}

for (const b of $$("#periods button")) {
  b.addEventListener("click", () => { period = Number(b.dataset.hours); loadDashboard().catch(console.error); });
}

$("#audit-run").addEventListener("click", async () => {
  const out = $("#audit-result");
  out.textContent = "checking…";
  try {
    const r = await api("GET", "/audit");
    const lines = [
      `solvent: ${r.solvent ? "yes" : "NO"}   ledger consistent: ${r.ledger_ok ? "yes" : "NO"}`,
      `proofs checked: ${r.proofs_checked}, pending: ${r.pending}, unknown: ${r.unknown.length}`,
      `verified assets ${sat(r.verified_assets_msat)} sat vs liabilities ${sat(r.liabilities_msat)} sat`,
      ...r.spent_behind_our_back.map((p) => `SPENT behind our back: ${p.amount} sat at ${p.mint} (Y ${p.y.slice(0, 16)}…)`),
    ];
    out.textContent = lines.join("\n");
  } catch (err) {
    out.textContent = err.message;
  }
});

// --- upstreams and models -------------------------------------------------------------------

async function loadUpstreams() {
  const data = await api("GET", "/upstreams");
  fill($("#upstreams-table tbody"), data.upstreams.map((u) => el("tr", { "data-name": u.name },
    el("td", {}, u.name), el("td", { class: "health-" + u.health, title: "GET /models every health_interval_s" }, u.health),
    el("td", { class: "mono" }, u.base_url),
    el("td", {}, u.api_key_set ? "set" : "—"), el("td", {}, u.models.join(", ") || "—"),
    el("td", {},
      el("button", { class: "small", onclick: () => testUpstream(u.name) }, "Test"), " ",
      el("button", { class: "small danger", onclick: () => removeEntry("upstreams", u.name) }, "Remove")))),
    "No upstream yet: add one below (an OpenAI-compatible base URL and its key).");
  const names = data.upstreams.map((u) => u.name);
  fill($("#models-table tbody"), data.models.map((m) => el("tr", { "data-model": m.id },
    el("td", {}, m.id), el("td", {}, m.upstream || "(first)"), el("td", {}, m.upstream_model || "—"),
    el("td", {}, m.input_usd_per_mtok), el("td", {}, m.output_usd_per_mtok),
    el("td", {},
      el("button", { class: "small", onclick: (ev) => editModel(m, ev.target.closest("tr"), names).catch(console.error) }, "Edit"), " ",
      el("button", { class: "small danger", onclick: () => removeEntry("models", m.id) }, "Remove")))),
    "No model priced yet: add one below; until then nothing is sold.");
  $("#model-status").textContent = "";
  $("#model-form select").replaceChildren(...data.upstreams.map((u) => el("option", { value: u.name }, u.name)));
}

async function testUpstream(name) {
  const out = $("#upstream-test");
  out.textContent = `testing ${name}…`;
  const r = await api("POST", `/upstreams/${encodeURIComponent(name)}/test`);
  out.replaceChildren(
    el("p", {}, r.ok ? `${name}: reachable in ${r.latency_ms} ms, ${r.models.length} models` : `${name}: ${r.error}`),
    el("ul", { id: "upstream-models" }, ...r.models.map((id) => el("li", {}, id))));
}

async function removeEntry(section, name) {
  if (!confirm(`Remove ${name}?`)) return;
  try {
    await api("DELETE", `/${section}/${encodeURIComponent(name)}`);
    await loadUpstreams();
  } catch (err) {
    $("#upstream-test").textContent = err.message;
  }
}

$("#upstream-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = formData(ev.target);
  if (!body.api_key) delete body.api_key;
  const spot = $('[data-error="upstream"]');
  try {
    await api("POST", "/upstreams", body);
    ev.target.reset();
    spot.textContent = "";
    await loadUpstreams();
    await testUpstream(body.name);
  } catch (err) {
    spot.textContent = err.message;
  }
});

$("#model-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = formData(ev.target);
  for (const k of ["input_usd_per_mtok", "output_usd_per_mtok"]) body[k] = Number(body[k]);
  const exists = $$("#models-table tbody tr").some((tr) => tr.firstChild.textContent === body.id);
  const spot = $('[data-error="model"]');
  try {
    if (exists) await api("PATCH", `/models/${encodeURIComponent(body.id)}`, body);
    else await api("POST", "/models", body);
    spot.textContent = "";
    await loadUpstreams();
  } catch (err) {
    spot.textContent = err.message;
  }
});

// --- accounts -------------------------------------------------------------------------------

async function loadAccounts() {
  const data = await api("GET", "/accounts");
  const t = data.totals;
  $("#accounts-totals").textContent =
    `${t.accounts} accounts, ${sat(t.ecash_balance_msat)} sat owed as ecash, ${sat(t.credit_msat)} sat operator credit ` +
    `(spend-only), ${sat(t.remainders_msat)} sat in remainders, ${sat(t.reserved_msat)} sat reserved, ${t.requests} requests`;
  fill($("#accounts-table tbody"), data.accounts.map((a) => el("tr", { class: "click", "data-id": a.id, onclick: () => { loadEntries(a.id); showKey(a.id); } },
    el("td", {}, a.id), el("td", {}, a.kind), el("td", {}, a.balance_msat.toLocaleString()),
    el("td", {}, a.credit_msat.toLocaleString()), el("td", {}, a.reserved_msat.toLocaleString()),
    el("td", {}, a.requests), el("td", {}, when(a.last_used_at)))),
    "No account yet: one appears when a client pays with a token, or create a key above.");
}

async function loadEntries(id) {
  const data = await api("GET", `/accounts/${id}/entries`);
  $("#entries-card").hidden = false;
  $("#entries-title").textContent = `Entries of account ${id}`;
  fill($("#entries-table tbody"), data.entries.map((e) => el("tr", {},
    el("td", {}, when(e.created_at)), el("td", {}, e.kind), el("td", {}, e.amount_msat.toLocaleString()),
    el("td", { class: "mono" }, e.ref))), "No entries on this account.");
}

// --- earnings -------------------------------------------------------------------------------

async function loadEarnings() {
  const data = await api("GET", "/earnings");
  $("#withdrawable").textContent = data.withdrawable_sat.toLocaleString();
  const tokenCell = (p) => p.cashu_token
    ? el("button", { class: "small", onclick: () => showToken(p, "A token not yet marked collected.") }, "Show")
    : (p.collected ? "collected" : "—");
  fill($("#payouts-table tbody"), data.payouts.map((p) => el("tr", { "data-id": p.id },
    el("td", {}, when(p.created_at)), el("td", {}, p.amount_sat), el("td", {}, p.fee_sat),
    el("td", { class: "mono" }, p.mint), el("td", {}, p.state), el("td", {}, tokenCell(p)))),
    "No withdrawal yet: earnings withdrawn above are listed here.");
}

// The token on show: kept in "Earlier withdrawals" until the operator marks it collected.
let shownPayout = null;
function showToken(payout, said) {
  shownPayout = payout.id;
  $("#withdraw-said").textContent = said;
  $("#withdraw-token").value = payout.cashu_token;
  try {
    $("#withdraw-qr").replaceChildren(qrSvg(payout.cashu_token));
  } catch { // longer than a QR code holds: the text and Copy remain
    $("#withdraw-qr").replaceChildren(el("p", { class: "help" }, "Too long for a QR code: copy the text."));
  }
  $("#token-status").textContent = "";
  $("#withdraw-result").hidden = false;
  $("#withdraw-result").scrollIntoView({ block: "nearest" });
}

$("#token-copy").addEventListener("click", async () => {
  try {
    await navigator.clipboard.writeText($("#withdraw-token").value);
    $("#token-status").textContent = "copied";
  } catch {
    $("#withdraw-token").select();
    $("#token-status").textContent = "selected: copy it with Ctrl-C";
  }
});

$("#token-collected").addEventListener("click", async () => {
  try {
    await api("POST", `/earnings/payouts/${shownPayout}/collected`);
    $("#withdraw-result").hidden = true;
    await loadEarnings();
  } catch (err) {
    $("#token-status").textContent = err.message;
  }
});

// One Idempotency-Key per withdraw, kept until it succeeds (or the amount changes): a retry after
// the mint went quiet mid-payout then gets the first payout's token instead of paying out twice.
let withdrawal = null;
const newKey = () => Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");

$("#withdraw-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const amount = $("#withdraw-amount").value;
  const spot = $('[data-error="withdraw"]');
  const button = $("#withdraw-button");
  if (button.disabled) return; // a double click must not pay out twice (one token would be lost)
  button.disabled = true;
  if (withdrawal?.amount !== amount) withdrawal = { amount, key: newKey() };
  try {
    const r = await api("POST", "/earnings/withdraw", amount ? { amount: Number(amount) } : {},
      { "Idempotency-Key": withdrawal.key });
    withdrawal = null;
    spot.textContent = "";
    await loadEarnings();
    const row = (await api("GET", "/earnings")).payouts.find((p) => p.cashu_token === r.cashu_token);
    showToken({ id: row?.id, cashu_token: r.cashu_token },
      `${r.amount} sat from ${r.mint} (mint fee ${r.fee_sat} sat, paid from the earnings). ` +
      "It stays under Earlier withdrawals until you mark it collected.");
  } catch (err) { // a payout left in doubt is collected by withdrawing again under its key
    spot.textContent = err.message + (err.status === 503 ? " (withdraw the same amount again to collect it)" : "");
  } finally {
    button.disabled = false;
  }
});

start();
