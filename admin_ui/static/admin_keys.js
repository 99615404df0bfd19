// nutgate admin, keys on the Accounts tab: create a key funded with operator credit (spend-only),
// and for the account clicked: add credit, set its spend limit and expiry, revoke it.
// Loaded after admin.js, whose helpers ($, el, api, sat, when, formData, loadAccounts) it uses.
"use strict";

let keyAccount = null;

const msat = (satText) => (satText === "" ? null : Math.round(Number(satText)) * 1000);
const unixOf = (local) => (local ? Math.floor(Date.parse(local + "Z") / 1000) : null); // as UTC
const localOf = (unix) => (unix ? new Date(unix * 1000).toISOString().slice(0, 16) : "");

function rulesOf(form) {
  const f = formData(form);
  return { spend_limit_msat: msat(f.spend_limit), limit_period: f.limit_period || null,
    expires_at: unixOf(f.expires_at) };
}

async function showKey(id) {
  keyAccount = id;
  const [data, account] = await Promise.all([api("GET", `/accounts/${id}/keys`),
    api("GET", "/accounts").then((d) => d.accounts.find((a) => a.id === id))]);
  const rules = data.rules;
  $("#key-card").hidden = false;
  $("#key-title").textContent = `Key of account ${id}` + (rules?.name ? ` (${rules.name})` : "");
  const limit = rules?.spend_limit_msat != null ? `${sat(rules.spend_limit_msat)} sat per ${rules.limit_period || "total"}` : "no limit";
  $("#key-state").textContent = `balance ${sat(account?.balance_msat ?? 0)} sat, of which operator credit ` +
    `${sat(account?.credit_msat ?? 0)} sat; ${limit}; ` + (rules?.expires_at ? `expires ${when(rules.expires_at)}` : "never expires") +
    (rules?.revoked_at ? `; REVOKED ${when(rules.revoked_at)}` : "");
  const form = $("#key-limits");
  form.spend_limit.value = rules?.spend_limit_msat != null ? rules.spend_limit_msat / 1000 : "";
  form.limit_period.value = rules?.limit_period || "";
  form.expires_at.value = localOf(rules?.expires_at);
  $("#key-revoke").disabled = Boolean(rules?.revoked_at);
}

async function keyAction(work, said) {
  const status = $("#key-status");
  try {
    await work();
    status.textContent = said;
    await Promise.all([showKey(keyAccount), loadAccounts()]);
  } catch (err) {
    status.textContent = err.message;
  }
}

// One Idempotency-Key per funding, kept until it succeeds: a retry never credits twice.
let funding = null;
$("#key-fund").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const amount = msat(ev.target.amount.value);
  if (funding?.amount !== amount || funding?.account !== keyAccount) {
    funding = { amount, account: keyAccount, key: crypto.randomUUID() };
  }
  keyAction(async () => {
    await api("POST", `/keys/${keyAccount}/credit`, { amount_msat: amount }, { "Idempotency-Key": funding.key });
    funding = null;
    ev.target.reset();
  }, "funded");
});

$("#key-limits").addEventListener("submit", (ev) => {
  ev.preventDefault();
  keyAction(() => api("PATCH", `/keys/${keyAccount}`, rulesOf(ev.target)), "limits saved");
});

$("#key-revoke").addEventListener("click", () => {
  if (!confirm(`Revoke the key of account ${keyAccount}? It stops working at once.`)) return;
  keyAction(() => api("POST", `/keys/${keyAccount}/revoke`), "revoked");
});

$("#key-create").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = formData(ev.target);
  const spot = $('[data-error="key"]');
  try {
    const made = await api("POST", "/keys", { name: f.name, credit_msat: msat(f.credit) ?? 0, ...rulesOf(ev.target) });
    spot.textContent = "";
    $("#key-secret").value = made.key;
    $("#key-made").hidden = false;
    await loadAccounts();
    await showKey(made.account_id);
  } catch (err) {
    spot.textContent = err.message;
  }
});
