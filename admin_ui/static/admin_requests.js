// nutgate admin, the Requests tab: the request records across accounts (/admin/api/requests),
// filtered by key, model and status, a per-model breakdown, and the same rows as CSV.
// Loaded after admin.js, whose helpers ($, el, api, fill, sat, when) it uses.
"use strict";

let requestsBefore = null;

function requestsQuery() {
  const params = new URLSearchParams();
  for (const [k, v] of new FormData($("#requests-filter")).entries()) if (v.trim()) params.set(k, v.trim());
  return params;
}

const requestRow = (r) => el("tr", { "data-id": r.request_id },
  el("td", {}, when(r.created_at)), el("td", {}, r.key_id ?? r.account_id), el("td", {}, r.model || "—"),
  el("td", { class: "status-" + r.status }, r.status), el("td", {}, `${r.prompt_tokens} / ${r.completion_tokens}`),
  el("td", {}, r.cost_msat.toLocaleString()), el("td", {}, r.duration_ms), el("td", { class: "mono" }, r.request_id));

async function loadRequests(more = false) {
  const params = requestsQuery();
  const spot = $('[data-error="requests"]');
  $("#requests-csv").href = "/admin/api/requests.csv" + (params.size ? "?" + params : "");
  if (more && requestsBefore) params.set("before", requestsBefore);
  let data;
  try {
    data = await api("GET", "/requests?" + params);
    spot.textContent = "";
  } catch (err) {
    spot.textContent = err.message;
    return;
  }
  const body = $("#requests-table tbody");
  const rows = data.data.map(requestRow);
  if (more) body.append(...rows);
  else fill(body, rows, "No requests recorded yet (or none match the filter).");
  requestsBefore = data.next_before;
  $("#requests-more").hidden = !data.has_more;
  fill($("#by-model-table tbody"), data.by_model.map((m) => el("tr", { "data-model": m.model },
    el("td", {}, m.model || "—"), el("td", {}, m.requests), el("td", {}, sat(m.cost_msat)),
    el("td", {}, m.prompt_tokens), el("td", {}, m.completion_tokens))), "Nothing to break down yet.");
  if (!more) await fillModels();
}

async function fillModels() { // the models on sale, and any model the log holds
  const select = $("#requests-filter select[name=model]");
  const chosen = select.value;
  const sold = (await api("GET", "/models")).models.map((m) => m.id);
  const seen = [...$$("#by-model-table tbody tr[data-model]")].map((r) => r.dataset.model);
  const ids = [...new Set([...sold, ...seen, chosen].filter(Boolean))].sort();
  select.replaceChildren(el("option", { value: "" }, "any"), ...ids.map((id) => el("option", { value: id }, id)));
  select.value = chosen;
}

$("#requests-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadRequests(); });
$("#requests-more").addEventListener("click", () => loadRequests(true));
