// nutgate admin, the Settings tab: each setting with its description, unit and when a change
// takes effect (from /admin/api/settings/fields), grouped by section in the model's order.
// Loaded after admin.js, whose helpers ($, el, api, formData) it uses.
"use strict";

const SECTION_NOTES = {
  node: "This node: its name, address and the proxies it trusts.",
  store: "Where the ledger lives.",
  cashu: "The mints whose ecash this node takes.",
  pricing: "What a request costs, and the BTC rate that turns USD prices into msat.",
  limits: "Rate limits and request size; read when the node starts.",
  nostr: "Announcing this node on Nostr relays.",
  log: "Logging; set in the configuration file.",
};
const APPLIES = {
  live: "",
  next_start: "applies at the next start",
  file: "set in the configuration file",
};
let loaded = {};
let fields = [];

async function loadSettings() {
  [loaded, { fields }] = await Promise.all([api("GET", "/settings"), api("GET", "/settings/fields")]);
  const box = $("#settings-fields");
  box.replaceChildren();
  const sections = [...new Set(fields.map((f) => f.section))];
  for (const section of sections) {
    const set = el("fieldset", { "data-section": section }, el("legend", {}, section),
      el("p", { class: "help" }, SECTION_NOTES[section] || ""));
    for (const f of fields.filter((f) => f.section === section)) set.append(field(f));
    box.append(set);
  }
}

function field(f) {
  const name = `${f.section}.${f.key}`;
  const values = loaded[f.section] || {};
  const secret = `${f.key}_set` in values;
  const value = values[f.key];
  let input;
  if (secret) {
    input = el("input", { name, type: "password", autocomplete: "off", "data-secret": true,
      placeholder: values[`${f.key}_set`] ? "set — leave empty to keep" : "not set" });
  } else if (f.kind === "choice") {
    input = el("select", { name }, ...f.choices.map((c) => el("option", { value: c, selected: c === value }, c)));
  } else if (f.kind === "boolean") {
    input = el("input", { name, type: "checkbox", checked: value });
  } else if (f.kind === "integer" || f.kind === "number") {
    input = el("input", { name, type: "number", step: f.kind === "integer" ? "1" : "any", value: value ?? "",
      "data-nullable": value === null });
  } else if (f.kind === "list") {
    input = el("input", { name, value: (value || []).join(", "), "data-list": true });
  } else {
    input = el("input", { name, value: value ?? "", "data-nullable": value === null });
  }
  if (f.applies === "file") input.disabled = true;
  input.dataset.applies = f.applies;
  const unit = f.unit ? el("span", { class: "unit" }, f.unit) : "";
  const when = APPLIES[f.applies] ? el("span", { class: "applies" }, APPLIES[f.applies]) : "";
  return el("label", { class: "setting" },
    el("span", { class: "key" }, f.key, unit, when), input,
    el("small", { class: "help" }, f.description),
    el("span", { class: "error", "data-error": name }));
}

function readField(input) {
  if (input.type === "checkbox") return input.checked;
  if (input.dataset.list !== undefined) return input.value.split(/[,\s]+/).filter(Boolean);
  if (input.type === "number") return input.value === "" ? null : Number(input.value);
  if (input.dataset.nullable !== undefined && input.value === "") return null;
  return input.value;
}

$("#settings-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const patch = {};
  const later = [];
  for (const input of $$("#settings-fields input, #settings-fields select")) {
    if (input.disabled) continue;
    const [section, key] = input.name.split(".");
    const value = readField(input);
    if (input.dataset.secret !== undefined && value === "") continue;
    if (JSON.stringify(value) === JSON.stringify(loaded[section][key])) continue;
    (patch[section] ||= {})[key] = value;
    if (input.dataset.applies === "next_start") later.push(input.name);
  }
  clearErrors($("#settings-form"));
  const status = $("#settings-status");
  if (!Object.keys(patch).length) return (status.textContent = "nothing changed");
  try {
    await api("PATCH", "/settings", patch);
    await loadSettings(); // the form anew, then the word that it is done
    $("#node-name").textContent = loaded.node.name;
    status.textContent = later.length
      ? `saved; ${later.join(", ")} ${later.length > 1 ? "apply" : "applies"} at the next start` +
        (later.length < Object.values(patch).flatMap(Object.keys).length ? ", the rest now" : "")
      : "saved and applied";
  } catch (err) {
    status.textContent = "";
    showFieldError($("#settings-form"), err);
  }
});

function clearErrors(form) {
  for (const e of $$("[data-error]", form)) e.textContent = "";
  for (const i of $$(".invalid", form)) i.classList.remove("invalid");
}

// The API names the field (`param`, e.g. "pricing.markup" or "cashu.mints.0"): show it there.
function showFieldError(form, err) {
  const spots = $$("[data-error]", form);
  const param = err.param || "";
  const spot = spots.find((s) => param === s.dataset.error || param.startsWith(s.dataset.error + "."));
  (spot || $("#settings-status")).textContent = err.message;
  if (spot) $(`[name="${spot.dataset.error}"]`, form)?.classList.add("invalid");
}

$("#password-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const status = $("#password-status");
  try {
    await api("POST", "/password", formData(ev.target));
    ev.target.reset();
    status.textContent = "changed; other sessions were logged out";
  } catch (err) {
    status.textContent = err.message;
  }
});
