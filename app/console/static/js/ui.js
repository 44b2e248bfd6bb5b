// Building the page: elements from data (text only, never HTML), forms to JSON bodies, and the
// API's errors beside the fields they name.

const SVG = "http://www.w3.org/2000/svg";

/** h("a", {href: "/x"}, "text", child): an element; attributes set as given, children as text or nodes. */
export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  setAttributes(element, attrs);
  element.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

/** The same in SVG's namespace. */
export function s(tag, attrs = {}, ...children) {
  const element = document.createElementNS(SVG, tag);
  setAttributes(element, attrs);
  element.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return element;
}

function setAttributes(element, attrs) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else element.setAttribute(key, value === true ? "" : String(value));
  }
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

/** Replaces what `target` (an element or a selector) holds. */
export function show(target, ...children) {
  const element = typeof target === "string" ? $(target) : target;
  element.replaceChildren(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return element;
}

const builtFrom = new WeakMap();

/**
 * For what a poll redraws: replaces what `target` holds with `build(data)` only when `data` changed
 * since the last time, and keeps which <details> were open and where the keyboard focus was, so a
 * refresh never folds what someone unfolded or throws their focus back to the top of the page.
 */
export function refill(target, data, build) {
  const element = typeof target === "string" ? $(target) : target;
  const key = JSON.stringify(data);
  if (builtFrom.get(element) === key) return;
  builtFrom.set(element, key);
  const open = new Set($$("details[open]", element).map(identity));
  const focused = element.contains(document.activeElement) ? identity(document.activeElement) : null;
  show(element, build(data));
  for (const details of $$("details", element)) details.open = open.has(identity(details));
  if (focused) $$("a, button, select, summary, input", element).find((el) => identity(el) === focused)?.focus();
}

/** What an element stands for across redraws: its row's data attributes, its tag and its text. */
function identity(element) {
  const row = element.closest("[data-deployment], [data-user], [data-key], [data-prediction]");
  return [row ? JSON.stringify(row.dataset) : "", element.tagName, element.textContent.trim()].join("|");
}

export function time(iso) {
  if (!iso) return "—";
  const at = new Date(iso);
  return h("time", { datetime: iso, title: iso }, at.toLocaleString([], { dateStyle: "short", timeStyle: "medium" }));
}

export function number(value) {
  return Number.isInteger(value) ? String(value) : String(Number(value.toFixed(3)));
}

export function resources(r) {
  return `${number(r.cpu)} CPU · ${number(r.ram_gb)} GiB · ${r.gpu} GPU`;
}

export function badge(status) {
  return h("span", { class: `badge badge-${status}` }, status);
}

/** Says something about the whole page (loading, an error) in the live region at its top. */
export function pageStatus(message, kind = "info") {
  const region = $("#page-status");
  region.className = `page-status ${kind}`;
  region.textContent = message || "";
}

/**
 * The body of `form` as the API wants it: a field named "capacity.cpu" lands in {capacity: {cpu}};
 * data-type="number" / "integer" / "datetime" converts (an integer field with a fraction is sent
 * as it is, for the API to refuse); empty optional fields are left out. Passwords and free text
 * are sent exactly as typed; other fields without their surrounding spaces.
 */
export function formBody(form) {
  const body = {};
  for (const field of form.elements) {
    if (!field.name || field.tagName === "BUTTON" || field.dataset.local !== undefined) continue;
    let value;
    if (field.type === "checkbox") value = field.checked;
    else if (field.multiple) value = [...field.selectedOptions].map((option) => option.value);
    else if (field.type === "password" || field.tagName === "TEXTAREA") value = field.value;
    else value = field.value.trim();
    if (value === "" && field.dataset.optional !== undefined) continue;
    if (["number", "integer"].includes(field.dataset.type) && value !== "") value = Number(value);
    if (field.dataset.type === "datetime" && value !== "") value = new Date(value).toISOString();
    const path = field.name.split(".");
    let target = body;
    for (const key of path.slice(0, -1)) target = target[key] ??= {};
    target[path.at(-1)] = value;
  }
  return body;
}

export function clearErrors(form) {
  for (const note of $$(".field-error", form)) note.remove();
  for (const field of $$("[aria-invalid]", form)) {
    field.removeAttribute("aria-invalid");
    const hint = field.dataset.describedby;
    if (hint) field.setAttribute("aria-describedby", hint);
    else field.removeAttribute("aria-describedby");
  }
  const alert = $("[role=alert]", form);
  if (alert) alert.textContent = "";
}

/**
 * Shows an API error on `form`: each `fields` entry beside the control it names (or the nearest
 * enclosing name: "resources.cpu", then "resources"), the rest in the form's alert.
 */
export function showErrors(form, error) {
  clearErrors(form);
  const unplaced = [];
  for (const { field, message } of error.fields || []) {
    const control = controlFor(form, field);
    if (!control) {
      unplaced.push(`${field}: ${message}`);
      continue;
    }
    const id = `${control.id || control.name.replaceAll(".", "-")}-error`;
    const hint = control.getAttribute("aria-describedby");
    if (hint) control.dataset.describedby = hint;
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-describedby", [id, hint].filter(Boolean).join(" "));
    control.closest(".field").append(h("p", { class: "field-error", id }, message));
  }
  const alert = $("[role=alert]", form);
  const summary = error.fields?.length && !unplaced.length ? error.message : [error.message, ...unplaced].join(" ");
  if (alert) alert.textContent = summary;
  const first = $("[aria-invalid]", form);
  if (first) first.focus();
}

function controlFor(form, field) {
  const parts = field.split(".");
  while (parts.length) {
    const control = form.elements.namedItem(parts.join("."));
    if (control && control.closest?.(".field")) return control;
    parts.pop();
  }
  return null;
}

/**
 * Runs `action` on submit with the form's buttons disabled; an ApiError is shown on the form.
 * The pages' submit buttons start disabled, so that nothing is sent by the browser's own form
 * submission (a password in a URL) before this takes over; it enables them.
 */
export function onSubmit(form, action) {
  for (const button of $$("button[type=submit]", form)) button.disabled = false;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const buttons = $$("button", form);
    buttons.forEach((button) => (button.disabled = true));
    clearErrors(form);
    try {
      await action(formBody(form), event.submitter);
    } catch (error) {
      if (error.status === undefined) throw error;
      showErrors(form, error);
    } finally {
      buttons.forEach((button) => (button.disabled = false));
    }
  });
}

/** A button that calls `action`; an API error is announced in `alertTarget` (or the page status). */
export function actionButton(label, action, { confirmText, kind = "secondary", alertTarget, name } = {}) {
  const button = h("button", { type: "button", class: `button ${kind}`, "aria-label": name }, label);
  button.addEventListener("click", async () => {
    if (confirmText && !window.confirm(confirmText)) return;
    button.disabled = true;
    try {
      await action();
    } catch (error) {
      if (error.status === undefined) throw error;
      if (alertTarget) alertTarget.textContent = error.message;
      else pageStatus(error.message, "error");
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

/** Copies text to the clipboard, falling back to selecting it where the clipboard is refused. */
export async function copy(text, input) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    input?.select();
    return false;
  }
}
