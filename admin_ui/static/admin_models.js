// nutgate admin, the Upstreams tab's model editor: a [[models]] entry edited in place, in a row
// under its own, every field with its description and unit (/admin/api/models/fields). Saved with
// PATCH /admin/api/models/{id}, the admin's settings save: validated, applied live, persisted.
// A refused value is marked at its field with the node's message.
// Loaded after admin.js, whose helpers ($, $$, el, api, loadUpstreams) it uses.
"use strict";

let modelFields = null;

async function editModel(model, row, upstreams) {
  modelFields ??= (await api("GET", "/models/fields")).fields;
  closeModelEditor();
  const inputs = modelFields.map((f) => modelInput(f, model[f.key], upstreams));
  const form = el("form", { class: "model-editor", novalidate: true, "data-model": model.id },
    el("h3", {}, `Edit ${model.id}`),
    el("div", { class: "editor-grid" }, ...modelFields.map((f, i) => el("label", { class: "setting" },
      el("span", { class: "key" }, f.key, f.unit ? el("span", { class: "unit" }, f.unit) : ""),
      inputs[i], el("small", { class: "help" }, f.description)))),
    el("div", { class: "row" }, el("span", {},
      el("button", { type: "submit" }, "Save"), " ",
      el("button", { type: "button", class: "quiet", onclick: closeModelEditor }, "Cancel")),
    el("span", { class: "error", role: "alert", "data-error": "model-edit" })));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); saveModel(form, model); });
  const cells = row.cells.length;
  row.after(el("tr", { class: "editor-row" }, el("td", { colspan: cells }, form)));
  form.querySelector("input:not([readonly]), select")?.focus();
}

function closeModelEditor() {
  for (const r of $$("#models-table tr.editor-row")) r.remove();
}

function modelInput(f, value, upstreams) {
  const name = f.key;
  if (name === "id") return el("input", { name, value, readonly: true, title: "the entry's key: remove and add to rename" });
  if (name === "upstream") {
    return el("select", { name }, el("option", { value: "" }, "(the first)"),
      ...upstreams.map((u) => el("option", { value: u, selected: u === value }, u)));
  }
  if (f.kind === "boolean") { // optional: empty means "guessed"
    const pick = value === true ? "true" : value === false ? "false" : "";
    return el("select", { name, "data-kind": "boolean" },
      ...[["", "(automatic)"], ["true", "yes"], ["false", "no"]].map(([v, t]) => el("option", { value: v, selected: v === pick }, t)));
  }
  if (f.kind === "integer" || f.kind === "number") {
    return el("input", { name, type: "number", step: f.kind === "integer" ? "1" : "any", value: value ?? "",
      placeholder: f.optional ? "(none)" : "", "data-optional": f.optional });
  }
  if (f.kind === "list") return el("input", { name, value: (value || []).join(", "), "data-kind": "list" });
  return el("input", { name, value: value ?? "" });
}

function modelValue(input) {
  if (input.dataset.kind === "list") return input.value.split(/[,\s]+/).filter(Boolean);
  if (input.dataset.kind === "boolean") return input.value === "" ? null : input.value === "true";
  if (input.type === "number") {
    if (input.value === "") return input.dataset.optional !== undefined ? null : "";
    return Number(input.value);
  }
  return input.value;
}

async function saveModel(form, model) {
  const change = {};
  for (const input of form.querySelectorAll("input:not([readonly]), select")) {
    input.classList.remove("invalid");
    input.removeAttribute("aria-invalid");
    const value = modelValue(input);
    if (JSON.stringify(value) !== JSON.stringify(model[input.name] ?? (Array.isArray(value) ? [] : null))) {
      change[input.name] = value;
    }
  }
  const spot = form.querySelector('[data-error="model-edit"]');
  if (!Object.keys(change).length) { spot.textContent = "nothing changed"; return; }
  try {
    await api("PATCH", `/models/${encodeURIComponent(model.id)}`, change);
  } catch (err) { // the field the node refused, marked; its message beside Save
    const key = (err.param || "").split(".")[2];
    const input = key && form.querySelector(`[name="${CSS.escape(key)}"]`);
    if (input) {
      input.classList.add("invalid");
      input.setAttribute("aria-invalid", "true");
      input.focus();
    }
    spot.textContent = err.message.replace(/^models\.\d+\./, ""); // the entry is the one on show
    return;
  }
  await loadUpstreams();
  $("#model-status").textContent = `${model.id}: saved and applied (${Object.keys(change).join(", ")})`;
}
